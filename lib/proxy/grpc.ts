import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyReply } from 'fastify'

/** `application/grpc`, `application/grpc+proto`, `application/grpc-web…`: a gRPC call, whose client reads statuses, not pages. */
export function isGrpc (headers: IncomingHttpHeaders): boolean {
  const type = headers['content-type']
  return type !== undefined && type.startsWith('application/grpc')
}

// The gRPC status codes goload answers with (grpc/doc/statuscodes.md).
const DEADLINE_EXCEEDED = 4
const RESOURCE_EXHAUSTED = 8
const INTERNAL = 13
const UNAVAILABLE = 14
const UNKNOWN = 2

/**
 * The gRPC status of one of our HTTP answers, as Envoy maps its own: a backend that failed or cannot be had is
 * UNAVAILABLE (the one status clients retry), one too slow DEADLINE_EXCEEDED, a rate limit RESOURCE_EXHAUSTED, a
 * request we refuse INTERNAL (gRPC's mapping of HTTP 400).
 */
function grpcStatus (httpStatus: number): number {
  switch (httpStatus) {
    case 502: case 503: return UNAVAILABLE
    case 504: case 408: return DEADLINE_EXCEEDED
    case 429: return RESOURCE_EXHAUSTED
    case 400: return INTERNAL
    default: return UNKNOWN
  }
}

/**
 * Our own answer to a gRPC call, as Envoy sends its local replies: HTTP 200 and a trailers-only response, the status in
 * the one HEADERS frame (gRPC over HTTP/2: "Trailers-Only"), its message naming our FST_GOLOAD_* code. A client
 * given our 503 page would report `UNAVAILABLE: … 503` at best, and grpc-js `INTERNAL` for a 502.
 */
export function answerGrpc (reply: FastifyReply, httpStatus: number, code: string, message: string): void {
  const type = reply.request.headers['content-type']!
  // Whatever the backend had set (a body that failed after its headers) does not go out with our status.
  for (const name of Object.keys(reply.getHeaders())) if (name !== 'retry-after') reply.removeHeader(name)
  const raw = reply.raw
  raw.statusCode = 200
  raw.setHeader('content-type', type.startsWith('application/grpc-web') ? type : 'application/grpc')
  const status = statusFields(httpStatus, code, message)
  for (const name in status) raw.setHeader(name, status[name])
  const retryAfter = reply.getHeader('retry-after')
  if (retryAfter !== undefined) raw.setHeader('retry-after', retryAfter)
  // end() with no write: Node's HTTP/2 response then sends its headers with END_STREAM, which is what makes them the
  // trailers (Fastify's send() writes the head first and ends with an empty DATA frame). Over HTTP/1.1 (gRPC-Web) the
  // same headers and an empty body.
  reply.hijack()
  raw.end()
}

/**
 * Ends a gRPC response whose backend's body failed once the response had begun: with `error`'s status in the
 * trailers (in the headers, making a trailers-only answer, if none went out yet), rather than a reset stream. The
 * caller ends the body. Returns the error's code, for the access log.
 */
export function endGrpc (reply: FastifyReply, error: Error & { code: string, statusCode?: number }): string {
  const status = statusFields(error.statusCode!, error.code, error.message)
  const raw = reply.raw
  if (raw.headersSent) raw.addTrailers(status)
  else for (const name in status) raw.setHeader(name, status[name])
  return error.code
}

function statusFields (httpStatus: number, code: string, message: string): Record<string, string> {
  return { 'grpc-status': String(grpcStatus(httpStatus)), 'grpc-message': percentEncoded(`${code}: ${message}`) }
}

/** grpc-message's encoding (PROTOCOL-HTTP2.md): printable ASCII but `%` as is, any other byte of the UTF-8 as %XX. */
export function percentEncoded (text: string): string {
  let encoded = ''
  for (const byte of Buffer.from(text)) {
    encoded += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return encoded
}

const units: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 }

/** ms a `grpc-timeout` header allows (`100m`, `2S`, `1H`: at most 8 digits and a unit); undefined when absent or malformed. */
export function grpcTimeout (headers: IncomingHttpHeaders): number | undefined {
  const value = headers['grpc-timeout']
  if (value === undefined) return undefined
  const match = /^(\d{1,8})([HMSmun])$/.exec(value as string)
  if (match === null) return undefined
  // At least 1 ms: Node's timers take no less, and 0 would mean none.
  return Math.max(1, Math.ceil(Number(match[1]) * units[match[2]]))
}
