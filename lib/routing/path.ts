import { isUtf8 } from 'node:buffer'

/**
 * The path a request is routed and rate-limited by: its target's path (no query) as most backends read it, so that no
 * spelling a backend takes for the same path slips past a route. Percent-escapes are decoded, `%2F` included; `/`
 * and `\` (and their escapes) are separators, repeated ones merged, since Windows servers, WHATWG URL and many
 * routers read `\` as `/` and `//` as `/`; a `;` parameter is cut to the end of its segment (`/login;jsessionid=x`,
 * which Tomcat and Spring serve as `/login`). Letters keep their case, as nginx and Fastify match them. Decoded
 * bytes are kept one character each (latin1), as Node gives raw ones: a route's prefix is compared in that form too.
 *
 * Returns undefined for a target to refuse: a control character (raw or %00-%1F, %7F), a `%` that is no escape,
 * an escape that is not UTF-8 (`%C0%AF`, an overlong `/`), or a dot segment (`.`, `..`), also one made of escapes
 * (`%2e`, `/a%2F..%2Fb`), which a backend that decodes before resolving would climb out of the route with.
 *
 * Only the forwarding keeps the raw target: the path returned is for matching, never sent.
 */
export function matchPath (target: string): string | undefined {
  // A request's target is checked (upstreamTarget) and then matched (RouteTable): the second call, with the same
  // string, is a comparison of references.
  if (target === lastTarget) return lastPath
  lastPath = normalPath(target)
  lastTarget = target
  return lastPath
}

let lastTarget: string | undefined
let lastPath: string | undefined

function normalPath (target: string): string | undefined {
  // The fast way, for the path without an escape, `;`, `\`, `//`, `/.` or a byte outside printable ASCII: it is its
  // own normal form.
  let previous = 0
  for (let i = 0; i < target.length; i++) {
    const code = target.charCodeAt(i)
    if (code === 63 /* '?' */ || code === 35 /* '#' */) return target.slice(0, i)
    if (!plain(code, previous)) {
      const path = walk(target, -1)
      return typeof path === 'string' ? path : undefined
    }
    previous = code
  }
  return target
}

/** A character the matched path has as it is, after this one: no escape, separator or parameter to read. */
function plain (code: number, previous: number): boolean {
  return code > 32 && code < 127 && code !== 37 /* '%' */ && code !== 59 /* ';' */ && code !== 92 /* '\' */ &&
    !(previous === 47 /* '/' */ && (code === 47 || code === 46 /* '.' */))
}

/**
 * Where, in the raw target, the first `length` characters of its matched path end: the rest of the raw target
 * (`//x`, `;v=1/x`) is what a rewritten prefix is followed by, byte for byte.
 */
export function rawEnd (target: string, length: number): number {
  let previous = 0
  let i = 0
  while (i < length && plain(target.charCodeAt(i), previous)) previous = target.charCodeAt(i++)
  return i === length ? length : walk(target, length) as number
}

/** The route prefix in the form matchPath gives: non-ASCII as UTF-8 bytes, and normalised the same way. */
export function matchPrefix (prefix: string): string {
  let bytes = prefix
  for (let i = 0; i < prefix.length; i++) {
    if (prefix.charCodeAt(i) >= 128) {
      bytes = Buffer.from(prefix, 'utf8').toString('latin1')
      break
    }
  }
  return matchPath(bytes) ?? bytes
}

const refused = -1

/**
 * The slow way: decodes and normalises the path. With `stop` at -1, returns the matched path (or -1 to refuse);
 * otherwise returns the index in `target` where the matched path reaches `stop` characters (the target's length
 * if it never does).
 */
function walk (target: string, stop: number): string | number {
  let path = ''
  let segment = 0
  let parameter = false
  let nonAscii = false
  let i = 0
  while (i < target.length) {
    let code = target.charCodeAt(i)
    if (code === 63 /* '?' */ || code === 35 /* '#' */) break
    let next = i + 1
    if (code === 37 /* '%' */) {
      const high = hexValue(target.charCodeAt(i + 1))
      const low = hexValue(target.charCodeAt(i + 2))
      if (high < 0 || low < 0) return refused
      code = high * 16 + low
      next = i + 3
    }
    if (code < 32 || code === 127) return refused
    if (code === 47 /* '/' */ || code === 92 /* '\' */) {
      if (isDotSegment(path, segment)) return refused
      parameter = false
      if (path.charCodeAt(path.length - 1) !== 47) {
        path += '/'
        segment = path.length
      }
    } else if (code === 59 /* ';' */) {
      parameter = true
    } else if (!parameter) {
      path += String.fromCharCode(code)
      if (code >= 128) nonAscii = true
    }
    i = next
    if (path.length === stop) return i
  }
  // Short of `stop`: the whole target (only a target refused, matched as received, can be).
  if (stop !== -1) return target.length
  if (isDotSegment(path, segment)) return refused
  if (nonAscii && !isUtf8(Buffer.from(path, 'latin1'))) return refused
  return path
}

/** Whether path[from…] is `.` or `..`. */
function isDotSegment (path: string, from: number): boolean {
  const length = path.length - from
  return (length === 1 || length === 2) && path.charCodeAt(from) === 46 && path.charCodeAt(path.length - 1) === 46
}

function hexValue (code: number): number {
  if (code >= 48 && code <= 57) return code - 48
  const lower = code | 32
  return lower >= 97 && lower <= 102 ? lower - 87 : -1
}
