import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyRequest } from 'fastify'

// RFC 9110 §7.6.1: these describe one connection and never cross a proxy. `expect` is answered by Node's
// own server (100-continue) and undici refuses to send it, so it stops here too.
const hopByHop = ['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'expect']

/** Removes the hop-by-hop headers and every header the Connection header names. */
export function stripHopByHop<T extends Record<string, unknown>> (headers: T): T {
  const connection = headers.connection
  if (typeof connection === 'string') {
    for (const name of connection.split(',')) delete headers[name.trim().toLowerCase()]
  }
  for (const name of hopByHop) {
    if (headers[name] !== undefined) delete headers[name]
  }
  return headers
}

/** Request headers as the backend sees them: end-to-end ones, plus who asked and how. */
export function upstreamRequestHeaders (request: FastifyRequest, headers: IncomingHttpHeaders): IncomingHttpHeaders {
  stripHopByHop(headers)
  // Fastify drops a GET or HEAD body, so its length must not reach the backend.
  if (request.method === 'GET' || request.method === 'HEAD') delete headers['content-length']
  const forwardedFor = headers['x-forwarded-for']
  const clientAddress = request.raw.socket?.remoteAddress ?? ''
  headers['x-forwarded-for'] = forwardedFor === undefined ? clientAddress : `${forwardedFor}, ${clientAddress}`
  headers['x-forwarded-proto'] = request.protocol
  headers['x-forwarded-host'] = request.host
  return headers
}

/** Response headers as the client sees them. */
export function downstreamResponseHeaders (headers: IncomingHttpHeaders): IncomingHttpHeaders {
  return stripHopByHop(headers)
}
