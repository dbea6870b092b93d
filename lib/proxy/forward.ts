import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Http2ServerRequest } from 'node:http2'
import type { Socket } from 'node:net'
import { PassThrough, Readable } from 'node:stream'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { FastifyReplyFromHooks } from '@fastify/reply-from'
import {
  BadGatewayError, CircuitOpenError, ClientTimeoutError, GatewayTimeoutError, NoBackendError, QueueFullError, QueueTimeoutError
} from '../errors.js'
import type { PoolConfig } from '../options.js'
import type { PassiveHealth } from '../health/passive.js'
import type { CircuitBreaker } from '../policy/circuit-breaker.js'
import type { RetryBudget } from '../policy/retry-budget.js'
import type { FailureReason, Pool, Worker } from '../pool/pool.js'
import { ClientWatch, type WatchedBody } from './client-watch.js'
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers.js'
import { endGrpc, grpcTimeout, isGrpc } from './grpc.js'
import { readAhead, RequestBody } from './request-body.js'
import { agentConnect, handshakeCodes } from './connect.js'
import { requestKey, type RequestKey } from './request-key.js'
import { switchboard, UpstreamAgent, type UpstreamExchange } from './upstream-agent.js'
import { Tunnel, type TunnelExchange } from './tunnel.js'
import { kUpgrade, type UpgradeRequest } from './upgrade-takeover.js'
import { logAccess } from './access-log.js'
import { Deadlines } from './deadlines.js'
import { Sticky } from '../policy/sticky.js'
import { clientGone, responseCompleted } from './response-end.js'
import type { RequestTrace, RouteTracing } from '../tracing/tracing.js'

export const kExchange = Symbol('goload.exchange')
export type Response = ServerResponse & { [kExchange]?: Exchange }

// Failures before the backend could have seen any of the request: safe to retry whatever the method.
const notSentCodes = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL', ...handshakeCodes])
// Failures of the connection once the request may have reached the backend: retried for idempotent methods only.
const connectionCodes = new Set([...notSentCodes, 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET'])
const timeoutCodes = new Set(['FST_GOLOAD_UPSTREAM_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'UND_ERR_CONNECT_TIMEOUT'])
// RFC 9110 §9.2.2.
// Why an attempt is stopped when its client leaves. Nothing reports it (a failure after an abort is not the
// backend's), so one shared error spares a stack trace per departed client (~2.7 µs).
const clientLeft = new Error('the client closed the connection before the response was sent')

const idempotentMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

export interface Forwarding {
  pool: Pool
  config: PoolConfig
  passiveHealth: PassiveHealth | undefined
  circuit?: CircuitBreaker
  retryBudget?: RetryBudget
}

type Failure = Error & { code?: string }

/**
 * One request's path through the pool: its body read ahead, maybe a wait in the queue, then one worker at a time
 * (another one on a retry), until the raw response closes. It is also the undici abort signal of its upstream
 * requests, so a client that leaves, a response timeout or a client too slow with its body stops the backend work.
 */
export class Exchange implements UpstreamExchange, WatchedBody, TunnelExchange {
  readonly forwarder: Forwarder
  readonly request: FastifyRequest
  readonly reply: FastifyReply
  readonly target: string
  readonly host: string | undefined
  /** strategy: 'hash': the hash of the request's key, the same for each attempt; undefined without one. */
  readonly key: number | undefined
  /** Its registration logs one access line when it ends. */
  readonly accessLog: boolean
  /** Its spans, when its route is traced. */
  readonly trace: RequestTrace | undefined
  /** The client's request body, when it has one: each attempt reads it through a stream of its own. */
  body: RequestBody | undefined
  worker: Worker | undefined
  /** The worker its sticky cookie named, when that one took it (see Sticky). */
  stickyWorker: Worker | undefined
  /** Workers that already failed this request, so a retry goes elsewhere; made on the first failure. */
  tried: Worker[] | undefined
  queueEntry: ReturnType<Pool['queue']['enqueue']>
  sentAt = 0
  /** Attempts made, one per backend tried. */
  attempts = 0
  /** The last attempt's ms from request sent to response headers, when the sending was timed. */
  upstreamTime: number | undefined
  /** Response body bytes streamed to the client, counted when access logs are on (see countBody). */
  bytes: number | undefined
  /** The FST_GOLOAD_* code of the balancer's own answer. */
  code: string | undefined
  /** ms the backend has to send its response headers: the pool's timeout, or a gRPC call's shorter grpc-timeout. */
  timeout: number
  /** The attempt's response trailers, filled by undici as its body ends (UpstreamExchange). */
  trailers: Record<string, string | string[]> | undefined
  /** The client speaks HTTP/2, so the backend's trailers can go on to it. */
  readonly http2: boolean
  /** A gRPC call (HTTP/2, content-type application/grpc…). */
  grpc = false
  /** A gRPC call's response body as the client is sent it: ended with a status if the backend's fails (see respond). */
  grpcBody: PassThrough | undefined
  /** When the attempt in flight is out of time for its response headers (see Deadlines). */
  deadlineAt = 0
  deadlineIndex = -1
  /** The circuit breaker's epoch when it let this request through; -1 when it has nothing to hear of it. */
  circuitEpoch = -1
  /** The attempt in flight has failed already: undici's own report of it, coming later, is not a second failure. */
  attemptFailed = false
  /** The backend's response headers arrived: from here its failures are the response's, not a retry's. */
  responded = false
  /** The client left, or was too slow: nothing more is the backend's doing. */
  aborted = false
  /** Why the upstream request was aborted, as undici reads it from its signal. */
  reason: Error | undefined
  /** An upgrade (WebSocket): tunnelled once its backend answers 101, and counted on it until either side closes. */
  upgrade: Tunnel | undefined
  // The slow-client watch's view of the body (WatchedBody).
  received = 0
  startedAt = 0
  lastAt = 0
  #ended = false
  #onAbort: (() => void) | undefined

  constructor (forwarder: Forwarder, request: FastifyRequest, reply: FastifyReply, target: string, host: string | undefined, accessLog: boolean, trace: RequestTrace | undefined) {
    this.forwarder = forwarder
    this.request = request
    this.reply = reply
    this.target = target
    this.host = host
    this.key = forwarder.keyOf?.(request)
    this.timeout = forwarder.config.timeout
    this.http2 = request.raw.httpVersionMajor === 2
    // A line nobody would see (logger off, or the route's logLevel above info) is not built, nor its body counted.
    this.accessLog = accessLog && logsInfo(request.log)
    this.trace = trace
  }

  get ended (): boolean {
    return this.#ended
  }

  get paused (): boolean {
    // Not yet sent to a backend while waiting in the queue, or held back by a backend slow to read it.
    return this.body?.rest?.isPaused() === true
  }

  /** Sends the request to this worker, already acquired for it. */
  start (worker: Worker): void {
    this.worker = worker
    this.attempts++
    this.forwarder.send(this, worker)
  }

  // The queue's Waiter interface.
  ready (worker: Worker): void {
    this.queueEntry = undefined
    this.start(worker)
  }

  expired (): void {
    this.queueEntry = undefined
    this.forwarder.pool.shed.queue_timeout++
    this.reply.header('retry-after', this.forwarder.retryAfter).send(new QueueTimeoutError())
  }

  upstreamFailed (error: Error): void {
    this.forwarder.failed(this, error)
  }

  // The Tunnel's reports of its attempts (TunnelExchange).
  tunnelConnected (): void {
    this.sentAt = performance.now()
  }

  tunnelFailed (error: Error): void {
    this.forwarder.failed(this, error)
  }

  tunnelRefused (response: IncomingMessage): void {
    this.forwarder.deadlines.stop(this)
    this.forwarder.answered(this, response.statusCode!)
    this.reply.code(response.statusCode!).headers(downstreamResponseHeaders(response.headers))
    this.forwarder.respond(this, { statusCode: response.statusCode!, stream: response })
  }

  tunnelOpened (): void {
    this.forwarder.deadlines.stop(this)
    this.forwarder.answered(this, 101)
    // The 101 and what follows go out on the socket, past Fastify.
    this.reply.hijack()
    this.forwarder.opened(this)
  }

  /** Counts body bytes for the watch (BodyCounter). */
  bodyBytes (bytes: number): void {
    this.received += bytes
    this.lastAt = performance.now()
  }

  clientTimedOut (): void {
    this.request.log.info({ received: this.received }, 'goload: client too slow with its request body, cut')
    if (this.responded || this.reply.raw.headersSent) {
      this.reply.raw.destroy()
      return
    }
    const error = new ClientTimeoutError()
    this.abort(error)
    // The rest of the body stays unread: the connection cannot carry another request (an HTTP/2 stream is reset on
    // its own, and Connection is not an HTTP/2 header).
    if (!this.http2) this.reply.header('connection', 'close')
    this.reply.send(error)
  }

  /** Stops the upstream attempt in flight, if any: undici fails it with `reason`. */
  abortAttempt (reason: Error): void {
    this.reason = reason
    this.#onAbort?.()
  }

  /** Stops the upstream work for good: the client left or was cut, so no failure from here is the backend's. */
  abort (reason: Error): void {
    this.aborted = true
    this.abortAttempt(reason)
  }

  /** Ends the exchange: 'close' on the raw response is the one event that comes whatever the ending. */
  end (response: ServerResponse): void {
    if (this.#ended) return
    this.#ended = true
    const { pool, watch } = this.forwarder
    this.forwarder.deadlines.stop(this)
    watch.stop(this)
    if (this.queueEntry !== undefined) pool.queue.cancel(this.queueEntry)
    const worker = this.worker
    // Node's HTTP/2 response says writableFinished for a stream the client reset too (see responseCompleted).
    const finished = responseCompleted(response)
    if (worker !== undefined) {
      if (!finished && !this.aborted) this.abort(clientLeft)
      if (this.upgrade?.switched === true) this.forwarder.closed(this)
      pool.release(worker)
    }
    this.forwarder.circuit?.ended(this)
    if (this.attempts > 1 && this.forwarder.retryBudget !== undefined) this.forwarder.retryBudget.retrying--
    this.trace?.end(this, finished)
    if (!this.accessLog) return
    // A tunnel's line comes when it closes: its bytes are all those the client was sent, the 101 included.
    const tunnel = this.upgrade?.switched === true ? this.upgrade : undefined
    logAccess(this.reply, {
      pool: this.forwarder.config.name,
      backend: worker?.id,
      upstreamTime: this.upstreamTime,
      retries: this.attempts === 0 ? 0 : this.attempts - 1,
      bytes: tunnel?.client.socket.bytesWritten ?? this.bytes ?? sentLength(this.reply),
      code: this.code,
      closed: tunnel?.idled === true ? 'idle' : undefined
    }, tunnel !== undefined, finished, this.trace)
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

/** Whether an info line on this logger goes anywhere: pino says so; Fastify's `logger: false` is one noop for all. */
function logsInfo (log: FastifyRequest['log'] & { isLevelEnabled?: (level: string) => boolean }): boolean {
  return typeof log.isLevelEnabled === 'function' ? log.isLevelEnabled('info') : log.info !== log.fatal
}

function onResponseClose (this: Response): void {
  this[kExchange]?.end(this)
}

/** The upstream response timer: it aborts the attempt, whose failure then answers 504. */
function onDeadline (exchange: Exchange): void {
  const reason = Object.assign(new Error(`no response headers within ${exchange.timeout} ms`), { code: 'FST_GOLOAD_UPSTREAM_TIMEOUT' })
  exchange.abortAttempt(reason)
  // undici fails an aborted request only once it has a connection; one still waiting for one (under a `connections`
  // cap) is answered now.
  exchange.forwarder.failed(exchange, reason)
}

function noop (): void {}

/**
 * A response pipelined behind another on its connection waits for the socket in a list of Node's, and Node never
 * closes it if the connection closes first (the client left): its exchange ends with the connection then.
 */
function endWithConnection (exchange: Exchange, socket: Socket): void {
  const response = exchange.reply.raw
  const onClose = (): void => { exchange.end(response) }
  socket.once('close', onClose)
  response.once('socket', () => { socket.removeListener('close', onClose) })
}

/** The body length of an answer sent whole (the balancer's own), once its headers went out. */
function sentLength (reply: FastifyReply): number {
  return reply.raw.headersSent ? Number(reply.getHeader('content-length') ?? 0) : 0
}

/** The access log's count of the response body, as it flows to the client. */
function countBody (this: Readable & { [kExchange]?: Exchange }, chunk: Buffer): void {
  this[kExchange]!.bytes! += chunk.length
}

/** The upstream response's trailers, as undici parsed them when its body ended, added to the client's response. */
function forwardTrailers (this: Readable & { [kExchange]?: Exchange }): void {
  const { trailers, reply } = this[kExchange]!
  // None (a trailers-only response had its status in its headers): none are added, so that response stays one.
  if (trailers !== undefined && Object.keys(trailers).length > 0) reply.raw.addTrailers(trailers)
}

/** An upstream response body that fails after its headers: the backend's failure, seen once. */
function onResponseBodyError (this: Readable & { [kExchange]?: Exchange }, error: Failure): void {
  const exchange = this[kExchange]
  if (exchange === undefined || exchange.aborted) return
  exchange.forwarder.responseFailed(exchange, error)
  if (exchange.grpcBody !== undefined) {
    exchange.code = endGrpc(exchange.reply, error.code === 'UND_ERR_BODY_TIMEOUT' ? new GatewayTimeoutError() : new BadGatewayError())
    exchange.grpcBody.end()
  }
}

export class Forwarder {
  readonly pool: Pool
  readonly config: PoolConfig
  readonly passiveHealth: PassiveHealth | undefined
  readonly circuit: CircuitBreaker | undefined
  readonly retryBudget: RetryBudget | undefined
  readonly agent: UpstreamAgent
  readonly watch: ClientWatch
  readonly deadlines: Deadlines<Exchange>
  /** Seconds a client is told to wait when the balancer sheds its request. */
  readonly retryAfter: string
  readonly fromOptions: FastifyReplyFromHooks
  /** Upgraded connections open through this pool's backends. */
  readonly tunnels = new Set<Exchange>()
  /** strategy: 'hash' only: the key of each request. */
  readonly keyOf: RequestKey | undefined
  /** The pool's sticky cookie, when it has one. */
  readonly sticky: Sticky | undefined

  constructor ({ pool, config, passiveHealth, circuit, retryBudget }: Forwarding) {
    this.pool = pool
    this.config = config
    this.passiveHealth = passiveHealth
    this.circuit = circuit
    this.retryBudget = retryBudget
    this.agent = new UpstreamAgent({
      // No cap by default, as nginx: a cap turns a few hundred slow clients into a full outage.
      connections: config.connections === Infinity ? null : config.connections,
      pipelining: config.pipelining,
      // The response timeout is ours (undici's timers fire up to a second late); undici keeps the body timeout.
      headersTimeout: 0,
      bodyTimeout: config.timeout,
      ...agentConnect(config)
    })
    this.watch = new ClientWatch(config.clientTimeout, config.clientMinRate)
    this.deadlines = new Deadlines(config.timeout, onDeadline)
    this.retryAfter = String(Math.max(1, Math.ceil(config.queue.timeout / 1000)))
    this.keyOf = config.hashOn === undefined ? undefined : requestKey(config.hashOn)
    this.sticky = config.sticky === undefined ? undefined : new Sticky(config.name, pool, config.sticky)
    // reply-from types its hooks for HTTP/2 servers too; ours run on the HTTP/1 server this pool listens on.
    this.fromOptions = {
      rewriteRequestHeaders: upstreamRequestHeaders,
      rewriteHeaders: downstreamResponseHeaders,
      onResponse: (request: FastifyRequest, reply: FastifyReply, upstream: { statusCode: number, stream: Readable }) => { this.#onResponse(reply, upstream) },
      // reply-from's own refusals of a response (an invalid status code); failures to connect or to get response
      // headers come to failed() straight from the agent.
      onError: (reply: FastifyReply, { error }: { error: Error }) => { this.failed((reply.raw as Response)[kExchange]!, error) },
      // Balancing decides where a request goes again, not reply-from's retry of the same backend.
      retryDelay: () => null
    } as unknown as FastifyReplyFromHooks
  }

  /**
   * Match is done: `target` is the request target to send (its prefix already rewritten), `host` the Host to send
   * (undefined: the backend's own). Read a small body, then acquire (or wait), forward, and release on close.
   */
  forward (request: FastifyRequest, reply: FastifyReply, target: string, host: string | undefined, accessLog: boolean, tracing?: RouteTracing): void {
    const exchange = this.#exchange(request, reply, target, host, accessLog, tracing)
    if (exchange === undefined) return

    const upgrade = (request.raw as UpgradeRequest)[kUpgrade]
    if (upgrade !== undefined) {
      // What the client sent after the request head goes to the backend once it has switched protocols.
      exchange.upgrade = new Tunnel(upgrade, this.config)
      this.dispatch(exchange)
      return
    }
    // HTTP/1.1 never carries gRPC: one property read keeps it off that path.
    const grpc = exchange.grpc = exchange.http2 && isGrpc(request.headers)
    if (grpc) exchange.timeout = Math.min(exchange.timeout, grpcTimeout(request.headers) ?? Infinity)
    if (!hasBody(request, exchange.http2)) {
      this.dispatch(exchange)
      return
    }
    // Fastify only parses bodies it has a content type for; any other body is still streamed through.
    const source = request.body instanceof Readable ? request.body : request.raw
    if (grpc) {
      // A call's messages flow both ways as they come: read ahead, a bidirectional call whose client waits for an
      // answer to its first message would wait for ever. Nor is a stream that idles slow: it is load, as a
      // WebSocket is, and the slow-client watch does not time it.
      exchange.body = new RequestBody([], source)
      this.dispatch(exchange)
      return
    }
    this.watch.start(exchange)
    source.on('end', () => { this.watch.stop(exchange) })
    readAhead(source, this.config.bufferBody, exchange, (body) => {
      exchange.body = body
      this.dispatch(exchange)
    })
  }

  /** The balancer's own answer to a request this pool's route took (a target it refuses), logged like the others. */
  refuse (request: FastifyRequest, reply: FastifyReply, accessLog: boolean, error: Error, tracing?: RouteTracing): void {
    this.#exchange(request, reply, request.url, undefined, accessLog, tracing)
    reply.send(error)
  }

  #exchange (request: FastifyRequest, reply: FastifyReply, target: string, host: string | undefined, accessLog: boolean, tracing: RouteTracing | undefined): Exchange | undefined {
    const response: Response = reply.raw
    // The client left before we got here: nobody to answer, nothing to count.
    if (clientGone(response)) return undefined
    const exchange = new Exchange(this, request, reply, target, host, accessLog, tracing?.start(request, this.config.name, this.config.strategy))
    response[kExchange] = exchange
    // 'close' comes once per response; `on` spares the wrapper `once` would make for every request.
    response.on('close', onResponseClose)
    if (response.socket === null) endWithConnection(exchange, request.raw.socket)
    return exchange
  }

  /** Acquire a worker, or wait for one in the queue. */
  dispatch (exchange: Exchange): void {
    if (exchange.ended || exchange.reply.sent) return
    if (this.circuit !== undefined && !this.circuit.admit(exchange)) {
      this.pool.shed.circuit_open++
      exchange.reply.header('retry-after', String(this.circuit.retryAfter())).send(new CircuitOpenError())
      return
    }
    // Requests already waiting go first: a newcomer never overtakes the queue.
    // A valid sticky cookie goes first, over any strategy's own choice.
    const worker = this.pool.queue.length === 0 ? (this.sticky?.acquire(exchange) ?? this.pool.acquire(undefined, exchange.key)) : undefined
    if (worker !== undefined) {
      exchange.start(worker)
    } else if (this.pool.empty) {
      this.pool.shed.no_backend++
      exchange.reply.send(new NoBackendError())
    } else {
      exchange.queueEntry = this.pool.queue.enqueue(exchange)
      exchange.trace?.queued()
      if (exchange.queueEntry === undefined) {
        this.pool.shed.queue_full++
        exchange.reply.header('retry-after', this.retryAfter).send(new QueueFullError())
      }
    }
  }

  send (exchange: Exchange, worker: Worker): void {
    // reply-from streams request.body to the backend; each attempt gets a stream of its own (see RequestBody).
    if (exchange.body !== undefined) exchange.request.body = exchange.body.attempt()
    exchange.attemptFailed = false
    this.deadlines.start(exchange, exchange.timeout)
    exchange.trace?.attempt(worker, exchange.attempts, exchange.target)
    if (exchange.upgrade !== undefined) {
      exchange.upgrade.send(exchange, worker.url)
      return
    }
    this.agent.exchange = exchange
    switchboard.agent = this.agent
    try {
      // The origin only: the agent sends the request target as received (see UpstreamAgent).
      // It cannot throw: reply-from throws only for a source it cannot parse or a GET given a body, and the source
      // is a backend origin checked at register. (Its path checks never see the client's target.)
      exchange.reply.from(worker.origin, this.fromOptions)
    } finally {
      this.agent.exchange = undefined
      switchboard.agent = undefined
    }
  }

  /** An attempt failed before its response headers: retry elsewhere, or answer 502/504. */
  failed (exchange: Exchange, error: Failure): void {
    this.deadlines.stop(exchange)
    const { reply } = exchange
    // A request the client abandoned, or that we cut, is not the backend's failure, and nobody is left to answer.
    if (exchange.aborted || exchange.attemptFailed || reply.sent || reply.raw.destroyed) return
    exchange.attemptFailed = true
    const worker = exchange.worker!
    const code = this.#count(exchange, worker, error)
    exchange.trace?.failed(code)
    if (this.#mayRetry(exchange, code) && (this.retryBudget === undefined || this.#withinBudget())) {
      exchange.tried ??= []
      exchange.tried.push(worker)
      // A keyed request walks on round the ring, past the backends it tried.
      const next = this.pool.acquire(exchange.tried, exchange.key)
      if (next !== undefined) {
        worker.retried++
        // Its first retry makes it one of the retries in flight, until it ends (see Exchange.end).
        if (exchange.attempts === 1 && this.retryBudget !== undefined) this.retryBudget.retrying++
        this.pool.release(worker)
        exchange.start(next)
        return
      }
    }
    this.circuit?.record(exchange, true)
    reply.send(timeoutCodes.has(code) ? new GatewayTimeoutError() : new BadGatewayError())
  }

  /**
   * The response body failed after its headers. Before any of it reached the client, the error handler answers a
   * clean 502/504 (see proxyRoutes); after, Fastify cuts the client's connection, so no truncated body passes for
   * a whole one. Either way it is counted once here. Not retried: the backend has answered and may have acted.
   */
  responseFailed (exchange: Exchange, error: Failure): void {
    if (exchange.worker === undefined) return
    // Counted first: `trace?.failed(…)` would not even evaluate its argument without a trace.
    const code = this.#count(exchange, exchange.worker, error)
    exchange.trace?.failed(code)
    // Fastify logs the same failure again, with a stack, when it cuts a response already started: the line
    // above, which names the backend, stands for both.
    const { log } = exchange.reply
    if (exchange.reply.raw.headersSent && log.level !== 'fatal' && log.level !== 'silent') exchange.reply.log = log.child({}, { level: 'error' })
  }

  /** Counts a failure at this worker, logs it in one line, and returns its code. */
  #count (exchange: Exchange, worker: Worker, error: Failure): string {
    const code = error.code ?? ''
    const timedOut = timeoutCodes.has(code)
    worker.failed++
    worker.failures[failureReason(code)]++
    if (timedOut || connectionCodes.has(code)) this.passiveHealth?.failure(worker)
    exchange.request.log.warn({ backend: worker.id, code, cause: error.message, responded: exchange.responded }, timedOut ? 'goload: backend timed out' : 'goload: backend failed')
    return code
  }

  #onResponse (reply: FastifyReply, upstream: { statusCode: number, stream: Readable & { [kExchange]?: Exchange } }): void {
    const exchange = (reply.raw as Response)[kExchange]!
    this.deadlines.stop(exchange)
    // reply-from goes on to here even after it answered an unusable status line with an error.
    if (reply.sent) {
      upstream.stream.destroy()
      return
    }
    this.answered(exchange, upstream.statusCode)
    this.respond(exchange, upstream)
  }

  /** The backend answered this exchange's attempt (its response headers came). */
  answered (exchange: Exchange, status: number): void {
    exchange.responded = true
    const worker = exchange.worker!
    worker.served++
    // 1xx to 5xx; Node's parser lets a status up to 999 through, counted as served only.
    const statusClass = ((status / 100) | 0) - 1
    if (statusClass < 5) worker.responses[statusClass]++
    if (exchange.sentAt !== 0) {
      exchange.upstreamTime = performance.now() - exchange.sentAt
      this.pool.observe(worker, exchange.upstreamTime)
    }
    this.passiveHealth?.answered(worker, status)
    this.circuit?.record(exchange, status >= 500)
    this.sticky?.answered(exchange, status)
  }

  /** Sends the backend's response on to the client, its status and headers already set on the reply. */
  respond (exchange: Exchange, upstream: { statusCode: number, stream: Readable & { [kExchange]?: Exchange } }): void {
    const { reply } = exchange
    const status = upstream.statusCode
    if (status === 304 || status === 204 || status < 200) {
      // No body, whatever Content-Length says (RFC 9110 §8.6: for a 304 it is the length a 200 would have).
      // undici 7 reads one anyway and fails with UND_ERR_RES_CONTENT_LENGTH_MISMATCH; that failure is not ours.
      upstream.stream.on('error', noop).resume()
      exchange.bytes = 0
      reply.send()
      return
    }
    upstream.stream[kExchange] = exchange
    upstream.stream.on('error', onResponseBodyError)
    // Trailers (a gRPC status) go on to an HTTP/2 client; reply-from drops them (fastify-reply-from#429). Listened to
    // before Fastify pipes the body, so they are added before the pipe ends the response.
    if (exchange.http2) upstream.stream.on('end', forwardTrailers)
    if (exchange.accessLog) {
      // Counted as Fastify pipes it to the client. A 'data' listener makes a stream flow at once: paused again, it
      // waits for the pipe, which resumes it (Fastify pipes only after the onSend hooks).
      exchange.bytes = 0
      upstream.stream.on('data', countBody).pause()
    }
    if (exchange.grpc) {
      // The backend's body failing mid-way would reset the client's stream, which a gRPC client reports as INTERNAL
      // "Call ended without gRPC status": Fastify sees this stand-in end instead, with a status (see onResponseBodyError).
      exchange.grpcBody = upstream.stream.pipe(new PassThrough())
      reply.send(exchange.grpcBody)
      return
    }
    reply.send(upstream.stream)
  }

  /** nginx's proxy_next_upstream: only failures before any answer, and never a body that is already spent. */
  #mayRetry (exchange: Exchange, code: string): boolean {
    if ((exchange.tried?.length ?? 0) >= this.config.retries || !connectionCodes.has(code)) return false
    // A body that has started to flow to a backend cannot be sent again.
    if (exchange.body?.spent === true) return false
    return notSentCodes.has(code) || idempotentMethods.has(exchange.request.method) || this.config.retryNonIdempotent
  }

  /** The retry budget allows a retry now. */
  #withinBudget (): boolean {
    const budget = this.retryBudget!
    let inFlight = 0
    for (const worker of this.pool.workers) inFlight += worker.pending
    return budget.allow(inFlight)
  }

  /** An upgraded connection opened: it counts on its backend's `upgraded` until it closes. */
  opened (exchange: Exchange): void {
    exchange.worker!.upgraded++
    this.tunnels.add(exchange)
  }

  closed (exchange: Exchange): void {
    exchange.worker!.upgraded--
    this.tunnels.delete(exchange)
    exchange.upgrade!.close()
  }

  /** Ends the upgraded connections open through `worker` (or every backend): no frame can say goodbye without parsing. */
  cut (worker?: Worker): void {
    for (const { upgrade, worker: through } of this.tunnels) {
      if (worker === undefined || through === worker) upgrade!.cut()
    }
  }

  /** Drops what the client is still sending, and stops the deadline sweep: the pool is closing. */
  close (): void {
    this.watch.close()
    this.deadlines.close()
    this.circuit?.close()
  }
}

/** The metrics' reason for a failure code: could not connect, the connection broke, too slow, or an unusable answer. */
export function failureReason (code: string): FailureReason {
  if (timeoutCodes.has(code)) return 'timeout'
  if (notSentCodes.has(code)) return 'refused'
  if (connectionCodes.has(code)) return 'reset'
  return 'bad_response'
}

function hasBody (request: FastifyRequest, http2: boolean): boolean {
  const headers = request.headers
  if (request.method === 'GET' || request.method === 'HEAD') return false
  // HTTP/2 has no transfer-encoding, and a gRPC call no content-length: the HEADERS frame says whether data follows.
  if (http2) return !(request.raw as unknown as Http2ServerRequest).stream.endAfterHeaders
  return headers['transfer-encoding'] !== undefined || (headers['content-length'] !== undefined && headers['content-length'] !== '0')
}
