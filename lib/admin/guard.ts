import { isIP } from 'node:net'
import type { FastifyRequest } from 'fastify'
import { CrossOriginError, MisdirectedRequestError, UnsupportedMediaTypeError } from '../errors.js'
import { isLoopback } from './auth.js'

// Any web page its user has open can make the browser send requests to the admin on 127.0.0.1. A POST that needs no
// CORS preflight (no custom header, a text/plain or form body, mode no-cors) carries no token and its answer stays
// unreadable, but it acts. And a page whose name the attacker points at 127.0.0.1 once it has loaded (DNS
// rebinding) can read the answers too, the browser taking the admin for the page's own origin. These checks refuse
// both, as Jupyter and browsers' own debug ports do. A token is what a page elsewhere cannot send.

/** The host of a Host header, without its port or an IPv6 address's brackets; undefined if it is not host[:port]. */
function hostOf (header: string): string | undefined {
  const match = /^(?:\[([^\]]*)\]|([^:[\]]+))(?::\d{1,5})?$/.exec(header)
  if (match === null) return undefined
  if (match[1] !== undefined) return isIP(match[1]) === 6 ? match[1] : undefined
  return match[2]
}

/**
 * For an admin without a token: only requests whose Host names this machine. A rebinding page's requests carry its
 * own name (`Host: rebind.attacker.example`) even once that name resolves to 127.0.0.1. Any port is fine: a tunnel
 * (`ssh -L 8080:127.0.0.1:9090`) brings the page to the browser on another one.
 */
export function ownHost (configured: string): (request: FastifyRequest) => Promise<void> {
  return async (request) => {
    const header = request.headers.host
    const host = header === undefined ? undefined : hostOf(header)
    if (host !== undefined && (host.toLowerCase() === configured.toLowerCase() || isLoopback(host))) return
    refuse(request, new MisdirectedRequestError(header === undefined ? 'none' : JSON.stringify(header)))
  }
}

/**
 * Every action (a method other than GET and HEAD): refused when it comes from a page of another origin, which the
 * browser says in `Origin` (sent on every cross-origin POST, no-cors included) and in `Sec-Fetch-Site`; curl and
 * scripts send neither. Its body, if any, must be JSON: a text/plain or form body is what a page can send without a
 * preflight.
 */
export async function actionGuard (request: FastifyRequest): Promise<void> {
  if (request.method === 'GET' || request.method === 'HEAD') return
  const { origin, host } = request.headers
  const site = request.headers['sec-fetch-site']
  if (origin !== undefined && !sameOrigin(origin, host)) refuse(request, new CrossOriginError(origin))
  if (site !== undefined && site !== 'same-origin' && site !== 'none') refuse(request, new CrossOriginError(`a ${site} page`))
  const type = request.headers['content-type']
  if (type === undefined ? hasBody(request) : mediaType(type) !== 'application/json') {
    throw new UnsupportedMediaTypeError(type === undefined ? 'a body without Content-Type' : JSON.stringify(type))
  }
}

/**
 * `Origin` names the host and port the request was sent to: the admin's own page. The scheme may differ, as behind
 * a proxy ending TLS; no other server listens on the admin's address and port.
 */
function sameOrigin (origin: string, host: string | undefined): boolean {
  const authority = /^https?:\/\/([^/]+)$/i.exec(origin)?.[1]
  return authority !== undefined && host !== undefined && authority.toLowerCase() === host.toLowerCase()
}

function hasBody (request: FastifyRequest): boolean {
  return request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0
}

function mediaType (contentType: string): string {
  return contentType.split(';')[0].trim().toLowerCase()
}

function refuse (request: FastifyRequest, error: Error): never {
  // What an operator wants to know when a page tried to drive the admin, or a name was pointed at it.
  request.log.warn({ host: request.headers.host, origin: request.headers.origin }, `goload admin: refused ${request.method} ${request.url}: ${error.message}`)
  throw error
}
