/** How a route's `host` matches a request's Host, and how specific that match is (higher wins, as in nginx). */
export interface HostMatcher {
  /** What the route was given, for messages and duplicate checks. */
  readonly source: string
  /** 3 exact, 2 wildcard, 1 RegExp: an exact name beats the longest wildcard, which beats a RegExp. */
  readonly rank: number
  /** Among wildcards, the longer suffix is the more specific. */
  readonly length: number
  matches (host: string): boolean
}

/**
 * `api.example.com` (exact), `*.example.com` (one or more labels before the suffix) or a RegExp, tested against the
 * request's host lowercased, without its port or a trailing dot (Fastify's own host constraint compares the raw
 * header, so `a.test:8080` would not match `a.test`).
 */
export function hostMatcher (host: string | RegExp): HostMatcher {
  if (host instanceof RegExp) {
    return { source: String(host), rank: 1, length: 0, matches: (name) => host.test(name) }
  }
  const name = host.toLowerCase().replace(/\.$/, '')
  if (name.startsWith('*.')) {
    const suffix = name.slice(1)
    return { source: name, rank: 2, length: suffix.length, matches: (candidate) => candidate.length > suffix.length && candidate.endsWith(suffix) }
  }
  return { source: name, rank: 3, length: name.length, matches: (candidate) => candidate === name }
}

/** The request's host as routes match it: lowercased, without port or trailing dot. */
export function requestHost (header: string | undefined): string {
  if (header === undefined) return ''
  let end = header.length
  if (header.charCodeAt(0) === 91 /* '[' */) {
    // An IPv6 literal: its port, if any, follows the ']'.
    end = header.indexOf(']') + 1 || end
  } else {
    const colon = header.indexOf(':')
    if (colon !== -1) end = colon
  }
  if (header.charCodeAt(end - 1) === 46 /* '.' */) end--
  return header.slice(0, end).toLowerCase()
}

/** What checkedHost needs of a request: Node's IncomingMessage. */
interface ReceivedRequest {
  url?: string
  headers: { host?: string, ':authority'?: string }
  rawHeaders: string[]
}

/**
 * The authority a request is for, checked before it is routed, or undefined when the request must be refused with
 * 400 (RFC 9112 §3.2): Host sent more than once (Node keeps the first in `headers`, so the route and the backend
 * could read different ones), or a value that is not a host (RFC 3986 reg-name, IPv4 or IP-literal) with an optional
 * port: whitespace, `/`, `,` (two values folded into one line), `@`, an empty label (`..wild.test`). '' for a
 * request without Host (HTTP/1.0).
 *
 * An absolute-form target (`GET http://a.test/x HTTP/1.1`) names its own authority, which wins over Host (RFC 9112
 * §3.2.2: a proxy replaces Host with it): it is checked the same way and put in the request's Host, so the route,
 * `X-Forwarded-Host`, `preserveHost` and the access line all see the same one. An HTTP/2 request's `:authority` is
 * its Host likewise (RFC 9113 §8.3.1), and a Host sent beside it that names another one makes it malformed.
 */
export function checkedHost (request: ReceivedRequest): string | undefined {
  const { rawHeaders } = request
  let hosts = 0
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]
    if (name.length === 4 && (name.charCodeAt(0) | 32) === 104 && (name.charCodeAt(1) | 32) === 111 && (name.charCodeAt(2) | 32) === 115 && (name.charCodeAt(3) | 32) === 116) hosts++
  }
  if (hosts > 1) return undefined
  const url = request.url ?? '/'
  if (url.charCodeAt(0) !== 47 /* '/' */) {
    const start = url.indexOf('://')
    if (start > 0) {
      let end = start + 3
      while (end < url.length && !isAuthorityEnd(url.charCodeAt(end))) end++
      const authority = url.slice(start + 3, end)
      if (!isHost(authority) || authority === '') return undefined
      request.headers.host = authority
      return authority
    }
  }
  const host = request.headers.host
  const authority = request.headers[':authority']
  if (authority !== undefined) {
    if ((host !== undefined && host !== authority) || !isHost(authority)) return undefined
    request.headers.host = authority
    return authority
  }
  if (host === undefined) return ''
  return isHost(host) ? host : undefined
}

function isAuthorityEnd (code: number): boolean {
  return code === 47 /* '/' */ || code === 63 /* '?' */ || code === 35 /* '#' */
}

/** `host[:port]`, host an IP-literal (`[…]`) or labels of RFC 3986 reg-name characters, none empty but a last dot's. */
function isHost (value: string): boolean {
  let i = 0
  if (value.charCodeAt(0) === 91 /* '[' */) {
    const close = value.indexOf(']')
    if (close < 3) return false
    for (i = 1; i < close; i++) {
      const code = value.charCodeAt(i)
      if (!(isHexDigit(code) || code === 58 /* ':' */ || code === 46 /* '.' */)) return false
    }
    i = close + 1
  } else {
    let label = 0
    for (; i < value.length; i++) {
      const code = value.charCodeAt(i)
      if (code === 58 /* ':' */) break
      if (code === 46 /* '.' */) {
        if (label === 0) return false
        label = 0
      } else if (isRegNameCharacter(code)) {
        label++
      } else {
        return false
      }
    }
  }
  if (i === value.length) return true
  if (value.charCodeAt(i) !== 58 /* ':' */ || value.length - i > 6) return false
  for (i++; i < value.length; i++) {
    const code = value.charCodeAt(i)
    if (code < 48 || code > 57) return false
  }
  return true
}

/**
 * RFC 3986 unreserved and sub-delims, but `,` (two field values folded into one line) and `%` (a percent-encoded
 * name would have to be decoded before it could be matched; DNS names never need it). A table: this runs for every
 * character of every Host.
 */
const regNameCharacters = new Uint8Array(128)
for (const character of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_~!$&\'()*+;=') regNameCharacters[character.charCodeAt(0)] = 1

function isRegNameCharacter (code: number): boolean {
  return code < 128 && regNameCharacters[code] === 1
}

function isHexDigit (code: number): boolean {
  return (code >= 48 && code <= 57) || ((code | 32) >= 97 && (code | 32) <= 102)
}
