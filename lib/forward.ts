import type { ServerResponse } from 'node:http'
import type { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import replyFrom, { type FastifyReplyFromHooks } from '@fastify/reply-from'
import { Agent, type Dispatcher } from 'undici'
import { BadGatewayError, GatewayTimeoutError, NoBackendError } from './errors.js'
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers.js'
import type { PoolConfig } from './options.js'
import type { Pool, Worker } from './pool.js'

const kExchange = Symbol('goload.exchange')
type Response = ServerResponse & { [kExchange]?: Exchange }

const timeoutCodes = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT'])

/**
 * One request's stay on one worker, from acquire to release.
 * It also serves as the undici abort signal of the upstream request (undici accepts any emitter with
 * `once`/`removeListener` and `aborted`), so a client that leaves stops the backend work it started.
 */
class Exchange {
  readonly pool: Pool
  readonly worker: Worker
  aborted = false
  reason: Error | undefined
  #released = false
  #onAbort: (() => void) | undefined

  constructor (pool: Pool, worker: Worker) {
    this.pool = pool
    this.worker = worker
  }

  /** Ends the exchange: 'close' on the raw response is the one event that comes whatever the ending. */
  end (response: ServerResponse): void {
    if (this.#released) return
    this.#released = true
    if (!response.writableFinished) {
      this.aborted = true
      this.reason = new Error('the client closed the connection before the response was sent')
      this.#onAbort?.()
    }
    this.pool.release(this.worker)
  }

  on (_event: 'abort', listener: () => void): this {
    this.#onAbort = listener
    return this
  }

  once (event: 'abort', listener: () => void): this {
    return this.on(event, listener)
  }

  removeListener (): this {
    this.#onAbort = undefined
    return this
  }
}

function onResponseClose (this: Response): void {
  this[kExchange]?.end(this)
}

/**
 * undici's Agent, with one keep-alive pool per backend, that hands each upstream request the abort signal of
 * the exchange it belongs to. reply.from() calls request() synchronously, so the signal set just before that call
 * is the right one; it is cleared right after, so a later call can never pick up another request's signal.
 */
class UpstreamAgent extends Agent {
  signal: Exchange | undefined

  request (options: Dispatcher.RequestOptions, callback?: unknown): never {
    options.signal = this.signal as unknown as Dispatcher.RequestOptions['signal']
    return (super.request as (options: Dispatcher.RequestOptions, callback?: unknown) => never)(options, callback)
  }
}

/**
 * The proxy routes of one pool, in their own encapsulated context so that reply.from, the body pass-through
 * and the undici agent of one registration never meet another's.
 */
export async function proxyRoutes (fastify: FastifyInstance, { pool, config }: { pool: Pool, config: PoolConfig }): Promise<void> {
  const agent = new UpstreamAgent({ connections: config.connections, pipelining: config.pipelining })
  await fastify.register(replyFrom, { undici: agent as unknown as Dispatcher, disableRequestLogging: true })
  fastify.addHook('onClose', async () => { await agent.close() })

  // Bodies of any type are streamed to the backend as they arrive, never parsed or buffered whole.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })

  // reply-from types its hooks for HTTP/2 servers too; ours run on the HTTP/1 server this pool listens on.
  const fromOptions = {
    timeout: config.timeout,
    rewriteRequestHeaders: upstreamRequestHeaders,
    rewriteHeaders: downstreamResponseHeaders,
    onResponse,
    onError,
    // Balancing decides where a request goes again, not reply-from's retry of the same backend.
    retryDelay: () => null
  } as FastifyReplyFromHooks

  function forward (request: FastifyRequest, reply: FastifyReply): void {
    const response: Response = reply.raw
    // The client left before we got here: nobody to answer, nothing to count.
    if (response.destroyed) return
    const worker = pool.acquire()
    if (worker === undefined) {
      reply.send(new NoBackendError())
      return
    }
    const exchange = new Exchange(pool, worker)
    response[kExchange] = exchange
    response.once('close', onResponseClose)

    // Fastify only parses bodies it has a content type for; any other body is still streamed through.
    if (request.body === undefined && hasBody(request)) request.body = request.raw

    agent.signal = exchange
    try {
      reply.from(worker.url + originForm(request.raw.url ?? '/'), fromOptions)
    } finally {
      agent.signal = undefined
    }
  }

  fastify.all('/', forward)
  fastify.all('/*', forward)
}

function onResponse (_request: FastifyRequest, reply: FastifyReply, upstream: { stream: Readable }): void {
  // reply-from goes on to here even after it answered an unusable status line with an error.
  if (reply.sent) {
    upstream.stream.destroy()
    return
  }
  const exchange = (reply.raw as Response)[kExchange]
  if (exchange !== undefined) exchange.worker.served++
  reply.send(upstream.stream)
}

function onError (reply: FastifyReply, { error }: { error: Error & { cause?: unknown, statusCode?: number } }): void {
  const exchange = (reply.raw as Response)[kExchange]
  // A request the client abandoned is not the backend's failure, and nobody is left to answer.
  if (exchange === undefined || exchange.aborted || reply.raw.destroyed) return
  const cause = (error.cause ?? error) as Error & { code?: string }
  exchange.worker.failed++
  const timedOut = error.statusCode === 504 || timeoutCodes.has(cause.code ?? '')
  reply.log.warn({ backend: exchange.worker.id, url: exchange.worker.url, err: cause }, timedOut ? 'goload: backend timed out' : 'goload: backend failed')
  reply.send(timedOut ? new GatewayTimeoutError() : new BadGatewayError())
}

/**
 * The path and query to send upstream. An absolute-form target (`GET http://other/ HTTP/1.1`) keeps only its
 * path: the backend is always the one the pool chose, never one the request names.
 */
function originForm (url: string): string {
  if (url.charCodeAt(0) === 47 /* '/' */) return url
  try {
    const parsed = new URL(url)
    return parsed.pathname + parsed.search
  } catch {
    return '/'
  }
}

function hasBody (request: FastifyRequest): boolean {
  const headers = request.headers
  if (request.method === 'GET' || request.method === 'HEAD') return false
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0')
}
