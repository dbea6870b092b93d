import { defaultTextMapGetter, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Context, type Span, type TextMapGetter, type TextMapSetter, type Tracer } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base'
import {
  ATTR_CLIENT_ADDRESS, ATTR_ERROR_TYPE, ATTR_HTTP_REQUEST_METHOD, ATTR_HTTP_REQUEST_RESEND_COUNT, ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE, ATTR_NETWORK_PROTOCOL_VERSION, ATTR_SERVER_ADDRESS, ATTR_SERVER_PORT, ATTR_SERVICE_NAME, ATTR_URL_FULL,
  ATTR_URL_PATH, ATTR_URL_SCHEME, ATTR_USER_AGENT_ORIGINAL
} from '@opentelemetry/semantic-conventions'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Worker } from '../pool/pool.js'
import type { Exchange } from '../proxy/forward.js'
import { LoggedExporter } from './logged-exporter.js'
import type { TracingConfig } from './options.js'

// Loaded only when a registration has a `tracing` option (see startTracing): the SDK costs nothing to an app without it.

const propagator = new W3CTraceContextPropagator()

// Two traceparent lines arrive joined by Node as one value ("a, b"), which the propagator refuses: a new trace starts,
// as W3C Trace Context says. An array (never from Node's parsers) is refused the same way.
const headerGetter: TextMapGetter<Record<string, unknown>> = {
  ...defaultTextMapGetter,
  get: (carrier, key) => {
    const value = carrier[key]
    return typeof value === 'string' ? value : undefined
  }
}

const headerSetter: TextMapSetter<Record<string, unknown>> = {
  set: (carrier, key, value) => { carrier[key] = value }
}

/** What a route's requests are traced with: the instance's tracer, and the route's name in the spans. */
export interface RouteTracing {
  start (request: FastifyRequest, pool: string, strategy: string): RequestTrace
}

/**
 * One Fastify instance's tracer provider: one OTLP/HTTP exporter behind a BatchSpanProcessor, sampled by
 * ParentBased(TraceIdRatioBased(sampleRatio)). Never registered as the global provider: an app's own OpenTelemetry
 * setup stays its own.
 */
export class Tracing {
  readonly config: TracingConfig
  readonly #provider: BasicTracerProvider
  readonly tracer: Tracer

  constructor (config: TracingConfig, log: FastifyBaseLogger) {
    this.config = config
    const url = `${config.otlp}/v1/traces`
    const exporter = new LoggedExporter(new OTLPTraceExporter({ url, headers: config.headers, timeoutMillis: config.exportTimeout }), url, log)
    this.#provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName }),
      sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: config.exportDelay, exportTimeoutMillis: config.exportTimeout })]
    })
    this.tracer = this.#provider.getTracer('fastify-goload')
  }

  /** The spans of one route: `GET /api` is the server span of a GET under the route with prefix /api. */
  route (prefix: string, host: string | undefined): RouteTracing {
    const tracer = this.tracer
    const route = prefix === '' ? '/' : prefix
    const name = host === undefined ? route : `${host}${route}`
    return {
      start: (request, pool, strategy) => new RequestTrace(tracer, request, route, name, pool, strategy)
    }
  }

  /** Exports the spans still batched, waiting for the collector at most exportTimeout; then the exporter stops. */
  async close (): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((resolve) => { timer = setTimeout(resolve, this.config.exportTimeout).unref() })
    await Promise.race([this.#provider.shutdown().catch(() => {}), timeout])
    clearTimeout(timer)
  }
}

/**
 * One request's spans: a SERVER span from when its route took it to when its response closed, continuing the
 * client's `traceparent` when it sent one valid one, and a CLIENT span per attempt at a backend, siblings under it.
 * Each attempt sends its backend exactly one `traceparent`, naming that CLIENT span as parent; a request that is not
 * sampled still sends one (sampled flag 00), so the backend's own spans join the same trace.
 */
export class RequestTrace {
  readonly #tracer: Tracer
  readonly #request: FastifyRequest
  readonly #server: Span
  readonly #context: Context
  readonly #route: string
  readonly #pool: string
  readonly #strategy: string
  #client: Span | undefined
  /** When the request joined the pool's queue, if it waited for a backend. */
  #queuedAt = 0

  constructor (tracer: Tracer, request: FastifyRequest, route: string, name: string, pool: string, strategy: string) {
    this.#tracer = tracer
    this.#request = request
    this.#route = name
    this.#pool = pool
    this.#strategy = strategy
    const headers = request.raw.headers
    const parent = propagator.extract(ROOT_CONTEXT, headers, headerGetter)
    const url = request.raw.url ?? '/'
    const query = url.indexOf('?')
    this.#server = tracer.startSpan(`${request.method} ${route}`, {
      kind: SpanKind.SERVER,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: request.method,
        [ATTR_URL_PATH]: query === -1 ? url : url.slice(0, query),
        [ATTR_URL_SCHEME]: request.protocol,
        [ATTR_SERVER_ADDRESS]: request.hostname,
        [ATTR_CLIENT_ADDRESS]: request.ip,
        [ATTR_NETWORK_PROTOCOL_VERSION]: request.raw.httpVersionMajor === 2 ? '2' : request.raw.httpVersion,
        [ATTR_USER_AGENT_ORIGINAL]: headers['user-agent'],
        [ATTR_HTTP_ROUTE]: route,
        'goload.route': name,
        'goload.pool': pool
      }
    }, parent)
    this.#context = trace.setSpan(parent, this.#server)
  }

  /** The trace id, for the access line. */
  get traceId (): string {
    return this.#server.spanContext().traceId
  }

  /** The server span's id, for the access line. */
  get spanId (): string {
    return this.#server.spanContext().spanId
  }

  /** The request waits in the pool's queue from now. */
  queued (): void {
    this.#queuedAt = performance.now()
  }

  /**
   * A CLIENT span for the attempt at `worker`, `attempt` 1 for the first; its traceparent (and the client's tracestate,
   * when its trace goes on) replaces whatever the client sent, in the headers each attempt copies (reply-from's and
   * the tunnel's both read the raw request's).
   */
  attempt (worker: Worker, attempt: number, target: string): void {
    this.#client?.end()
    const queueWait = this.#queuedAt === 0 ? 0 : performance.now() - this.#queuedAt
    this.#queuedAt = 0
    const { address, port } = addressOf(worker)
    const span = this.#client = this.#tracer.startSpan(`${this.#request.method} ${worker.id}`, {
      kind: SpanKind.CLIENT,
      attributes: {
        [ATTR_HTTP_REQUEST_METHOD]: this.#request.method,
        [ATTR_SERVER_ADDRESS]: address,
        [ATTR_SERVER_PORT]: port,
        [ATTR_URL_FULL]: `${worker.origin}${target}`,
        ...(attempt > 1 ? { [ATTR_HTTP_REQUEST_RESEND_COUNT]: attempt - 1 } : {}),
        'goload.route': this.#route,
        'goload.pool': this.#pool,
        'goload.strategy': this.#strategy,
        'goload.backend': worker.id,
        'goload.retry': attempt - 1,
        'goload.queue_wait_ms': Math.round(queueWait * 100) / 100
      }
    }, this.#context)
    const headers = this.#request.raw.headers as Record<string, unknown>
    // Set again (or left out) below: a tracestate never outlives the traceparent it came with.
    headers.tracestate = undefined
    propagator.inject(trace.setSpan(ROOT_CONTEXT, span), headers, headerSetter)
  }

  /** The attempt failed before any response: `code` is the failure's (ECONNREFUSED, FST_GOLOAD_UPSTREAM_TIMEOUT…). */
  failed (code: string): void {
    const span = this.#client
    if (span === undefined) return
    this.#client = undefined
    errorStatus(span, code || 'error', code)
    span.end()
  }

  /**
   * The exchange ended, its response whole (`finished`) or not. The server span has the status the client got (101
   * for a tunnel the backend switched to; 499 when the client left before any response headers, as in the access
   * line) and, when the balancer answered itself, its FST_GOLOAD_* code; the attempt that got an answer, that answer.
   */
  end (exchange: Exchange, finished: boolean): void {
    const response = exchange.reply.raw
    const statusCode = exchange.upgrade?.switched === true ? 101 : finished || response.headersSent ? response.statusCode : 499
    const client = this.#client
    if (client !== undefined) {
      if (exchange.responded) {
        client.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, statusCode)
        // A client span's 4xx is an error too (semantic conventions); the server span judges the exchange.
        if (statusCode >= 400) errorStatus(client, String(statusCode))
      }
      client.end()
      this.#client = undefined
    }
    const server = this.#server
    server.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, statusCode)
    if (exchange.code !== undefined) errorStatus(server, exchange.code, exchange.code)
    else if (statusCode >= 500) errorStatus(server, String(statusCode))
    server.end()
  }
}

function errorStatus (span: Span, type: string, message?: string): void {
  span.setAttribute(ATTR_ERROR_TYPE, type)
  span.setStatus({ code: SpanStatusCode.ERROR, message })
}

const addresses = new WeakMap<Worker, { address: string, port: number }>()

/** A backend's host and port, parsed once. */
function addressOf (worker: Worker): { address: string, port: number } {
  let found = addresses.get(worker)
  if (found === undefined) {
    const url = new URL(worker.url)
    found = { address: url.hostname, port: url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port) }
    addresses.set(worker, found)
  }
  return found
}
