import type { ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import replyFrom, { type FastifyReplyFromHooks } from '@fastify/reply-from'
import { Agent, type Dispatcher } from 'undici'
import { BadGatewayError, GatewayTimeoutError, NoBackendError, QueueFullError, QueueTimeoutError } from '../errors.js'
import { downstreamResponseHeaders, upstreamRequestHeaders } from '../proxy/headers.js'
import { HealthChecker } from '../health/active.js'
import { agentTls, handshakeCodes } from './tls.js'
import type { PoolConfig } from '../options.js'
import type { PassiveHealth } from '../health/passive.js'
import type { Pool, Worker } from '../pool/pool.js'

const kExchange = Symbol('goload.exchange')
type Response = ServerResponse & { [kExchange]?: Exchange }

const timeoutCodes = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT'])
// Failures before the backend could have seen any of the request: safe to retry whatever the method.
const notSentCodes = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', ...handshakeCodes])
// Failures of the connection once the request may have reached the backend: retried for idempotent methods only.
const connectionCodes = new Set([...notSentCodes, 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET'])
// RFC 9110 §9.2.2.
const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

export interface Forwarding {
  pool: Pool
  config: PoolConfig
  passiveHealth: PassiveHealth | undefined
}

/**
 * One request's path through the pool: maybe a wait in the queue, then one worker at a time (another one on a
 * retry), until the raw response closes. It also serves as the undici abort signal of its upstream requests
 * (undici takes any emitter with `once`/`removeListener` and `aborted`), so a client that leaves stops the
 * backend work it started.
 */
class Exchange {
  readonly forwarder: Forwarder
  readonly request: FastifyRequest
  readonly reply: FastifyReply
  /** The client's request body, when it has one: each attempt reads it through its own AttemptBody. */
  body: Readable | undefined
  worker: Worker | undefined
  /** Workers that already failed this request, so a retry goes elsewhere; made on the first failure. */
  tried: Worker[] | undefined
  queueEntry: ReturnType<Pool['queue']['enqueue']>
  /** When the current attempt was written to its backend (performance.now()), for peak-ewma; 0 when untimed. */
  sentAt = 0
  aborted = false
  reason: Error | undefined
  #ended = false
  #onAbort: (() => void) | undefined

  constructor (forwarder: Forwarder, request: FastifyRequest, reply: FastifyReply) {
    this.forwarder = forwarder
    this.request = request
    this.reply = reply
  }

  /** Sends the request to this worker, already acquired for it. */
  start (worker: Worker): void {
    this.worker = worker
    this.forwarder.send(this, worker)
  }

  // The queue's Waiter interface.
  ready (worker: Worker): void {
    this.queueEntry = undefined
    this.start(worker)
  }

  expired (): void {
    this.queueEntry = undefined
    this.reply.header('retry-after', this.forwarder.retryAfter).send(new QueueTimeoutError())
  }

  /** Ends the exchange: 'close' on the raw response is the one event that comes whatever the ending. */
  end (response: ServerResponse): void {
    if (this.#ended) return
    this.#ended = true
    const { pool } = this.forwarder
    if (this.queueEntry !== undefined) pool.queue.cancel(this.queueEntry)
    if (this.worker === undefined) return
    if (!response.writableFinished) {
      this.aborted = true
      this.reason = new Error('the client closed the connection before the response was sent')
      this.#onAbort?.()
    }
    pool.release(this.worker)
  }

  on (_event: 'abort', listener: () => void): this {
    this.#onAbort = listener
    return this
  }

  once (event: 'abort', listener: () => void): this {
    return this.on(event, listener)
  }

  removeListener (_event: 'abort', listener: () => void): this {
    if (this.#onAbort === listener) this.#onAbort = undefined
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
  /** peak-ewma wants to know when each request actually left for its backend. */
  timed = false

  request (options: Dispatcher.RequestOptions, callback?: unknown): never {
    if (this.signal !== undefined) options.signal = this.signal as unknown as Dispatcher.RequestOptions['signal']
    return (super.request as (options: Dispatcher.RequestOptions, callback?: unknown) => never)(options, callback)
  }

  dispatch (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const exchange = this.signal
    if (this.timed && exchange !== undefined) {
      // undici calls onConnect as it writes the request on a connection: from there to the response headers is
      // the backend's own latency, without the time spent waiting for a connection or in our event loop.
      const onConnect = handler.onConnect!
      handler.onConnect = (...args: Parameters<typeof onConnect>) => {
        exchange.sentAt = performance.now()
        onConnect.apply(handler, args)
      }
    }
    return super.dispatch(options, handler)
  }
}

class Forwarder {
  readonly pool: Pool
  readonly config: PoolConfig
  readonly passiveHealth: PassiveHealth | undefined
  readonly agent: UpstreamAgent
  /** Seconds a client is told to wait when the balancer sheds its request. */
  readonly retryAfter: string
  readonly fromOptions: FastifyReplyFromHooks

  constructor ({ pool, config, passiveHealth }: Forwarding) {
    this.pool = pool
    this.config = config
    this.passiveHealth = passiveHealth
    // The timeouts live on the agent, not on each request: undici then keeps no per-request timer settings.
    this.agent = new UpstreamAgent({
      connections: config.connections,
      pipelining: config.pipelining,
      headersTimeout: config.timeout,
      bodyTimeout: config.timeout,
      ...agentTls(config)
    })
    this.agent.timed = config.strategy === 'peak-ewma'
    this.retryAfter = String(Math.max(1, Math.ceil(config.queue.timeout / 1000)))
    // reply-from types its hooks for HTTP/2 servers too; ours run on the HTTP/1 server this pool listens on.
    this.fromOptions = {
      rewriteRequestHeaders: upstreamRequestHeaders,
      rewriteHeaders: downstreamResponseHeaders,
      onResponse: (request: FastifyRequest, reply: FastifyReply, upstream: { statusCode: number, stream: Readable }) => { this.#onResponse(reply, upstream) },
      onError: (reply: FastifyReply, { error }: { error: Error }) => { this.#onError(reply, error) },
      // Balancing decides where a request goes again, not reply-from's retry of the same backend.
      retryDelay: () => null
    } as unknown as FastifyReplyFromHooks
  }

  /** The route handler: match is done, now acquire (or wait), forward, and release on close. */
  forward (request: FastifyRequest, reply: FastifyReply): void {
    const response: Response = reply.raw
    // The client left before we got here: nobody to answer, nothing to count.
    if (response.destroyed) return
    const exchange = new Exchange(this, request, reply)
    response[kExchange] = exchange
    // 'close' comes once per response; `on` spares the wrapper `once` would make for every request.
    response.on('close', onResponseClose)

    // Fastify only parses bodies it has a content type for; any other body is still streamed through.
    if (request.body === undefined && hasBody(request)) request.body = request.raw
    if (request.body instanceof Readable) exchange.body = request.body

    // Requests already waiting go first: a newcomer never overtakes the queue.
    const worker = this.pool.queue.length === 0 ? this.pool.acquire() : undefined
    if (worker !== undefined) {
      exchange.start(worker)
    } else if (this.pool.empty) {
      reply.send(new NoBackendError())
    } else {
      exchange.queueEntry = this.pool.queue.enqueue(exchange)
      if (exchange.queueEntry === undefined) reply.header('retry-after', this.retryAfter).send(new QueueFullError())
    }
  }

  send (exchange: Exchange, worker: Worker): void {
    // reply-from streams request.body to the backend; each attempt gets a stand-in of its own (see AttemptBody).
    if (exchange.body !== undefined) exchange.request.body = new AttemptBody(exchange.body)
    this.agent.signal = exchange
    try {
      exchange.reply.from(worker.url + originForm(exchange.request.raw.url ?? '/'), this.fromOptions)
    } catch (error) {
      // reply.from refuses some targets before sending anything (a path that climbs with '..': 400). Answered here,
      // not thrown: a request sent from the queue has no route handler to catch it, only an event listener or a timer.
      exchange.reply.send(error)
    } finally {
      this.agent.signal = undefined
    }
  }

  #onResponse (reply: FastifyReply, upstream: { statusCode: number, stream: Readable }): void {
    // reply-from goes on to here even after it answered an unusable status line with an error.
    if (reply.sent) {
      upstream.stream.destroy()
      return
    }
    const exchange = (reply.raw as Response)[kExchange]!
    exchange.worker!.served++
    if (exchange.sentAt !== 0) this.pool.observe(exchange.worker!, performance.now() - exchange.sentAt)
    this.passiveHealth?.answered(exchange.worker!, upstream.statusCode)
    reply.send(upstream.stream)
  }

  #onError (reply: FastifyReply, error: Error & { cause?: unknown, statusCode?: number }): void {
    const exchange = (reply.raw as Response)[kExchange]!
    // A request the client abandoned is not the backend's failure, and nobody is left to answer.
    if (exchange.aborted || reply.raw.destroyed) return
    const worker = exchange.worker!
    const cause = (error.cause ?? error) as Error & { code?: string }
    const code = cause.code ?? ''
    const timedOut = error.statusCode === 504 || timeoutCodes.has(code)
    worker.failed++
    if (timedOut || connectionCodes.has(code)) this.passiveHealth?.failure(worker)
    reply.log.warn({ backend: worker.id, url: worker.url, err: cause }, timedOut ? 'goload: backend timed out' : 'goload: backend failed')

    if (this.#mayRetry(exchange, code)) {
      exchange.tried ??= []
      exchange.tried.push(worker)
      const next = this.pool.acquire(exchange.tried)
      if (next !== undefined) {
        worker.retried++
        this.pool.release(worker)
        exchange.start(next)
        return
      }
    }
    reply.send(timedOut ? new GatewayTimeoutError() : new BadGatewayError())
  }

  /** nginx's proxy_next_upstream: only failures before any answer, and never a body that is already spent. */
  #mayRetry (exchange: Exchange, code: string): boolean {
    if ((exchange.tried?.length ?? 0) >= this.config.retries || !connectionCodes.has(code)) return false
    // A body that has started to flow to a backend cannot be sent again.
    if (exchange.body?.readableDidRead === true) return false
    return notSentCodes.has(code) || idempotentMethods.has(exchange.request.method) || this.config.retryNonIdempotent
  }
}

/**
 * The client's request body as one upstream attempt reads it. undici destroys the body of a request that fails,
 * and destroying the client's own request would close the connection we still have to answer on (and leave
 * nothing to retry with); this stand-in is what it destroys instead. It reads the client's body only once undici
 * starts sending it, so a failure before that (connection refused) leaves the body whole for another backend.
 */
class AttemptBody extends Readable {
  readonly #source: Readable
  #flowing = false

  constructor (source: Readable) {
    super()
    this.#source = source
  }

  _read (): void {
    if (!this.#flowing) {
      this.#flowing = true
      this.#source.on('data', this.#onData).on('end', this.#onEnd).on('error', this.#onError).on('close', this.#onClose)
    }
    this.#source.resume()
  }

  _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#flowing) {
      this.#source.off('data', this.#onData).off('end', this.#onEnd).off('error', this.#onError).off('close', this.#onClose)
      this.#source.pause()
    }
    callback(error)
  }

  #onData = (chunk: Buffer): void => {
    if (!this.push(chunk)) this.#source.pause()
  }

  #onEnd = (): void => { this.push(null) }

  #onError = (error: Error): void => { this.destroy(error) }

  // The client went away in the middle of its upload.
  #onClose = (): void => {
    if (!this.#source.readableEnded) this.destroy(Object.assign(new Error('the client request closed before its body ended'), { code: 'ECONNABORTED' }))
  }
}

/**
 * The proxy routes of one pool, in their own encapsulated context so that reply.from, the body pass-through
 * and the undici agent of one registration never meet another's.
 */
export async function proxyRoutes (fastify: FastifyInstance, forwarding: Forwarding): Promise<void> {
  const forwarder = new Forwarder(forwarding)
  const { agent, pool, config } = forwarder
  await fastify.register(replyFrom, { undici: agent as unknown as Dispatcher, disableRequestLogging: true })

  if (config.healthCheck !== undefined) {
    // Probes have connections of their own, as HAProxy's checks do: a backend whose traffic connections are all
    // busy is busy, not down, and a probe queued behind them would take it out of rotation for being in use.
    const probes = new Agent({ connections: 1, ...agentTls(config) })
    const checker = new HealthChecker(pool, probes, config.healthCheck, fastify.log)
    checker.start()
    fastify.addHook('onClose', async () => {
      checker.stop()
      await probes.destroy()
    })
  }

  // fastify.close(): Fastify stops accepting and waits for requests in flight; past closeTimeout, cut them.
  let cut: NodeJS.Timeout | undefined
  fastify.addHook('preClose', async () => {
    cut = setTimeout(() => {
      pool.queue.close()
      agent.destroy().catch(() => {})
    }, config.closeTimeout)
  })
  fastify.addHook('onClose', async () => {
    clearTimeout(cut)
    pool.close()
    // Past closeTimeout the agent was destroyed already; close() would reject.
    if (!agent.destroyed) await agent.close()
  })

  // Bodies of any type are streamed to the backend as they arrive, never parsed or buffered whole.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })

  const forward = forwarder.forward.bind(forwarder)
  fastify.all('/', forward)
  fastify.all('/*', forward)
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
