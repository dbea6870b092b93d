import type { IncomingHttpHeaders } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'
import { finished, Readable } from 'node:stream'
import type { FastifyRequest } from 'fastify'
import type { Dispatcher } from 'undici'
import { failureReason } from '../proxy/forward.js'
import { upstreamRequestHeaders } from '../proxy/headers.js'
import type { Mirror } from './mirror.js'

/**
 * Says to the mirror backend that this is a copy, whose response nobody reads: it can keep the copies out of its
 * own side effects (no email sent twice) and out of its analytics. The Host stays as the primary's (the backend's
 * own host:port, or the client's with preserveHost): Envoy's `-shadow` suffix would send a copy to another virtual
 * host than the request it copies.
 */
export const mirrorHeader = 'x-goload-mirror'

/** The body's length as the request says it: 0 without a body, -1 when only its end will tell (chunked, HTTP/2). */
export function bodyLength (request: FastifyRequest): number {
  // Fastify drops a GET or HEAD body, and the primary sends none (see upstreamRequestHeaders).
  if (request.method === 'GET' || request.method === 'HEAD') return 0
  const { headers } = request
  if (request.raw.httpVersionMajor === 2) {
    if ((request.raw as unknown as Http2ServerRequest).stream.endAfterHeaders) return 0
  } else if (headers['transfer-encoding'] !== undefined) {
    return -1
  }
  const length = headers['content-length']
  return length === undefined ? (request.raw.httpVersionMajor === 2 ? -1 : 0) : Number(length)
}

/**
 * The request headers as the primary's backend gets them (reply-from's removal of Connection and the headers it
 * names, then goload's own: hop-by-hop headers out, X-Forwarded-* in), with the mirror header. `host`: the client's
 * Host when the route preserves it; else none is given and undici sends the mirror backend's host:port.
 */
export function mirrorHeaders (request: FastifyRequest, host: string | undefined): IncomingHttpHeaders {
  const { headers } = request
  const connection = headers.connection
  const named = typeof connection === 'string' ? connection.toLowerCase().split(',').map((name) => name.trim()) : []
  const received: IncomingHttpHeaders = {}
  for (const name in headers) {
    // HTTP/2's pseudo-headers (:method, :path…) are not headers to send.
    if (name.charCodeAt(0) !== 58 /* ':' */ && name !== 'connection' && !named.includes(name)) received[name] = headers[name]
  }
  const copied = upstreamRequestHeaders(request, received)
  copied.host = host
  if (request.method === 'GET' || request.method === 'HEAD') copied['content-length'] = undefined
  copied[mirrorHeader] = '1'
  return copied
}

function ignore (): void {}

/**
 * Sends one copy to a backend of the mirror pool, chosen by the pool's own strategy and counted on it (`pending`
 * while it is in flight, its answer or failure after), and reads its response to the end, discarding it. Nothing
 * here touches the client's exchange. No backend with room (or requests waiting in the mirror pool's queue, which a
 * copy must not overtake): not sent. The mirror pool's timeout bounds the wait for headers and each pause of the body.
 */
export function sendMirror (mirror: Mirror, request: FastifyRequest, target: string, headers: IncomingHttpHeaders, chunks: Buffer[] | undefined): void {
  const { forwarder, counts } = mirror
  const { pool, config } = forwarder
  const worker = mirror.closed || pool.queue.length > 0 ? undefined : pool.acquire(undefined, forwarder.keyOf?.(request))
  if (worker === undefined) {
    mirror.skip('no_backend')
    return
  }
  const controller = new AbortController()
  mirror.open.add(controller)
  let released = false
  const end = (): void => {
    if (released) return
    released = true
    mirror.open.delete(controller)
    mirror.inFlight--
    pool.release(worker)
  }
  // Dispatcher's own request(): the agent's override sends an exchange's target only while reply.from() runs.
  ;(forwarder.agent as Dispatcher).request({
    origin: worker.origin,
    path: target,
    method: request.method as Dispatcher.HttpMethod,
    headers: headers as Record<string, string>,
    body: chunks === undefined ? null : Readable.from(chunks),
    signal: controller.signal,
    headersTimeout: config.timeout,
    bodyTimeout: config.timeout
  }).then(({ statusCode, body }) => {
    counts.sent++
    worker.served++
    const statusClass = ((statusCode / 100) | 0) - 1
    if (statusClass < 5) worker.responses[statusClass]++
    // Read to its end, so the connection serves again; a body that fails or is cut ends the copy all the same.
    body.on('error', ignore).resume()
    finished(body, end)
  }, (error: Error & { code?: string }) => {
    counts.failed++
    // A copy aborted because the instance closed is not the backend's failure.
    if (!controller.signal.aborted) {
      worker.failed++
      worker.failures[failureReason(error.code ?? '')]++
    }
    end()
  })
}
