import { matchPath } from '../routing/path.js'

/**
 * The request target as it goes upstream: the path and query exactly as the client sent them, never parsed into a
 * WHATWG URL (which turns `\` into `/`, resolves `.` and `..`, also percent-encoded, and re-encodes what it dislikes:
 * the path sent would not be the path routed). An absolute-form target (`GET http://other/x HTTP/1.1`) keeps only its
 * path and query: the backend is always the one the pool chose.
 *
 * Returns undefined for a target that must be refused: one that is not a path, or whose path matchPath refuses (a
 * dot segment, raw or encoded, a control character, a bad escape), so that the route it would take is never in doubt.
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
  return matchPath(url) === undefined ? undefined : url
}

function isPathEnd (code: number): boolean {
  return code === 63 /* '?' */ || code === 35 /* '#' */
}
