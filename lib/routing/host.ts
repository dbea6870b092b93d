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
