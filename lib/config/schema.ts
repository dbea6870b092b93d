import { Type, type Static } from '@sinclair/typebox'
import type { HealthCheckOptions } from '../options.js'

// The strategies there are. Options know their names only; lib/pool/strategies/index.ts keys its selectors by this list,
// so a name without a selector does not compile.
export const strategies = ['least-busy', 'round-robin', 'p2c', 'peak-ewma', 'hash'] as const
export type Strategy = typeof strategies[number]

// The one description of a config file. ajv validates with it (validate.ts), the TypeScript types below are derived
// from it, and goload.schema.json is written from it for editors (write-schema.ts). Each pool's keys are the plugin's
// option names, so a file only ever becomes plugin options; options that are functions (resolve.lookup) have no place
// in a file.

// Adding a key: write it once here, in its object, with a description, its `default` when it has an unconditional
// one, and `secret` when --print-config must hide it. The file's validation, did-you-mean, the JSON Schema,
// --print-config, GET /config and the README reference test follow from that. A pool key (and rateLimit) is also the
// plugin's option, checked with this same schema (lib/options-check.ts, where the values only a program can give are
// allowed: functions, Infinity, Buffers); lib/options.ts takes its default from `defaults`, which reads this file, and
// the README's Options table needs a row for it. What a schema cannot say goes in a named check beside it
// (lib/options.ts, lib/config/load.ts crossCheck). A `title` is what an error says the value must be.

/** `${NAME}`: a whole value taken from the environment, where the value itself is not a string (a port). */
export const envReference = '^\\$\\{[A-Za-z_][A-Za-z0-9_]*\\}$'

// `coerce` is our own keyword (validate.ts): a value that arrives as a string from `${PORT}`, or a header value YAML
// reads as a number, is turned into the type written here before the rest of the schema looks at it. It is the only
// coercion there is: `timeout: "100"` stays an error.
const port = Type.Unsafe<number>({
  // eslint-disable-next-line no-template-curly-in-string -- the env reference syntax, shown as written
  title: 'a port number (1-65535) or ${NAME}',
  coerce: 'integer',
  anyOf: [
    { type: 'integer', minimum: 1, maximum: 65535 },
    { type: 'string', pattern: envReference }
  ]
})

const headerValue = Type.Unsafe<string>({
  title: 'a string',
  coerce: 'string',
  anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }]
})

const closed = { additionalProperties: false } as const
// `default` is the value the plugin takes when the key is left out: the file's loader fills it in (so --print-config
// shows it) and lib/options.ts reads it from here. A default that depends on another key (balanceFactor is for hash
// only, rateLimit.cache for counts in memory) or that JSON cannot write (Infinity) is said in the description instead.
// A `title` is what an error says the value must be ("must be a positive integer, got 0"), for the file and the plugin.
const positiveInteger = (description: string, value?: number) => Type.Integer({ minimum: 1, title: 'a positive integer', description, ...(value === undefined ? {} : { default: value }) })
const count = (description: string, value?: number) => Type.Integer({ minimum: 0, title: 'a whole number (0 or more)', description, ...(value === undefined ? {} : { default: value }) })
// RFC 9110's token: what a header or cookie name may be.
const tokenName = (title: string) => Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$', title })
// Backend TLS: a file's path (read at each load, see backend-tls-files.ts), or PEM text where it starts with -----BEGIN.
const pem = Type.String({ minLength: 1, description: 'a PEM file, relative to the config file (or PEM text)' })
// `secret` (read by redact.ts; ajv knows it as an annotation): what --print-config and GET /config show as <redacted>.
// The loader has read a key's file by then, so it is PEM text there.
const privateKey = Type.String({ minLength: 1, description: 'a PEM file of the private key, relative to the config file (or PEM text)', secret: 'pem' })

export const tlsSchema = Type.Object({
  ca: Type.Optional(Type.Union([pem, Type.Array(pem, { minItems: 1 })], { title: 'a PEM file or a list of them' })),
  cert: Type.Optional(pem),
  key: Type.Optional(privateKey),
  servername: Type.Optional(Type.String({ minLength: 1, title: 'a non-empty string' })),
  rejectUnauthorized: Type.Optional(Type.Boolean())
}, { ...closed, description: 'TLS to https:// backends' })

const backend = Type.Object({
  url: Type.String({ description: 'http(s)://host:port, or h2c://host:port for plaintext HTTP/2 (gRPC)' }),
  id: Type.Optional(Type.String({ minLength: 1, title: 'a non-empty string' })),
  weight: Type.Optional(Type.Number({ exclusiveMinimum: 0, title: 'a positive number' })),
  maxPending: Type.Optional(positiveInteger('most requests in flight at this backend')),
  resolve: Type.Optional(Type.Object({ interval: Type.Optional(positiveInteger('ms between DNS lookups; default 30000')) }, closed)),
  tls: Type.Optional(tlsSchema)
}, closed)

// The pool's `discovery` option (lib/options.ts normalizeDiscovery checks what a schema cannot: token beside tokenFile).
export const kubernetesDiscovery = Type.Object({
  service: Type.String({ pattern: '^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$', title: 'a Service name (lowercase letters, digits and \'-\')', description: 'the Service whose EndpointSlices list the backends' }),
  namespace: Type.Optional(Type.String({ pattern: '^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$', title: 'a namespace name (lowercase letters, digits and \'-\')', description: 'default: the pod\'s own namespace, else default' })),
  port: Type.Optional(Type.Union([
    Type.Integer({ minimum: 1, maximum: 65535 }),
    Type.String({ pattern: '^[a-z0-9]([-a-z0-9]{0,13}[a-z0-9])?$' })
  ], { title: 'a port name (as the Service names it) or a number from 1 to 65535', description: 'the Service port\'s name, or the endpoints\' port number; default: the only port listed' })),
  apiServer: Type.Optional(Type.String({ pattern: '^https?://', title: 'an origin like https://10.0.0.1:6443', description: 'outside a cluster: https://host:port of the API server' })),
  token: Type.Optional(Type.String({ minLength: 1, description: 'outside a cluster: a bearer token', secret: 'value' })),
  tokenFile: Type.Optional(Type.String({ minLength: 1, description: 'a file holding the bearer token, read again as it rotates; default: the service account\'s' })),
  ca: Type.Optional(Type.String({ minLength: 1, description: 'the API server\'s CA: a PEM file or PEM text; default: the service account\'s' })),
  retryDelay: Type.Optional(positiveInteger('ms before the first retry while the API server is unreachable; doubles up to 30 s', 1000))
}, { ...closed, description: 'the ready endpoints of a Kubernetes Service' })

const discovery = Type.Object({ kubernetes: kubernetesDiscovery }, { ...closed, description: 'backends found at run time' })

// Traefik's sticky cookie, set by the balancer; lib/policy/sticky.ts reads it.
export const stickySchema = Type.Object({
  cookie: tokenName('a cookie name'),
  maxAge: Type.Optional(positiveInteger('seconds the browser keeps the cookie; default: until it closes (a session cookie)')),
  secure: Type.Optional(Type.Boolean({ default: false, description: 'sent over https only' })),
  httpOnly: Type.Optional(Type.Boolean({ default: true, description: 'hidden from page scripts' })),
  sameSite: Type.Optional(Type.Unsafe<'strict' | 'lax' | 'none'>({ enum: ['strict', 'lax', 'none'], default: 'lax', description: 'none needs secure: true' })),
  secret: Type.Optional(Type.String({ minLength: 16, title: 'a string of at least 16 characters', secret: 'value', description: 'HMAC key of the cookie values: balancers with the same secret agree; default: random per instance' }))
}, { ...closed, description: 'keep each client on the backend it was first sent to, by a signed cookie' })

const statusPattern = Type.Union([Type.Integer({ minimum: 100, maximum: 599 }), Type.String({ pattern: '^[1-5]xx$' })], { title: "a status code or a '2xx'-style class" })

export const poolSchema = Type.Object({
  backends: Type.Optional(Type.Array(Type.Union([Type.String(), backend], { title: 'an http(s) or h2c URL or a { url, id?, weight? } object' }), { minItems: 1, description: 'required unless discovery' })),
  discovery: Type.Optional(discovery),
  strategy: Type.Optional(Type.Unsafe<Strategy>({ enum: [...strategies], default: 'least-busy' })),
  // nginx's proxy_read_timeout.
  timeout: Type.Optional(positiveInteger('upstream timeout, ms', 60_000)),
  // undici's own.
  connectTimeout: Type.Optional(positiveInteger('ms to open a connection', 10_000)),
  // No cap, as nginx: with one, a few hundred slow clients hold every connection and starve everyone else.
  connections: Type.Optional(positiveInteger('most connections to each backend; default no cap')),
  pipelining: Type.Optional(positiveInteger('requests pipelined per connection', 1)),
  retries: Type.Optional(count('further backends tried', 1)),
  retryNonIdempotent: Type.Optional(Type.Boolean({ default: false })),
  passiveHealth: Type.Optional(Type.Union([
    Type.Literal(false),
    Type.Object({
      maxFails: Type.Optional(positiveInteger('failures within window that eject')),
      window: Type.Optional(positiveInteger('ms')),
      ejectFor: Type.Optional(positiveInteger('ms')),
      maxEjectedPercent: Type.Optional(Type.Number({ minimum: 0, maximum: 100, title: 'a number from 0 to 100' })),
      consecutive5xx: Type.Optional(count('5xx in a row that eject; 0 is off')),
      // Envoy's outlier_detection failure_percentage_threshold and failure_percentage_request_volume.
      failurePercentage: Type.Optional(Type.Integer({ minimum: 0, maximum: 100, title: 'a whole number from 0 to 100', description: 'eject a backend whose 5xx and failures reach this percent of its requests within window; 0 is off' })),
      minRequests: Type.Optional(positiveInteger('requests within window before failurePercentage judges a backend'))
    }, closed)
  ], { title: 'an object or false', default: { maxFails: 3, window: 10_000, ejectFor: 30_000, maxEjectedPercent: 50, consecutive5xx: 0, failurePercentage: 0, minRequests: 20 } })),
  // Traefik's circuitBreaker (NetworkErrorRatio/ResponseCodeRatio), with Envoy's and Resilience4j's half-open probes.
  circuitBreaker: Type.Optional(Type.Object({
    errorRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1, title: 'a number above 0, up to 1', default: 0.5, description: 'share of 5xx and failed requests within window that opens the circuit' })),
    window: Type.Optional(positiveInteger('ms of requests the share is taken over (a sliding window of 10 buckets)', 10_000)),
    minRequests: Type.Optional(positiveInteger('requests within window before the share can open the circuit', 20)),
    openFor: Type.Optional(positiveInteger('ms the open circuit answers 503 before it lets probes through', 5000)),
    halfOpenRequests: Type.Optional(positiveInteger('probe requests let through half-open; all must succeed to close it', 3))
  }, { ...closed, description: 'answer 503 at once, without the backends, while the pool fails; default off' })),
  // Envoy's retry_budget (budget_percent, min_retry_concurrency) and Finagle's RetryBudget (percentCanRetry, minRetriesPerSec).
  retryBudget: Type.Optional(Type.Object({
    percent: Type.Optional(Type.Number({ minimum: 0, maximum: 100, title: 'a number from 0 to 100', default: 20, description: 'retries in flight may be up to this percent of the requests in flight' })),
    minPerSecond: Type.Optional(count('retries per second allowed whatever the percent', 3))
  }, { ...closed, description: 'bounds the retries so an outage is not multiplied; default: retries bounded by retries only' })),
  // Typed as the plugin's option (a path or grpc, not neither); normalizeOptions says which is missing, by key.
  healthCheck: Type.Optional(Type.Unsafe<HealthCheckOptions>(Type.Object({
    path: Type.Optional(Type.String({ pattern: '^/', description: 'GET this path; or grpc' })),
    grpc: Type.Optional(Type.Union([Type.Literal(true), Type.Object({ service: Type.String() }, closed)], { title: 'true or { service: name }', description: 'probe with grpc.health.v1.Health/Check' })),
    interval: Type.Optional(positiveInteger('ms between probes', 5000)),
    timeout: Type.Optional(positiveInteger('ms a probe may take', 2000)),
    healthyAfter: Type.Optional(positiveInteger('passing probes in a row', 2)),
    unhealthyAfter: Type.Optional(positiveInteger('failing probes in a row', 3)),
    expectStatus: Type.Optional(Type.Union([statusPattern, Type.Array(statusPattern, { minItems: 1 })], { title: "a status code, a '2xx'-style class, or a list of them" }))
  }, closed))),
  slowStart: Type.Optional(count('ms to ramp up to full weight', 0)),
  maxPending: Type.Optional(positiveInteger('most requests in flight at each backend; default no limit')),
  queue: Type.Optional(Type.Object({
    max: Type.Optional(count('requests that may wait', 1000)),
    timeout: Type.Optional(positiveInteger('ms a request may wait', 5000))
  }, { ...closed, default: {} })),
  closeTimeout: Type.Optional(count('ms in-flight requests get on close', 10_000)),
  tunnelIdleTimeout: Type.Optional(Type.Integer({ minimum: 0, maximum: 2_147_483_647, title: 'a whole number of ms up to 2147483647 (24.8 days)', default: 0, description: 'ms an upgraded connection may carry no bytes before it is closed; 0 is never' })),
  ewmaDecay: Type.Optional(positiveInteger('peak-ewma: ms over which samples fade', 10_000)),
  hashOn: Type.Optional(Type.Union([
    Type.Literal('ip'),
    Type.Object({ header: tokenName('a header name') }, closed),
    Type.Object({ cookie: tokenName('a cookie name') }, closed)
  ], { title: "'ip', { header: name } or { cookie: name }", description: 'hash: what a request\'s key is; default \'ip\'' })),
  balanceFactor: Type.Optional(Type.Number({ minimum: 1, title: 'a number of 1 or more', description: 'hash: how far above the average load a backend keeps its keys; default 1.25' })),
  // nginx buffers request bodies whole (to a file past 16 KiB); we keep the small ones in memory.
  bufferBody: Type.Optional(count('bytes of request body read before choosing a backend', 65_536)),
  // Between nginx's client_body_timeout (60 s) and Apache's mod_reqtimeout (20 s, then at least 500 bytes/s).
  clientTimeout: Type.Optional(positiveInteger('ms a client may send nothing', 30_000)),
  clientMinRate: Type.Optional(count('slowest request body, bytes/s', 500)),
  tls: Type.Optional(tlsSchema),
  allowH2: Type.Optional(Type.Boolean({ default: false })),
  sticky: Type.Optional(stickySchema)
}, { ...closed, description: 'Plugin options of one pool, under the same names' })

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** The goload command's log output (lib/cli/log-output.ts): `log.format` and `accessLog.format`. */
const logOutput = {
  log: {
    format: Type.Optional(Type.Unsafe<'json' | 'pretty'>({ enum: ['json', 'pretty'], default: 'json', description: 'json, or pretty through pino-pretty, which must then be installed' }))
  },
  accessLog: {
    format: Type.Optional(Type.Unsafe<'json' | 'combined'>({ enum: ['json', 'combined'], default: 'json', description: 'json (goload\'s access line), or combined: Apache/nginx combined, the upstream\'s seconds appended' })),
    buffer: Type.Optional(Type.Integer({ minimum: 0, maximum: 65536, default: 0, title: 'bytes, 0 to 65536', description: 'bytes of access lines gathered before one write, as nginx\'s access_log buffer=; 0: each line written as it comes' })),
    flush: Type.Optional(positiveInteger('ms a buffered access line waits at most before it is written, as nginx\'s flush=', 1000))
  }
}

// A route's rateLimit; the plugin's option checks with it too (lib/options-check.ts), a function keyGenerator or
// allowList beside it.
export const rateLimitSchema = Type.Object({
  max: positiveInteger('requests each client may make in a timeWindow'),
  timeWindow: Type.Union([positiveInteger('ms'), Type.String({ minLength: 1 })], { title: "ms or a duration like '1 minute'" }),
  allowList: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { description: 'client addresses never limited' })),
  redis: Type.Optional(Type.String({ pattern: '^rediss?://', title: 'a redis:// or rediss:// URL', secret: 'url-password', description: 'redis:// URL: counts shared by every balancer using it' })),
  cache: Type.Optional(positiveInteger('without redis: the most client keys counted in memory, ~150 bytes each; default 100000'))
}, { ...closed, description: 'answer 429 past max requests per client in each timeWindow' })

// A route's weighted split between pools (instead of pool); the plugin's `pools` option checks with it too.
export const splitSchema = Type.Array(Type.Object({
  pool: Type.String({ minLength: 1, description: 'name of a pool under pools' }),
  weight: Type.Integer({ minimum: 0, title: 'a whole number (0 or more)', description: 'share of the requests, relative to the other weights; 0 gets none' })
}, closed), { minItems: 1, description: 'a weighted split between pools (smooth weighted round-robin), instead of pool' })

// A top-level key of the file, and the plugin's `tracing` option of a registration (lib/tracing/).
export const tracingSchema = Type.Object({
  otlp: Type.String({ pattern: '^https?://[^/?#\\s]+(/[^?#\\s]*)?$', title: 'an http(s):// URL like http://collector:4318', description: 'the OTLP/HTTP collector\'s base URL: spans are POSTed (JSON) to <otlp>/v1/traces' }),
  sampleRatio: Type.Optional(Type.Number({ minimum: 0, maximum: 1, title: 'a number from 0 to 1', default: 1, description: 'share of new traces recorded; a request with a traceparent follows its sampled flag' })),
  serviceName: Type.Optional(Type.String({ minLength: 1, title: 'a non-empty string', default: 'goload', description: 'the spans\' service.name' })),
  headers: Type.Optional(Type.Unsafe<Record<string, string>>({
    type: 'object',
    additionalProperties: { type: 'string', secret: 'value' },
    description: 'headers sent with each export (a vendor\'s API key)'
  })),
  // Timers: past 2^31-1 ms Node would fire them at once, in a loop.
  exportDelay: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647, title: 'a whole number of ms from 1 to 2147483647', default: 5000, description: 'ms between exports of the spans batched' })),
  exportTimeout: Type.Optional(Type.Integer({ minimum: 1, maximum: 2_147_483_647, title: 'a whole number of ms from 1 to 2147483647', default: 10_000, description: 'ms an export may take, retries included; closing waits for the last one at most this long' }))
}, { ...closed, description: 'OpenTelemetry spans of each proxied request and of each attempt at a backend, exported over OTLP/HTTP' })

// A route's mirror; the plugin's option checks with it too (lib/options-check.ts).
export const mirrorSchema = Type.Object({
  pool: Type.String({ minLength: 1, description: 'the pool the copies go to, balanced by its own strategy' }),
  percent: Type.Optional(Type.Number({ minimum: 0, maximum: 100, title: 'a number from 0 to 100', default: 100, description: 'share of the route\'s requests copied, evenly spread (every 10th for 10)' })),
  maxBody: Type.Optional(count('bytes of request body a copy may carry; a larger body is not mirrored', 1_048_576)),
  maxInFlight: Type.Optional(positiveInteger('copies in flight for this route; past it a request is not mirrored', 100))
}, { ...closed, description: 'send a copy of each request to another pool, its response discarded' })

/** A path prefix as a route matches it: plain, since routes match prefixes, not patterns. */
const pathPrefix = (options: { default?: string, description: string }) => Type.String({ pattern: '^/[^*:?#]*$', title: 'a plain path starting with "/" (no wildcards, parameters, query or fragment)', ...options })

/**
 * The keys of a route, the file's and the plugin's alike (the plugin's check reads them here, lib/options-check.ts,
 * where it also takes a RegExp for host and header values). The file names the prefix `path`, the plugin `prefix`.
 */
export const routeSchemaKeys = {
  host: Type.Optional(Type.String({ pattern: '^(\\*\\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\\.?$', title: 'a host name or a *.wildcard one', description: 'exact (api.example.com) or wildcard (*.example.com)' })),
  rewritePrefix: Type.Optional(Type.String({ pattern: '^/[^?#]*$', title: 'a path starting with "/" (no query or fragment)', description: 'replaces the matched prefix before forwarding' })),
  methods: Type.Optional(Type.Array(Type.String({ pattern: '^[A-Za-z]+$', title: 'an HTTP method name' }), { minItems: 1, description: 'default: every method' })),
  headers: Type.Optional(Type.Record(Type.String(), headerValue, { description: 'header values the request must have' })),
  preserveHost: Type.Optional(Type.Boolean({ default: false })),
  websocket: Type.Optional(Type.Boolean({ default: true, description: 'tunnel upgrades (WebSocket) to the backend' })),
  rateLimit: Type.Optional(rateLimitSchema),
  accessLog: Type.Optional(Type.Boolean({ default: true, description: 'one info line per request' }))
}

export const routePrefixSchema = pathPrefix({ description: 'path prefix' })

const route = Type.Object({
  ...routeSchemaKeys,
  path: Type.Optional(pathPrefix({ default: '/', description: 'path prefix' })),
  mirror: Type.Optional(mirrorSchema),
  pool: Type.Optional(Type.String({ minLength: 1, description: 'name of a pool under pools (or pools: a weighted split)' })),
  pools: Type.Optional(splitSchema)
}, closed)

const listener = Type.Object({
  port,
  host: Type.Optional(Type.String({ minLength: 1, default: '0.0.0.0' })),
  headersTimeout: Type.Optional(positiveInteger('ms a client may take to send a request\'s headers, then 408 (nginx client_header_timeout); default 60000')),
  trustProxy: Type.Optional(Type.Union([
    Type.Boolean(),
    Type.Integer({ minimum: 1 }),
    Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })
  ], {
    title: 'true, a hop count (1 or more) or a list of addresses and CIDRs',
    description: 'whose X-Forwarded-For, -Proto and -Host to believe (Fastify\'s trustProxy): the client address in the access log, rate limits and hashOn: ip follows them; default false'
  })),
  proxyProtocol: Type.Optional(Type.Union([
    Type.Boolean(),
    Type.Object({
      trusted: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'addresses and CIDRs that may connect (the balancers); others are closed at once; default any' })),
      timeout: Type.Optional(positiveInteger('ms a connection may take to send its header, then it is closed; default 30000 (nginx proxy_protocol_timeout)'))
    }, closed)
  ], {
    title: 'true, false or { trusted, timeout }',
    description: 'every connection starts with a PROXY protocol v1 or v2 header (AWS NLB, HAProxy send-proxy): its source is the client address; a connection without one is closed; default false'
  })),
  tls: Type.Optional(Type.Object({
    certificates: Type.Optional(Type.Array(Type.Object({
      cert: Type.String({ minLength: 1, description: 'PEM certificate file (chain after it), relative to the config file' }),
      key: Type.String({ minLength: 1, secret: 'pem', description: 'PEM private key file, unencrypted, relative to the config file' })
    }, closed), { minItems: 1, description: 'SNI picks the one whose names match; the first is the default' })),
    acme: Type.Optional(Type.Object({
      directory: Type.String({ pattern: '^https?://', description: 'the ACME directory URL (Let\'s Encrypt: https://acme-v02.api.letsencrypt.org/directory)' }),
      email: Type.Optional(Type.String({ pattern: '^[^@\\s]+@[^@\\s]+$', description: 'the account\'s contact, told of expiries and problems' })),
      domains: Type.Array(Type.String({ pattern: '^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?$', description: 'a DNS name' }), { minItems: 1, description: 'the names of one certificate, ordered together' }),
      challenge: Type.Optional(Type.Unsafe<'http-01' | 'tls-alpn-01'>({ enum: ['http-01', 'tls-alpn-01'], description: 'http-01 (default) on every plain listener, or tls-alpn-01 on this listener' })),
      storage: Type.String({ minLength: 1, secret: 'url-password', description: 'a folder (relative to the config file) or redis://…, shared by every instance' }),
      directoryCa: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of the CA the directory\'s HTTPS is signed by (Pebble, step-ca)' }))
    }, { ...closed, description: 'order and renew a certificate from an ACME CA (Let\'s Encrypt)' })),
    minVersion: Type.Optional(Type.Unsafe<'TLSv1.2' | 'TLSv1.3'>({ enum: ['TLSv1.2', 'TLSv1.3'], description: 'default TLSv1.2' }))
  }, { ...closed, description: 'serve HTTPS on this listener' })),
  http2: Type.Optional(Type.Boolean({
    description: 'TLS: offer h2 beside http/1.1 by ALPN, default true; plain: serve HTTP/2 with prior knowledge (h2c) only, default false'
  })),
  redirectHttps: Type.Optional(Type.Unsafe<number | true>({
    title: 'a port number (1-65535) or true (443)',
    anyOf: [{ type: 'integer', minimum: 1, maximum: 65535 }, { const: true }],
    description: 'answer every request 308 to https://<host>[:port]<target>, before routing; such a listener has no routes'
  })),
  routes: Type.Optional(Type.Array(route, { minItems: 1, description: 'required unless redirectHttps' }))
}, closed)

const pools = Type.Unsafe<Record<string, Static<typeof poolSchema>>>({
  type: 'object',
  minProperties: 1,
  additionalProperties: poolSchema,
  description: 'pools by name'
})

const admin = Type.Object({
  port,
  host: Type.Optional(Type.String({ minLength: 1, default: '127.0.0.1', description: 'a host other than loopback needs a token' })),
  // eslint-disable-next-line no-template-curly-in-string -- the env reference syntax, shown as written
  token: Type.Optional(Type.String({ minLength: 1, secret: 'value', description: 'required as Authorization: Bearer <token>, at least 16 characters, no whitespace; write ${GOLOAD_ADMIN_TOKEN}' }))
}, { ...closed, description: 'the admin API and status page, on a listener of its own' })

export const configSchema = Type.Object({
  listeners: Type.Array(listener, { minItems: 1 }),
  pools,
  admin: Type.Optional(admin),
  log: Type.Optional(Type.Object({
    level: Type.Optional(Type.Unsafe<typeof logLevels[number]>({ enum: [...logLevels], default: 'info' })),
    ...logOutput.log
  }, closed)),
  accessLog: Type.Optional(Type.Object(logOutput.accessLog, { ...closed, description: 'how the access lines are written (the goload command)' })),
  tracing: Type.Optional(tracingSchema)
}, {
  ...closed,
  $schema: 'http://json-schema.org/draft-07/schema#',
  title: 'fastify-goload config file'
})

/** One pool as the file gives it: plugin options (GoloadOptions) without name and prefix. */
export type PoolFileOptions = Static<typeof poolSchema>
export type RouteConfig = Static<typeof route> & { path: string }
export interface ListenerConfig extends Omit<Static<typeof listener>, 'host' | 'routes'> {
  host: string
  /** Absent only on a listener with redirectHttps (loadConfig checks). */
  routes?: RouteConfig[]
}
export interface AdminConfig extends Omit<Static<typeof admin>, 'host'> {
  host: string
}
/** A config file once loaded: env references replaced, defaults (listener host, route path) filled in. */
export interface GoloadFileConfig extends Omit<Static<typeof configSchema>, 'listeners' | 'admin'> {
  listeners: ListenerConfig[]
  admin?: AdminConfig
}
