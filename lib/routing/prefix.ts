/**
 * Where the route's prefix ends in the raw request target, or -1 when the path is not under it. The prefix is
 * matched as the router matched it, with percent-encoded characters decoded (`/%61pi/users` is under `/api`), so the
 * cut is made in the raw bytes at the right place; the rest of the target is kept byte for byte. The prefix must
 * end at a segment boundary: `/api` holds `/api`, `/api/x` and `/api?x`, not `/apix`.
 */
export function prefixEnd (target: string, prefix: string): number {
  let i = 0
  for (let p = 0; p < prefix.length; p++) {
    if (i >= target.length) return -1
    let code = target.charCodeAt(i)
    if (code === 37 /* '%' */ && i + 2 < target.length) {
      const decoded = Number.parseInt(target.slice(i + 1, i + 3), 16)
      // An encoded '/' is data, not a separator: it never matches one in the prefix.
      if (!Number.isNaN(decoded) && decoded !== 47) {
        code = decoded
        i += 2
      }
    }
    if (code !== prefix.charCodeAt(p)) return -1
    i++
  }
  if (i === target.length) return i
  const next = target.charCodeAt(i)
  return next === 47 /* '/' */ || next === 63 /* '?' */ || prefix.length === 0 ? i : -1
}
