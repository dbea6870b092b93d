import type { IncomingMessage } from 'node:http'
import { checkedHost, requestHost } from './host.js'

/** A redirect's Location, or why the request is refused with 400 instead. */
export type HttpsLocation = { location: string } | { refused: 'host' | 'target' }

/**
 * Where `redirectHttps` sends a request: `https://<host without port>[:port]<target as received>` (no port for 443).
 * Refused: a Host that is not one (see checkedHost) or none at all (HTTP/1.0), since redirecting to whatever Host
 * says would send clients wherever a header an attacker writes points; and a target that is not a path (`OPTIONS *`).
 */
export function httpsLocation (request: IncomingMessage, port: number): HttpsLocation {
  const authority = checkedHost(request)
  if (authority === undefined || authority === '') return { refused: 'host' }
  // A server's request always has its target.
  const target = pathOf(request.url!)
  if (target === undefined) return { refused: 'target' }
  return { location: `https://${requestHost(authority)}${port === 443 ? '' : `:${port}`}${target}` }
}

/** The target as received; of an absolute-form one (`http://a.test/x?y`), its path and query. */
function pathOf (url: string): string | undefined {
  if (url.startsWith('/')) return url
  const start = url.indexOf('://')
  if (start <= 0) return undefined
  const rest = url.slice(start + 3)
  const end = rest.search(/[/?]/)
  if (end === -1) return '/'
  return rest[end] === '/' ? rest.slice(end) : `/${rest.slice(end)}`
}
