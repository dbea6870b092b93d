/**
 * The request target as it goes upstream: the path and query exactly as the client sent them, never parsed into a
 * WHATWG URL (which turns `\` into `/`, resolves `.` and `..`, also percent-encoded, and re-encodes what it dislikes:
 * the path sent would not be the path routed). An absolute-form target (`GET http://other/x HTTP/1.1`) keeps only its
 * path and query: the backend is always the one the pool chose.
 *
 * Returns undefined for a target that must be refused: one whose path has a dot segment, or that is not a path.
 */
export function upstreamTarget (url: string): string | undefined {
  let start = 0
  if (url.charCodeAt(0) !== 47 /* '/' */) {
    // Absolute form: scheme "://" authority, then the path (which may be empty) and the query.
    const authority = url.indexOf('://')
    if (authority <= 0) return undefined
    start = authority + 3
    while (start < url.length && !isPathEnd(url.charCodeAt(start)) && url.charCodeAt(start) !== 47) start++
    if (start === url.length) return '/'
    if (url.charCodeAt(start) !== 47) url = '/' + url.slice(start)
    else url = url.slice(start)
    start = 0
  }
  return hasDotSegment(url) ? undefined : url
}

/**
 * A segment of the path that is `.` or `..`, raw or percent-encoded (`%2e`), between `/` or `\` (which many servers
 * and WHATWG URL take for `/`), or before a `;` parameter (`/..;/`, which Tomcat and Jetty resolve). The query is
 * never looked at: `?path=../x` is data.
 */
function hasDotSegment (target: string): boolean {
  let end = target.length
  for (let i = 0; i < target.length; i++) {
    if (isPathEnd(target.charCodeAt(i))) {
      end = i
      break
    }
  }
  // A quick way out for the common path with no dot or percent sign at all.
  let suspicious = false
  for (let i = 0; i < end && !suspicious; i++) {
    const code = target.charCodeAt(i)
    suspicious = code === 46 /* '.' */ || code === 37 /* '%' */
  }
  if (!suspicious) return false

  let segmentStart = 0
  for (let i = 0; i <= end; i++) {
    const code = i === end ? 47 : target.charCodeAt(i)
    if (code === 47 /* '/' */ || code === 92 /* '\' */) {
      if (isDots(target, segmentStart, i)) return true
      segmentStart = i + 1
    }
  }
  return false
}

/** Whether target[from, to), up to any `;` parameter, is `.` or `..` once `%2e`/`%2E` are read as dots. */
function isDots (target: string, from: number, to: number): boolean {
  let dots = 0
  let i = from
  while (i < to) {
    const code = target.charCodeAt(i)
    if (code === 59 /* ';' */) break
    if (code === 46) {
      i++
    } else if (code === 37 && i + 2 < to && target.charCodeAt(i + 1) === 50 /* '2' */ && (target.charCodeAt(i + 2) | 32) === 101 /* 'e' */) {
      i += 3
    } else {
      return false
    }
    dots++
  }
  return dots === 1 || dots === 2
}

function isPathEnd (code: number): boolean {
  return code === 63 /* '?' */ || code === 35 /* '#' */
}
