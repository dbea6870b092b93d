import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { normalizeIP } from '@fastify/rate-limit'
import { parse as parseDuration } from '@lukeed/ms'
import type { FastifyRequest } from 'fastify'
import type { Registry as PromRegistry } from 'prom-client'
import { kubernetesDiscovery, mirrorSchema, poolSchema, type Strategy } from './config/schema.js'
import { InvalidOptionError } from './errors.js'
import { checkBackend, checkMirror, checkRateLimit, checkRegistration, checkRoute, checkSplit, routeKeys } from './options-check.js'
import { backendTls, claimOrigin, normalizeTls, type TlsOptions } from './tls-options.js'
import { normalizeTracing, type TracingConfig, type TracingOptions } from './tracing/options.js'

export type { Pem, TlsOptions } from './tls-options.js'
export type { TracingOptions } from './tracing/options.js'

export { strategies, type Strategy } from './config/schema.js'

/**
 * What `strategy: 'hash'` keeps requests together by: the client address (`request.ip`, so Fastify's `trustProxy`
 * decides whether X-Forwarded-For counts), a request header, or a cookie.
 */
export type HashOn = 'ip' | { header: string } | { cookie: string }

export interface BackendOptions {
  /** `http(s)://host:port`, an origin without a path; `h2c://host:port` for plaintext HTTP/2 (prior knowledge, the usual gRPC server). */
  url: string
  /** Name shown in stats and logs; defaults to the URL's origin. */
  id?: string
  /** Relative capacity: least-busy orders backends by pending / weight. Default 1. */
  weight?: number
  /** Most requests in flight at this backend; overrides the pool's `maxPending`. */
  maxPending?: number
  /**
   * DNS discovery: the URL's hostname is looked up every `interval` ms and each address becomes a backend of its
   * own, added and removed as the answer changes (nginx `resolve`, HAProxy `server-template`).
   */
  resolve?: ResolveOptions
  /** TLS to this `https://` backend; each field given replaces the pool's `tls` field of that name. */
  tls?: TlsOptions
}

export interface ResolveOptions {
  /** ms between lookups. Default 30000. */
  interval?: number
  /** Replaces the system resolver (dns.lookup): returns the addresses of `hostname`, e.g. from a service registry. */
  lookup?: (hostname: string) => Promise<string[]>
}

export interface DiscoveryOptions {
  kubernetes: KubernetesDiscoveryOptions
}

/**
 * The ready endpoints of a Kubernetes Service, from its EndpointSlices (discovery.k8s.io/v1), each a backend named
 * after its pod. In a cluster the service account is used; outside one, give apiServer and token or tokenFile.
 */
export interface KubernetesDiscoveryOptions {
  /** The Service's name: its slices carry the label kubernetes.io/service-name=<service>. */
  service: string
  /** Default: the pod's own namespace (the service account's namespace file), else 'default'. */
  namespace?: string
  /** The Service port's name, or the endpoints' port number. Default: the only port the slices list. */
  port?: string | number
  /** https://host:port of the API server. Default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT. */
  apiServer?: string
  /** A bearer token. */
  token?: string
  /** A file holding the bearer token, read again for each request (projected tokens rotate). Default: the service account's. */
  tokenFile?: string
  /** The API server's CA: a PEM file, or PEM text. Default: the service account's ca.crt, else Node's public CAs. */
  ca?: string
  /** ms before the first retry when the API server cannot be reached; each retry doubles it, up to 30 s. Default 1000. */
  retryDelay?: number
}

export interface PassiveHealthOptions {
  /** Connection errors and timeouts within `window` that eject a backend. Default 3. */
  maxFails?: number
  /** ms. Default 10000. */
  window?: number
  /** ms a backend stays out after its first ejection; doubles on each repeat. Default 30000. */
  ejectFor?: number
  /** Never eject more than this share of the pool. Default 50. */
  maxEjectedPercent?: number
  /** 5xx answers in a row that also eject. Default off. */
  consecutive5xx?: number
  /**
   * Also eject a backend whose 5xx answers, connection errors and timeouts reach this percent of its requests within
   * `window`, once it has had `minRequests` there (Envoy's failure_percentage). 0 is off, the default.
   */
  failurePercentage?: number
  /** Requests a backend must have within `window` before failurePercentage judges it. Default 20. */
  minRequests?: number
}

/** The pool's circuit breaker: while it is open, the pool answers 503 FST_GOLOAD_CIRCUIT_OPEN without its backends. */
export interface CircuitBreakerOptions {
  /** Share (above 0, up to 1) of 5xx and failed requests within `window` that opens the circuit. Default 0.5. */
  errorRatio?: number
  /** ms of requests the share is taken over. Default 10000. */
  window?: number
  /** Requests within `window` before the share can open the circuit. Default 20. */
  minRequests?: number
  /** ms the circuit stays open before it lets probe requests through. Default 5000. */
  openFor?: number
  /** Probe requests let through half-open: all succeed and it closes, one fails and it opens again. Default 3. */
  halfOpenRequests?: number
}

/** Bounds retries, so that an outage is not multiplied by them (Envoy's retry_budget, Finagle's RetryBudget). */
export interface RetryBudgetOptions {
  /** Retries in flight may be up to this percent (0-100) of the pool's requests in flight. Default 20. */
  percent?: number
  /** Retries per second allowed beyond the percent, so a quiet pool can still retry. Default 3. */
  minPerSecond?: number
}

/** Active probes: a GET of `path`, or (`grpc`) the standard gRPC health check. */
export type HealthCheckOptions = HealthCheckTiming & (HttpHealthCheck | GrpcHealthCheck)

export interface HttpHealthCheck {
  /** Path probed with GET on each backend, e.g. '/health'. */
  path: string
  /** Statuses that pass: '2xx', '3xx', a status code, or a list of them. Default ['2xx', '3xx']. */
  expectStatus?: string | number | Array<string | number>
  grpc?: never
}

export interface GrpcHealthCheck {
  /**
   * Probe with the standard gRPC health check, grpc.health.v1.Health/Check, of the whole server (`true`) or of one
   * service: healthy while it answers SERVING. Needs HTTP/2 to the backends: h2c:// URLs, or https:// with allowH2.
   */
  grpc: true | { service: string }
  path?: never
  expectStatus?: never
}

export interface HealthCheckTiming {
  /** ms between probes. Default 5000. */
  interval?: number
  /** ms a probe may take. Default 2000. */
  timeout?: number
  /** Passing probes in a row that bring an unhealthy backend back. Default 2. */
  healthyAfter?: number
  /** Failing probes in a row that take a backend out. Default 3. */
  unhealthyAfter?: number
}

export interface QueueOptions {
  /** Requests that may wait for a backend with room. Default 1000. */
  max?: number
  /** ms a request may wait before it is answered 503. Default 5000. */
  timeout?: number
}

/** A route's rate limit, kept by @fastify/rate-limit: at most `max` requests per key in each `timeWindow`. */
export interface RateLimitOptions {
  /** Requests each key may make in a window. */
  max: number
  /** The window: ms, or a duration like '1 minute'. */
  timeWindow: number | string
  /**
   * What a count is kept for. Default: the client address (`request.ip`, so `trustProxy` decides whether
   * X-Forwarded-For counts), an IPv6 client's /64 network as one.
   */
  keyGenerator?: (request: FastifyRequest) => string | number | Promise<string | number>
  /** Keys never limited: client addresses (with the default key), or a function of the request and its key. */
  allowList?: string[] | ((request: FastifyRequest, key: string) => boolean | Promise<boolean>)
  /** `redis://host:port`: counts kept in Redis, shared by every balancer that uses it. Default: in memory. */
  redis?: string
  /**
   * In memory (no `redis`): the most keys counted at once, about 150 bytes each (an IPv4 client; 210 for IPv6).
   * Past it, the least recently seen key is forgotten and starts again at zero. Default 100,000.
   */
  cache?: number
}

/**
 * A copy of each request (or of `percent` of them) sent to another pool, its response read and discarded: the
 * client's response never waits for it nor fails because of it (README, Mirroring).
 */
export interface MirrorOptions {
  /** The pool the copies go to: a pool registered before on this instance, balanced by its own strategy. */
  pool: string
  /** Share of the route's requests copied, 0 to 100, spread evenly (a counter, not chance). Default 100. */
  percent?: number
  /** Bytes of request body a copy may carry; a request with a larger body is not mirrored. Default 1048576 (1 MiB). */
  maxBody?: number
  /** Copies of this route's requests in flight at once; past it a request is not mirrored. Default 100. */
  maxInFlight?: number
}

/**
 * Keeps each client on the backend it was first sent to (Traefik's sticky cookie): the balancer sets a cookie naming
 * the backend, HMAC-signed, and sends later requests carrying it there while that backend is in rotation.
 */
export interface StickyOptions {
  /** The cookie's name. */
  cookie: string
  /** Seconds the browser keeps it. Default: until the browser closes (a session cookie). */
  maxAge?: number
  /** Sent over https only. Default false. */
  secure?: boolean
  /** Hidden from page scripts. Default true. */
  httpOnly?: boolean
  /** Default 'lax'; 'none' needs `secure: true`. */
  sameSite?: 'strict' | 'lax' | 'none'
  /** Key of the cookie's HMAC, at least 16 characters: balancers given the same one agree. Default: random per pool instance. */
  secret?: string
}

export interface StickyConfig extends Required<Omit<StickyOptions, 'maxAge' | 'secret'>> {
  maxAge: number | undefined
  secret: string | undefined
}

/** One pool of a weighted split, and its share. */
export interface SplitPoolOptions {
  /** The name of a pool registered before on this instance. */
  pool: string
  /** Its share of the requests, relative to the others' weights: a whole number, 0 for none. */
  weight: number
}

/** Which requests a registration takes, and how their target and Host are sent on. */
export interface RouteOptions {
  /**
   * Only requests for this host: exact (`api.example.com`), wildcard (`*.example.com`, one or more labels) or a
   * RegExp, matched without the port. Default: any host.
   */
  host?: string | RegExp
  /** Proxy only requests under this path; other paths stay the app's. Default: every path. */
  prefix?: string
  /** Replaces the matched prefix before forwarding: `prefix: '/api', rewritePrefix: '/'` sends `/api/x` as `/x`. */
  rewritePrefix?: string
  /** Only these HTTP methods. Default: all. */
  methods?: string[]
  /** Only requests whose headers have these values (a string is compared whole, a RegExp tested). */
  headers?: Record<string, string | RegExp>
  /** Send the client's Host to the backend rather than the backend's own host:port. Default false. */
  preserveHost?: boolean
  /**
   * Tunnel upgrades (WebSocket, any HTTP/1.1 Upgrade) to the backend, each one counted on it while it is open.
   * `false`: the backend gets the request without its Upgrade and answers it as a plain request. Default true.
   */
  websocket?: boolean
  /** Requests over this limit are answered 429 and never reach a backend. Default: no limit. */
  rateLimit?: RateLimitOptions
  /** One info line per proxied request through request.log, when it ends (README, Access logs). Default true. */
  accessLog?: boolean
  /** Copies of the route's requests sent to another pool, their responses discarded. Default: none. */
  mirror?: MirrorOptions
  /**
   * Prometheus metrics of every pool of this Fastify instance (README, Metrics), read from the pools at scrape time:
   * `true` on a prom-client Registry of goload's own, `fastify.goload.metrics`; or on the Registry given. Never on
   * prom-client's global registry, and no route is added: the app exposes them where it likes. Default false.
   */
  metrics?: boolean | PromRegistry
  /**
   * OpenTelemetry spans of this route's requests, a server span each and a client span per attempt at a backend,
   * exported over OTLP/HTTP (README, Tracing). One exporter per Fastify instance, shared by the registrations that
   * give the same options. Default: off, and the OpenTelemetry SDK is not even loaded.
   */
  tracing?: TracingOptions
}

/**
 * A route that sends to a pool another registration made: one heap and one set of counts for both. It takes route
 * options only: the pool's own are the other registration's.
 */
export type SharedPoolOptions = RouteOptions & {
  /** The name of a pool registered before on this instance. */
  pool: string
} & { [Key in Exclude<keyof GoloadOptions, keyof RouteOptions | 'pool'>]?: never }

/**
 * A route that splits its requests between pools registered before, by weight (smooth weighted round-robin), e.g. a
 * canary beside the stable pool. It takes route options only, and `name`: the route's id in the admin API.
 */
export type SplitOptions = RouteOptions & {
  pools: SplitPoolOptions[]
  /** The route's id in the admin API and on the status page. Default: its host and prefix, e.g. `/` or `api.example.com/v1`. */
  name?: string
} & { [Key in Exclude<keyof GoloadOptions, keyof RouteOptions | 'pools' | 'name'>]?: never }

/** A registration's options: backends listed, found through discovery, or both; at least one of them. */
export type GoloadOptions = PoolOptions & ({ backends: Array<string | BackendOptions> } | { discovery: DiscoveryOptions })

/** Every option of a registration that makes a pool; GoloadOptions says which of them it needs. */
export interface PoolOptions extends RouteOptions {
  /** The pool's backends; may be left out (or empty) when `discovery` finds them. */
  backends?: Array<string | BackendOptions>
  /** Backends found at run time, beside or instead of `backends`: Kubernetes EndpointSlices (README, Kubernetes service discovery). */
  discovery?: DiscoveryOptions
  /** Only in a route that shares another registration's pool (see SharedPoolOptions). */
  pool?: never
  /** Only in a route that splits between pools (see SplitOptions). */
  pools?: never
  /** Names this pool for `fastify.goload.pool(name)`. Defaults to the host and prefix, or `'default'`. */
  name?: string
  strategy?: Strategy
  /**
   * Upstream timeout in ms: no response headers this long after the request was sent answers 504; no body data for
   * this long cuts the response. Default 60000.
   */
  timeout?: number
  /** ms to open a connection to a backend: past it the request goes to another backend, else 504. Default 10000. */
  connectTimeout?: number
  /** Most connections open to each backend. Default Infinity (no cap, as nginx). */
  connections?: number
  /** HTTP/1.1 requests pipelined on each connection. */
  pipelining?: number
  /** Further backends tried when forwarding fails before any answer. Default 1. */
  retries?: number
  /** Retry POST, PATCH and other non-idempotent requests even when the backend may have seen them. Default false. */
  retryNonIdempotent?: boolean
  /** Outlier ejection from real traffic; `false` turns it off. */
  passiveHealth?: PassiveHealthOptions | false
  /** Opens when too many of the pool's requests fail: then 503 at once, without the backends. Default: none. */
  circuitBreaker?: CircuitBreakerOptions
  /** Retries allowed in proportion to the traffic. Default: none (`retries` alone bounds them). */
  retryBudget?: RetryBudgetOptions
  /** Active probes of each backend. Default: none. */
  healthCheck?: HealthCheckOptions
  /** ms over which a backend that joins or recovers ramps up to its full weight. Default 0. */
  slowStart?: number
  /** Most requests in flight at each backend (HAProxy maxconn). Default Infinity. */
  maxPending?: number
  /** Where requests wait when every backend is at maxPending. */
  queue?: QueueOptions
  /** ms that fastify.close() lets proxied requests finish before cutting them. Default 10000. */
  closeTimeout?: number
  /** ms an upgraded connection (WebSocket) may carry no byte either way before it is closed; 0 never. Default 0. */
  tunnelIdleTimeout?: number
  /** peak-ewma: ms over which latency samples fade. Default 10000. */
  ewmaDecay?: number
  /** hash: what a request's key is. Default 'ip'. */
  hashOn?: HashOn
  /**
   * hash: a key stays on its backend while that backend holds fewer than balanceFactor × the average of requests in
   * flight (for its weight); past it, the key walks on round the ring. At least 1. Default 1.25.
   */
  balanceFactor?: number
  /**
   * Request bodies of up to this many bytes are received whole before a backend is chosen, so a slow client holds
   * no backend; larger ones stream. Default 65536.
   */
  bufferBody?: number
  /** ms a client may go without sending a byte of its request body before it is answered 408. Default 30000. */
  clientTimeout?: number
  /** Slowest request body accepted, in bytes/s, after the first `clientTimeout` ms; 0 turns it off. Default 500. */
  clientMinRate?: number
  /** TLS to `https://` backends: private CA, client certificate for mutual TLS, SNI name. Default: Node's public CAs. */
  tls?: TlsOptions
  /** Speak HTTP/2 to `https://` backends that offer it in ALPN (HTTP/1.1 with those that do not). Default false. */
  allowH2?: boolean
  /** Keep each client on one backend by a cookie the balancer sets (README, Sticky sessions). Default: off. */
  sticky?: StickyOptions
}

export interface BackendConfig {
  id: string
  /** The backend's origin, `http(s)://host:port` or `h2c://host:port`. */
  url: string
  weight: number
  maxPending: number
  resolve?: Required<ResolveOptions>
  /** https only: the pool's tls with the backend's own fields over it. */
  tls?: TlsOptions
}

export interface PoolConfig {
  name: string
  prefix: string
  strategy: Strategy
  timeout: number
  connectTimeout: number
  connections: number
  pipelining: number
  retries: number
  retryNonIdempotent: boolean
  passiveHealth: Required<PassiveHealthOptions> | false
  circuitBreaker: Required<CircuitBreakerOptions> | undefined
  retryBudget: Required<RetryBudgetOptions> | undefined
  healthCheck: (Required<HealthCheckTiming> & {
    /** '' for a gRPC check. */
    path: string
    expectStatus: (status: number) => boolean
    /** A gRPC health check's service ('' for the whole server); undefined for GET `path`. */
    grpc: { service: string } | undefined
  }) | undefined
  slowStart: number
  maxPending: number
  queue: Required<QueueOptions>
  closeTimeout: number
  tunnelIdleTimeout: number
  ewmaDecay: number
  /** hash only; header and cookie names as given, header names lowercased. */
  hashOn: HashOn | undefined
  balanceFactor: number
  bufferBody: number
  clientTimeout: number
  clientMinRate: number
  backends: BackendConfig[]
  /** Backends found at run time (the `discovery` option). */
  discovery: { kubernetes: KubernetesDiscoveryConfig } | undefined
  tls: TlsOptions | undefined
  allowH2: boolean
  sticky: StickyConfig | undefined
  /** The TLS settings of each https origin, for the undici pool that connects to it; add() records its backends too. */
  backendTls: Map<string, TlsOptions | undefined>
  /**
   * The `http://host:port` origins of the h2c:// backends: undici connects to an origin, so the agent's connection
   * pool for one of these speaks HTTP/2 with prior knowledge. add(), reloads and DNS discovery record theirs too.
   */
  h2c: Set<string>
}

export interface KubernetesDiscoveryConfig extends Required<Pick<KubernetesDiscoveryOptions, 'service' | 'retryDelay'>> {
  namespace: string | undefined
  port: string | number | undefined
  apiServer: string | undefined
  token: string | undefined
  tokenFile: string | undefined
  ca: string | undefined
}

const pool = poolSchema.properties
const healthCheck = (pool.healthCheck as unknown as typeof poolSchema).properties as unknown as Record<'interval' | 'timeout' | 'healthyAfter' | 'unhealthyAfter', { default: number }>

/** What a left-out option is: read from the schema (lib/config/schema.ts), where each is written beside its key. */
export const defaults = {
  strategy: pool.strategy.default as Strategy,
  timeout: pool.timeout.default as number,
  connectTimeout: pool.connectTimeout.default as number,
  connections: Infinity,
  pipelining: pool.pipelining.default as number,
  retries: pool.retries.default as number,
  passiveHealth: pool.passiveHealth.default as Required<PassiveHealthOptions>,
  circuitBreaker: defaultsOf(pool.circuitBreaker) as Required<CircuitBreakerOptions>,
  retryBudget: defaultsOf(pool.retryBudget) as Required<RetryBudgetOptions>,
  healthCheck: {
    interval: healthCheck.interval.default,
    timeout: healthCheck.timeout.default,
    healthyAfter: healthCheck.healthyAfter.default,
    unhealthyAfter: healthCheck.unhealthyAfter.default
  },
  queue: { max: pool.queue.properties.max.default as number, timeout: pool.queue.properties.timeout.default as number },
  closeTimeout: pool.closeTimeout.default as number,
  tunnelIdleTimeout: pool.tunnelIdleTimeout.default as number,
  resolveInterval: 30_000,
  kubernetesRetryDelay: kubernetesDiscovery.properties.retryDelay.default as number,
  ewmaDecay: pool.ewmaDecay.default as number,
  // Envoy's hash_balance_factor default (125), and the paper's own example: each backend up to 25% over the average.
  // For strategy hash only, so not a schema default (a file's other pools would get it filled in, and be refused).
  balanceFactor: 1.25,
  bufferBody: pool.bufferBody.default as number,
  clientTimeout: pool.clientTimeout.default as number,
  clientMinRate: pool.clientMinRate.default as number
}

/**
 * A registration's options as the pool uses them. The schema (lib/config/schema.ts, through options-check.ts) checks
 * every value's type and range, as it does a file's; what follows are the checks it cannot make (URLs, PEM, rules
 * between keys) and the defaults.
 */
export function normalizeOptions (options: PoolOptions): PoolConfig {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('options must be an object with a backends array')
  }
  const backends = options.backends ?? []
  // Before the schema: which of backends and discovery is missing is a rule between keys.
  if (!Array.isArray(backends) || (backends.length === 0 && options.discovery === undefined)) {
    throw new InvalidOptionError('backends must be a non-empty array of http(s) URLs or { url, id?, weight? } objects (or give discovery)')
  }
  checkRegistration(options as unknown as Record<string, unknown>)

  const discovery = normalizeDiscovery(options.discovery)
  const maxPending = options.maxPending ?? Infinity
  const tls = normalizeTls('tls', options.tls)
  const configs = backends.map((backend, index) => normalizeBackend(backend, `backends[${index}]`, maxPending, tls))
  const seen = new Map<string, number>()
  const backendTls: PoolConfig['backendTls'] = new Map()
  const h2c = new Set<string>()
  // Each address speaks one protocol: its origin keys one undici connection pool.
  const protocols = new Map<string, [string, number]>()
  configs.forEach((backend, index) => {
    const first = seen.get(backend.id)
    if (first !== undefined) {
      throw new InvalidOptionError(`backends[${index}] has the same id as backends[${first}]: "${backend.id}" (give each a distinct id)`)
    }
    seen.set(backend.id, index)
    const origin = h2cOrigin(backend.url) ?? backend.url
    const before = protocols.get(origin)
    if (before !== undefined && before[0] !== backend.url) {
      throw new InvalidOptionError(`backends[${index}] is ${backend.url} and backends[${before[1]}] ${before[0]}: one address speaks one protocol, h2c or HTTP/1.1`)
    }
    protocols.set(origin, [backend.url, index])
    if (origin !== backend.url && backend.resolve === undefined) h2c.add(origin)
    if (!claimOrigin(backendTls, backend)) {
      throw new InvalidOptionError(`backends[${index}] has the URL of an earlier backend with other tls settings: one connection pool serves each origin`)
    }
  })

  const prefix = normalizePrefix(options.prefix)
  const host = options.host instanceof RegExp ? String(options.host) : options.host ?? ''
  const name = options.name ?? (host + prefix === '' ? 'default' : host + prefix)
  const strategy = options.strategy ?? defaults.strategy

  return {
    name,
    prefix,
    strategy,
    timeout: options.timeout ?? defaults.timeout,
    connectTimeout: options.connectTimeout ?? defaults.connectTimeout,
    connections: options.connections ?? defaults.connections,
    pipelining: options.pipelining ?? defaults.pipelining,
    retries: options.retries ?? defaults.retries,
    retryNonIdempotent: options.retryNonIdempotent ?? false,
    passiveHealth: options.passiveHealth === false ? false : { ...defaults.passiveHealth, ...definedOf(options.passiveHealth) },
    circuitBreaker: options.circuitBreaker === undefined ? undefined : { ...defaults.circuitBreaker, ...definedOf(options.circuitBreaker) },
    retryBudget: options.retryBudget === undefined ? undefined : { ...defaults.retryBudget, ...definedOf(options.retryBudget) },
    healthCheck: normalizeHealthCheck(options.healthCheck, configs, options.allowH2 === true),
    slowStart: options.slowStart ?? 0,
    maxPending,
    queue: { ...defaults.queue, ...definedOf(options.queue) },
    closeTimeout: options.closeTimeout ?? defaults.closeTimeout,
    tunnelIdleTimeout: options.tunnelIdleTimeout ?? defaults.tunnelIdleTimeout,
    ewmaDecay: options.ewmaDecay ?? defaults.ewmaDecay,
    ...normalizeHash(strategy, options),
    bufferBody: options.bufferBody ?? defaults.bufferBody,
    clientTimeout: options.clientTimeout ?? defaults.clientTimeout,
    clientMinRate: options.clientMinRate ?? defaults.clientMinRate,
    backends: configs,
    discovery,
    tls,
    allowH2: options.allowH2 ?? false,
    sticky: normalizeSticky(options.sticky),
    backendTls,
    h2c
  }
}

/** The `default` of each property of an object in the schema. */
function defaultsOf (schema: { properties: Record<string, { default?: unknown }> }): Record<string, unknown> {
  return Object.fromEntries(Object.entries(schema.properties).map(([key, property]) => [key, property.default]))
}

function normalizeSticky (options: StickyOptions | undefined): StickyConfig | undefined {
  if (options === undefined) return undefined
  const { cookie, maxAge, secure = false, httpOnly = true, sameSite = 'lax', secret } = options
  // Browsers drop a SameSite=None cookie that is not Secure: every request would be a new assignment.
  if (sameSite === 'none' && !secure) throw new InvalidOptionError('sticky.sameSite: \'none\' needs sticky.secure: true (browsers drop such a cookie)')
  return { cookie, maxAge, secure, httpOnly, sameSite, secret }
}

/** An options object's keys that are given: `{ max: undefined }` leaves the default as leaving max out does. */
function definedOf<T extends object> (options: T | undefined): Partial<T> {
  return Object.fromEntries(Object.entries(options ?? {}).filter(([, value]) => value !== undefined)) as Partial<T>
}

/** The `http://host:port` origin an `h2c://host:port` backend is connected at; undefined for any other URL. */
export function h2cOrigin (url: string): string | undefined {
  return url.startsWith('h2c:') ? 'http:' + url.slice(4) : undefined
}

export function normalizeBackend (backend: string | BackendOptions, key: string, maxPending: number, tls?: TlsOptions): BackendConfig {
  checkBackend(backend, key)
  const spec = typeof backend === 'string' ? { url: backend } : backend

  let parsed: URL
  try {
    parsed = new URL(spec.url)
  } catch {
    throw new InvalidOptionError(`${key} is not a valid http(s) or h2c URL: ${JSON.stringify(spec.url)}`)
  }
  const h2c = parsed.protocol === 'h2c:'
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:' && !(h2c && parsed.host !== '')) {
    throw new InvalidOptionError(`${key} is not a valid http(s) or h2c URL: ${JSON.stringify(spec.url)}`)
  }
  if (h2c && spec.tls !== undefined) throw new InvalidOptionError(`${key}.tls is for https:// backends, and this one is h2c://`)
  // WHATWG URL leaves a scheme it does not know unparsed (no origin, host as written): read as http://, which is
  // what it connects to, it is checked and spelt as any other origin.
  if (h2c) parsed = new URL('http' + spec.url.trim().slice(3))
  // The request path is forwarded verbatim, so a path here would be silently ignored.
  if (parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '' || parsed.username !== '' || parsed.password !== '') {
    throw new InvalidOptionError(`${key} must be an origin like http://host:port, without path, query or credentials: ${JSON.stringify(spec.url)}`)
  }

  const url = h2c ? 'h2c' + parsed.origin.slice(4) : parsed.origin
  const config: BackendConfig = { id: spec.id ?? url, url, weight: spec.weight ?? 1, maxPending: spec.maxPending ?? maxPending }
  if (spec.resolve !== undefined) config.resolve = normalizeResolve(spec.resolve)
  if (parsed.protocol === 'https:' || spec.tls !== undefined) config.tls = backendTls(key, parsed, spec, tls)
  return config
}

function normalizeResolve (options: ResolveOptions): Required<ResolveOptions> {
  return { interval: options.interval ?? defaults.resolveInterval, lookup: options.lookup ?? systemLookup }
}

async function systemLookup (hostname: string): Promise<string[]> {
  const addresses = await lookup(hostname, { all: true })
  return addresses.map((entry) => entry.address)
}

/**
 * The `discovery` option: what finds backends at run time, checked without reaching for it (--check runs this too).
 * The schema has checked each key; here are the rules it cannot say.
 */
function normalizeDiscovery (options: DiscoveryOptions | undefined): PoolConfig['discovery'] {
  if (options === undefined) return undefined
  const k8s = options.kubernetes
  const key = 'discovery.kubernetes'
  const { service, namespace, apiServer, token, tokenFile, ca } = k8s
  // A number from the environment (`port: ${PORT}`) arrives as a string: the slices list port numbers as numbers.
  const port = typeof k8s.port === 'string' && /^\d+$/.test(k8s.port) ? Number(k8s.port) : k8s.port
  if (apiServer !== undefined && !isApiServer(apiServer)) {
    throw new InvalidOptionError(`${key}.apiServer must be an origin like https://10.0.0.1:6443, got ${JSON.stringify(apiServer)}`)
  }
  if (token !== undefined && tokenFile !== undefined) {
    throw new InvalidOptionError(`${key}.token and ${key}.tokenFile are one setting: give one of them`)
  }
  if (token !== undefined && !/^\S+$/.test(token)) {
    throw new InvalidOptionError(`${key}.token must be a non-empty string without whitespace`)
  }
  for (const [name, value] of [['tokenFile', tokenFile], ['ca', ca]] as const) {
    if (value !== undefined && value.trim() === '') {
      throw new InvalidOptionError(`${key}.${name} must be a ${name === 'ca' ? 'PEM file path or PEM text' : 'file path'}, got ${JSON.stringify(value)}`)
    }
  }
  return {
    kubernetes: {
      service,
      namespace,
      port,
      apiServer: apiServer === undefined ? undefined : new URL(apiServer).origin,
      token,
      tokenFile,
      ca,
      retryDelay: k8s.retryDelay ?? defaults.kubernetesRetryDelay
    }
  }
}

function isApiServer (url: unknown): boolean {
  try {
    const parsed = new URL(url as string)
    return (parsed.protocol === 'https:' || parsed.protocol === 'http:') && parsed.pathname === '/' && parsed.search === ''
  } catch {
    return false
  }
}

function normalizeHealthCheck (options: HealthCheckOptions | undefined, backends: BackendConfig[], allowH2: boolean): PoolConfig['healthCheck'] {
  if (options === undefined) return undefined
  const grpc = normalizeGrpcCheck(options, backends, allowH2)
  // The schema has each key optional: a path or grpc, one of them, is a rule between them.
  if (grpc === undefined && options.path === undefined) {
    throw new InvalidOptionError('healthCheck.path must be a path starting with "/", got undefined (or give healthCheck.grpc)')
  }
  return {
    path: options.path ?? '',
    grpc,
    ...defaults.healthCheck,
    ...definedOf({ interval: options.interval, timeout: options.timeout, healthyAfter: options.healthyAfter, unhealthyAfter: options.unhealthyAfter }),
    expectStatus: statusMatcher(options.expectStatus ?? ['2xx', '3xx'])
  }
}

function normalizeGrpcCheck (options: HealthCheckOptions, backends: BackendConfig[], allowH2: boolean): { service: string } | undefined {
  const { grpc } = options
  if (grpc === undefined) return undefined
  for (const key of ['path', 'expectStatus'] as const) {
    if (options[key] !== undefined) throw new InvalidOptionError(`healthCheck.${key} is for HTTP probes: a gRPC health check (healthCheck.grpc) calls grpc.health.v1.Health/Check and passes on SERVING`)
  }
  // gRPC is HTTP/2 only: over HTTP/1.1 every probe would fail, and every backend go out of rotation.
  const index = backends.findIndex((backend) => backend.url.startsWith('http:') || (backend.url.startsWith('https:') && !allowH2))
  if (index !== -1) {
    throw new InvalidOptionError(`healthCheck.grpc needs HTTP/2 to every backend, and backends[${index}] is ${backends[index].url}: give h2c:// URLs, or https:// ones with allowH2: true`)
  }
  return { service: grpc === true ? '' : grpc.service }
}

// The schema has checked the patterns; this reads them.
function statusMatcher (expect: string | number | Array<string | number>): (status: number) => boolean {
  const patterns = Array.isArray(expect) ? expect : [expect]
  const tests = patterns.map((pattern) => {
    if (typeof pattern === 'number') return (status: number) => status === pattern
    const hundreds = Number(pattern[0])
    return (status: number) => Math.floor(status / 100) === hundreds
  })
  return (status) => tests.some((test) => test(status))
}

function normalizeHash (strategy: Strategy, options: PoolOptions): Pick<PoolConfig, 'hashOn' | 'balanceFactor'> {
  if (strategy !== 'hash') {
    for (const key of ['hashOn', 'balanceFactor'] as const) {
      if (options[key] !== undefined) throw new InvalidOptionError(`${key} applies to strategy: 'hash' only (strategy is '${strategy}')`)
    }
    return { hashOn: undefined, balanceFactor: defaults.balanceFactor }
  }
  const { hashOn = 'ip', balanceFactor = defaults.balanceFactor } = options
  // Header names are matched as Node gives them, lowercased.
  return { hashOn: typeof hashOn === 'object' && 'header' in hashOn ? { header: hashOn.header.toLowerCase() } : hashOn, balanceFactor }
}

/** A prefix the schema has checked, as routes match it: '/api/' and '/api' mean the same subtree; '' every path. */
function normalizePrefix (prefix: string | undefined): string {
  return (prefix ?? '').replace(/\/+$/, '')
}

export interface RouteConfig {
  host: string | RegExp | undefined
  /** '' for every path. */
  prefix: string
  rewritePrefix: string | undefined
  /** Uppercase; undefined for every method. */
  methods: string[] | undefined
  /** Lowercase names. */
  headers: Array<[string, string | RegExp]>
  preserveHost: boolean
  websocket: boolean
  accessLog: boolean
  /** Where the instance's metrics go: true for a registry of goload's own. */
  metrics: true | PromRegistry | undefined
  tracing: TracingConfig | undefined
  /** A pool registered by another route, for a route without backends of its own. */
  pool: string | undefined
  /** A weighted split between pools registered before, instead of one pool. */
  pools: SplitPoolOptions[] | undefined
  /** A split route's id (its `name` option), when given. */
  name: string | undefined
  rateLimit: RateLimitConfig | undefined
  mirror: MirrorConfig | undefined
}

export type MirrorConfig = Required<MirrorOptions>

export interface RateLimitConfig extends Omit<RateLimitOptions, 'timeWindow' | 'cache'> {
  /** ms. */
  timeWindow: number
  /** Keys counted in memory; unused with Redis. */
  cache: number
}

/**
 * Keys an in-memory rate limit counts at once. nginx's 1 MB zone holds about 16,000; this is ~15 MB of IPv4 clients
 * (more with IPv6 or long keys), held only for keys seen within a window, so a flood from many addresses has to be
 * that wide before an attacker's count is forgotten.
 */
const defaultRateLimitCache = 100_000

const sharedPoolKeys = new Set(['pool', ...routeKeys])
const splitKeys = new Set(['pools', 'name', ...routeKeys])

/** The route part of a registration's options: which requests it takes and how it sends them on. */
export function normalizeRoute (options: GoloadOptions | SharedPoolOptions | SplitOptions): RouteConfig {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('options must be an object with a backends array, or a pool name')
  }
  const pool = 'pool' in options ? options.pool : undefined
  const pools = 'pools' in options ? options.pools : undefined
  if (pools !== undefined) {
    if (pool !== undefined) throw new InvalidOptionError('pool and pools are two ways to say where a route sends: give one of them')
    for (const key of Object.keys(options)) {
      if (!splitKeys.has(key)) throw new InvalidOptionError(`${key} belongs to a pool: a route with pools (a split) takes only ${[...splitKeys].join(', ')}`)
    }
    checkSplit(pools)
  }
  const name = pools === undefined ? undefined : (options as SplitOptions).name
  if (name !== undefined && (typeof name !== 'string' || name === '')) throw new InvalidOptionError(`name must be a non-empty string, got ${JSON.stringify(name)}`)
  if (pool !== undefined) {
    if (typeof pool !== 'string' || pool === '') throw new InvalidOptionError(`pool must be the name of a pool registered before, got ${JSON.stringify(pool)}`)
    for (const key of Object.keys(options)) {
      if (!sharedPoolKeys.has(key)) {
        throw new InvalidOptionError(`${key} belongs to the pool: a route with pool: "${pool}" takes only ${[...sharedPoolKeys].join(', ')}`)
      }
    }
  }
  checkRoute(options as unknown as Record<string, unknown>)
  // The schema has checked every value (a RegExp host or header value is the program's own, matched as it is).
  const { host, rewritePrefix, methods, headers, preserveHost, websocket, accessLog } = options
  const headerList = Object.entries(headers ?? {}).map(([name, value]): [string, string | RegExp] => {
    return [name.toLowerCase(), value instanceof RegExp ? value : String(value)]
  })
  const { metrics } = options
  // Duck-typed: the app's prom-client may be another copy than ours.
  if (metrics !== undefined && typeof metrics !== 'boolean' && typeof (metrics as Partial<PromRegistry> | null)?.registerMetric !== 'function') {
    throw new InvalidOptionError(`metrics must be a boolean or a prom-client Registry, got ${JSON.stringify(metrics)}`)
  }
  return {
    host,
    prefix: normalizePrefix(options.prefix),
    rewritePrefix,
    methods: methods?.map((method) => method.toUpperCase()),
    headers: headerList,
    preserveHost: preserveHost ?? false,
    websocket: websocket ?? true,
    accessLog: accessLog ?? true,
    metrics: metrics === false ? undefined : metrics,
    tracing: normalizeTracing(options.tracing),
    pool,
    pools,
    name,
    rateLimit: normalizeRateLimit(options.rateLimit),
    mirror: normalizeMirror(options.mirror)
  }
}

const mirrorDefaults = mirrorSchema.properties

export function normalizeMirror (options: MirrorOptions | undefined): MirrorConfig | undefined {
  if (options === undefined) return undefined
  checkMirror(options)
  return {
    pool: options.pool,
    percent: options.percent ?? mirrorDefaults.percent.default as number,
    maxBody: options.maxBody ?? mirrorDefaults.maxBody.default as number,
    maxInFlight: options.maxInFlight ?? mirrorDefaults.maxInFlight.default as number
  }
}

export function normalizeRateLimit (options: RateLimitOptions | undefined): RateLimitConfig | undefined {
  if (options === undefined) return undefined
  checkRateLimit(options)
  const { max } = options
  // The schema has checked the types; a duration's words only the parser knows.
  const timeWindow = typeof options.timeWindow === 'string' ? parseDuration(options.timeWindow) : options.timeWindow
  if (timeWindow === undefined || !Number.isSafeInteger(timeWindow) || timeWindow <= 0) {
    throw new InvalidOptionError(`rateLimit.timeWindow must be a positive number of ms or a duration like '1 minute', got ${JSON.stringify(options.timeWindow)}`)
  }
  const { keyGenerator, redis } = options
  let { allowList } = options
  if (Array.isArray(allowList)) {
    allowList = allowList.map((entry, index) => {
      if (keyGenerator !== undefined) return entry
      if (isIP(entry) === 0) {
        throw new InvalidOptionError(`rateLimit.allowList[${index}] must be an IP address, got ${JSON.stringify(entry)}`)
      }
      // As the default key reads the client address: an IPv6 entry stands for its /64.
      return normalizeIP(entry)
    })
  }
  if (redis !== undefined && !isRedisUrl(redis)) {
    throw new InvalidOptionError(`rateLimit.redis must be a redis:// or rediss:// URL, got ${JSON.stringify(redis)}`)
  }
  if (redis !== undefined && options.cache !== undefined) {
    throw new InvalidOptionError('rateLimit.cache only applies to counts kept in memory: with rateLimit.redis they live in Redis')
  }
  const cache = options.cache ?? defaultRateLimitCache
  return { max, timeWindow, keyGenerator, allowList, redis, cache }
}

function isRedisUrl (url: unknown): boolean {
  try {
    const { protocol } = new URL(url as string)
    return protocol === 'redis:' || protocol === 'rediss:'
  } catch {
    return false
  }
}
