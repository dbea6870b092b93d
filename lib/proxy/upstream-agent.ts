import type { Dispatcher } from 'undici'
import { RenewableAgent } from './renewable-agent.js'

/** What the agent needs of the exchange an upstream request belongs to. */
export interface UpstreamExchange {
  /** The path and query to send, exactly as the client sent them (with the route's prefix rewritten, if it says so). */
  readonly target: string
  /** The Host header to send; undefined: the backend's own host:port. */
  readonly host: string | undefined
  /** When the request was written to its backend (performance.now()): latency for every strategy (metrics, peak-ewma, access log). */
  sentAt: number
  /** The attempt's response trailers: undici's object, filled as the response body ends. */
  trailers: Record<string, string | string[]> | undefined
  /** The client speaks HTTP/2, so it can be sent trailers: they are worth reading from an HTTP/2 backend. */
  readonly http2: boolean
  /** The attempt failed before any response headers: the exchange decides what happens next. */
  upstreamFailed (error: Error): void
}

type Callback = (error: Error | null, data?: unknown) => void

const kTimedExchange = Symbol('goload.timedExchange')
const kOnConnect = Symbol('goload.onConnect')
const kOnComplete = Symbol('goload.onComplete')
// undici passes a context after abort to some handlers: handed on as it comes.
type OnConnect = (abort: Parameters<NonNullable<Dispatcher.DispatchHandler['onConnect']>>[0], context?: unknown) => void
type OnComplete = (trailers: unknown) => void
type TimedHandler = Dispatcher.DispatchHandler & { [kTimedExchange]: UpstreamExchange, [kOnConnect]: OnConnect, [kOnComplete]: OnComplete }

/**
 * undici calls onConnect as it writes the request on a connection: from there to the response headers is the
 * backend's own latency, without the time spent waiting for a connection or in our event loop.
 */
function timedOnConnect (this: TimedHandler, abort: Parameters<OnConnect>[0], context?: unknown): void {
  this[kTimedExchange].sentAt = performance.now()
  this[kOnConnect](abort, context)
}

/**
 * undici's HTTP/2 client hands a request's handler its trailers as Node's object, where the request() handler
 * expects HTTP/1.1's flat list of names and values, so ResponseData.trailers stays empty (undici 7.30, client-h2.js
 * 'trailers'): given as the list, they fill it.
 */
function trailersOnComplete (this: TimedHandler, trailers: unknown): void {
  if (Array.isArray(trailers) || trailers === null || typeof trailers !== 'object') {
    this[kOnComplete](trailers)
    return
  }
  const list: string[] = []
  for (const name of Object.keys(trailers)) {
    const value = (trailers as Record<string, string | string[]>)[name]
    if (Array.isArray(value)) for (const each of value) list.push(name, each)
    else list.push(name, String(value))
  }
  this[kOnComplete](list)
}

/**
 * undici's Agent, with one keep-alive pool per backend, that takes three things from the exchange an upstream
 * request belongs to: the request target, sent as received (reply-from would send the path of a WHATWG URL,
 * normalised); the abort signal, so a client that leaves stops the backend work it started (undici takes any
 * emitter with `once`/`removeListener`, `aborted` and `reason`); and the failure, which goes to the exchange
 * straight away (reply-from would first log a warning with a stack for every failure, client aborts included).
 * reply.from() calls request() synchronously, so the exchange set just before that call is the right one; it is
 * cleared right after, so a later call can never pick up another request's.
 */
export class UpstreamAgent extends RenewableAgent {
  exchange: UpstreamExchange | undefined

  request (options: Dispatcher.RequestOptions, callback?: unknown): never {
    const exchange = this.exchange
    const request = super.request as (options: Dispatcher.RequestOptions, callback?: Callback) => never
    if (exchange === undefined) return request.call(this, options, callback as Callback)
    options.path = exchange.target
    if (exchange.host !== undefined) (options.headers as Record<string, string>).host = exchange.host
    options.signal = exchange as unknown as Dispatcher.RequestOptions['signal']
    return request.call(this, options, (error, data) => {
      if (error !== null) {
        exchange.upstreamFailed(error)
        return
      }
      exchange.trailers = (data as Dispatcher.ResponseData).trailers
      ;(callback as Callback)(null, data)
    })
  }

  dispatch (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const exchange = this.exchange
    // Every request is timed from when it actually left for its backend.
    if (exchange !== undefined) {
      // Symbols on the handler and one shared function: no closure made for every request.
      const timed = handler as TimedHandler
      timed[kTimedExchange] = exchange
      timed[kOnConnect] = handler.onConnect!
      timed.onConnect = timedOnConnect
      if (exchange.http2) {
        timed[kOnComplete] = handler.onComplete as OnComplete
        timed.onComplete = trailersOnComplete as Dispatcher.DispatchHandler['onComplete']
      }
    }
    return super.dispatch(options, handler)
  }
}

/**
 * The dispatcher every reply-from registration is given. One Fastify route may serve the routes of several pools
 * (a host-specific route can win over the one whose prefix Fastify matched), and `reply.from` is bound to the
 * dispatcher of the context it was registered in: this one passes each request on to the agent of the pool whose
 * exchange is being sent, set just before reply.from() is called.
 */
export const switchboard = {
  agent: undefined as UpstreamAgent | undefined,
  request (options: Dispatcher.RequestOptions, callback?: unknown): never {
    return this.agent!.request(options, callback)
  }
}
