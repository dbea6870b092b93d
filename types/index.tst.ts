import Fastify, { type FastifyRequest } from 'fastify'
import { Registry } from 'prom-client'
import { expect, test } from 'tstyche'
import goload, { type BackendOptions, type BackendStats, type GoloadOptions, type GoloadPool, type HashOn, type MirrorOptions, type PoolStats, type RateLimitOptions, type RouteOptions, type TlsOptions, type TracingOptions } from 'fastify-goload'
import type { CircuitBreakerOptions, RetryBudgetOptions } from 'fastify-goload'

test('registers with backends as URLs or objects', async () => {
  const app = Fastify()
  await app.register(goload, { backends: ['http://10.0.0.1:3000', { url: 'http://10.0.0.2:3000', id: 'two', weight: 2 }] })
  await app.register(goload, { backends: ['http://10.0.0.3:3000'], prefix: '/api', name: 'api', strategy: 'round-robin', timeout: 5000, connections: 16, pipelining: 1 })
  await app.register(goload, {
    backends: [{ url: 'http://api.internal:3000', maxPending: 10, resolve: { interval: 30000, lookup: async () => ['10.0.0.4'] } }],
    prefix: '/svc',
    retries: 2,
    retryNonIdempotent: false,
    passiveHealth: { maxFails: 3, window: 10000, ejectFor: 30000, maxEjectedPercent: 50, consecutive5xx: 5 },
    healthCheck: { path: '/health', interval: 5000, timeout: 2000, healthyAfter: 2, unhealthyAfter: 3, expectStatus: ['2xx', 301] },
    slowStart: 10000,
    maxPending: 100,
    queue: { max: 1000, timeout: 5000 },
    closeTimeout: 10000
  })
  await app.register(goload, { backends: ['http://10.0.0.5:3000'], prefix: '/x', passiveHealth: false })
  await app.register(goload, { backends: ['http://10.0.0.6:3000'], prefix: '/y', strategy: 'peak-ewma', ewmaDecay: 5000 })
  await app.register(goload, { backends: ['http://10.0.0.7:3000'], prefix: '/z', strategy: 'p2c' })
  await app.register(goload, { backends: ['http://10.0.0.8:3000'], prefix: '/h', strategy: 'hash', hashOn: { cookie: 'sid' }, balanceFactor: 1.5 })
  await app.register(goload, { backends: ['http://10.0.0.9:3000'], prefix: '/i', strategy: 'hash', hashOn: 'ip' })
  expect<HashOn>().type.toBe<'ip' | { header: string } | { cookie: string }>()
})

test('registers gRPC backends at h2c:// URLs, with gRPC health checks', async () => {
  const app = Fastify({ http2: true })
  await app.register(goload, { backends: ['h2c://10.0.0.10:50051'], healthCheck: { grpc: true, interval: 2000 } })
  await app.register(goload, { backends: ['h2c://10.0.0.11:50051'], prefix: '/pkg.Service', healthCheck: { grpc: { service: 'pkg.Service' } } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['h2c://a:1'], healthCheck: { grpc: true, path: '/health' } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['h2c://a:1'], healthCheck: { grpc: true, expectStatus: '2xx' } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['h2c://a:1'], healthCheck: { grpc: { name: 'x' } } })
})

test('registers a pool found through Kubernetes discovery, with or without backends', async () => {
  const app = Fastify()
  await app.register(goload, { discovery: { kubernetes: { service: 'api', namespace: 'prod', port: 'http' } } })
  await app.register(goload, { prefix: '/k', backends: ['http://10.0.0.12:3000'], discovery: { kubernetes: { service: 'web', port: 8080, apiServer: 'https://k8s:6443', tokenFile: '/t', ca: '/ca.pem', retryDelay: 500 } } })
  expect(app.register).type.not.toBeCallableWith(goload, { discovery: { kubernetes: { namespace: 'prod' } } })
  expect(app.register).type.not.toBeCallableWith(goload, { discovery: { kubernetes: { service: 'api', port: true } } })
  expect(app.register).type.not.toBeCallableWith(goload, { pool: 'api', discovery: { kubernetes: { service: 'api' } } })
})

test('rejects options that are not the plugin\'s', () => {
  const app = Fastify()
  expect(app.register).type.not.toBeCallableWith(goload, {})
  expect(app.register).type.not.toBeCallableWith(goload, { backends: [42] })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], strategy: 'random' })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], strategy: 'hash', hashOn: { query: 'user' } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], strategy: 'hash', hashOn: 'header' })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], timeout: '5s' })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], passiveHealth: true })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], healthCheck: { interval: 1000 } })
})

test('decorates the instance with typed stats and pools', () => {
  const app = Fastify()
  expect(app.goload.stats()).type.toBe<PoolStats>()
  expect(app.goload.stats().strategy).type.toBe<'least-busy' | 'round-robin' | 'p2c' | 'peak-ewma' | 'hash'>()
  expect(app.goload.stats().backends).type.toBe<BackendStats[]>()
  expect<BackendStats['pending']>().type.toBe<number>()
  expect(app.goload.pool('api')).type.toBe<GoloadPool>()
  expect(app.goload.pool('api').stats()).type.toBe<PoolStats>()
  expect(app.goload.names()).type.toBe<string[]>()
  expect<BackendStats['ejectedUntil']>().type.toBe<number | null>()
  expect<BackendStats['upgraded']>().type.toBe<number>()
  expect<PoolStats['queued']>().type.toBe<number>()
})

test('the pool can change at run time', () => {
  const app = Fastify()
  expect(app.goload.add('http://10.0.0.9:3000')).type.toBe<void>()
  expect(app.goload.add({ url: 'http://10.0.0.9:3000', weight: 2 })).type.toBe<void>()
  expect(app.goload.remove('http://10.0.0.9:3000')).type.toBe<Promise<void>>()
  expect(app.goload.drain('a')).type.toBe<void>()
  expect(app.goload.undrain('a')).type.toBe<void>()
  expect(app.goload.pool('api').remove('a')).type.toBe<Promise<void>>()
})

test('options are exported for users building them apart', () => {
  const options: GoloadOptions = { backends: ['http://a:1'] }
  expect(options.backends).type.toBe<Array<string | BackendOptions>>()
  expect<BackendOptions['weight']>().type.toBe<number | undefined>()
})

test('tls to backends, on the pool and per backend, and allowH2', async () => {
  const app = Fastify()
  const pem = '-----BEGIN CERTIFICATE-----\n...'
  await app.register(goload, {
    backends: ['https://10.0.0.1:8443', { url: 'https://10.0.0.2:8443', tls: { ca: [pem, Buffer.from(pem)], servername: 'api.internal' } }],
    tls: { ca: pem, cert: Buffer.from(pem), key: pem, servername: 'api.internal', rejectUnauthorized: true },
    allowH2: true
  })
  expect(app.goload.add({ url: 'https://10.0.0.3:8443', tls: { rejectUnauthorized: false } })).type.toBe<void>()
  expect<GoloadOptions['tls']>().type.toBe<TlsOptions | undefined>()
  expect<BackendOptions['tls']>().type.toBe<TlsOptions | undefined>()
  expect<GoloadOptions['allowH2']>().type.toBe<boolean | undefined>()
  expect<TlsOptions['ca']>().type.toBe<string | Buffer | Array<string | Buffer> | undefined>()
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['https://a:1'], tls: { ca: 42 } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['https://a:1'], tls: { cafile: 'ca.pem' } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['https://a:1'], tls: { rejectUnauthorized: 'no' } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: [{ url: 'https://a:1', tls: { servername: 1 } }] })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['https://a:1'], allowH2: 'yes' })
})

test('routes: host, methods, headers, rewritePrefix, preserveHost, and a route that shares a pool', async () => {
  const app = Fastify()
  await app.register(goload, {
    backends: ['http://10.0.0.8:3000'],
    name: 'api',
    host: '*.example.com',
    prefix: '/api',
    rewritePrefix: '/',
    methods: ['GET', 'POST'],
    headers: { 'x-canary': '1', 'x-tenant': /^t-/ },
    preserveHost: true,
    websocket: false
  })
  await app.register(goload, { backends: ['http://10.0.0.9:3000'], host: /^api\d\.test$/ })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], websocket: 'no' })
  await app.register(goload, { pool: 'api', prefix: '/v1', rewritePrefix: '/' })
  expect(app.register).type.not.toBeCallableWith(goload, { pool: 'api', timeout: 5 })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], host: 42 })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], headers: { 'x-a': 1 } })
})

test('rateLimit per route: max and timeWindow required, keyGenerator and allowList typed on the request', async () => {
  const app = Fastify()
  await app.register(goload, { backends: ['http://a:1'], rateLimit: { max: 100, timeWindow: '1 minute', redis: 'redis://127.0.0.1:6379' } })
  await app.register(goload, {
    pool: 'api',
    prefix: '/search',
    rateLimit: { max: 10, timeWindow: 1000, keyGenerator: (request) => request.headers['x-api-key'] as string, allowList: async (request, key) => key === 'admin' }
  })
  expect<RateLimitOptions['allowList']>().type.toBe<string[] | ((request: FastifyRequest, key: string) => boolean | Promise<boolean>) | undefined>()
  expect<RateLimitOptions['cache']>().type.toBe<number | undefined>()
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], rateLimit: { max: 1 } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], rateLimit: { max: '1', timeWindow: 1000 } })
})

test('accessLog: a boolean, on a registration with its pool or on a route that shares one', async () => {
  const app = Fastify()
  await app.register(goload, { backends: ['http://10.0.0.8:3000'], name: 'quiet', accessLog: false })
  await app.register(goload, { pool: 'quiet', prefix: '/loud', accessLog: true })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], accessLog: 'off' })
})

test('metrics: true or a prom-client Registry; fastify.goload.metrics is the Registry they are on', async () => {
  const app = Fastify()
  await app.register(goload, { backends: ['http://10.0.0.9:3000'], metrics: true })
  await app.register(goload, { backends: ['http://10.0.0.10:3000'], prefix: '/b', metrics: new Registry() })
  await app.register(goload, { pool: 'default', prefix: '/c', metrics: false })
  expect(app.goload.metrics).type.toBe<Registry | undefined>()
  expect(await app.goload.metrics!.metrics()).type.toBe<string>()
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], metrics: 'yes' })
})

test('circuitBreaker, retryBudget and passiveHealth.failurePercentage: objects of numbers, every key optional', async () => {
  const app = Fastify()
  await app.register(goload, {
    backends: ['http://10.0.0.11:3000'],
    circuitBreaker: { errorRatio: 0.5, window: 10000, minRequests: 20, openFor: 5000, halfOpenRequests: 3 },
    retryBudget: { percent: 20, minPerSecond: 3 },
    passiveHealth: { failurePercentage: 50, minRequests: 20 }
  })
  await app.register(goload, { backends: ['http://10.0.0.12:3000'], prefix: '/b', circuitBreaker: {}, retryBudget: {} })
  expect<CircuitBreakerOptions['errorRatio']>().type.toBe<number | undefined>()
  expect<RetryBudgetOptions['percent']>().type.toBe<number | undefined>()
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], circuitBreaker: { errorRatio: '50%' } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], retryBudget: true })
})

test('mirror per route: a pool name, with percent, maxBody and maxInFlight as numbers', async () => {
  const app = Fastify()
  await app.register(goload, { backends: ['http://10.0.0.9:3000'], name: 'next' })
  await app.register(goload, { backends: ['http://a:1'], prefix: '/api', mirror: { pool: 'next', percent: 10, maxBody: 1048576, maxInFlight: 100 } })
  await app.register(goload, { pool: 'api', prefix: '/v2', mirror: { pool: 'next' } })
  expect<RouteOptions['mirror']>().type.toBe<MirrorOptions | undefined>()
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], mirror: { percent: 10 } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], mirror: { pool: 'next', percent: '10' } })
})

test('tracing: otlp required, the rest optional; on a registration with its pool or on a route that shares one', async () => {
  const app = Fastify()
  const tracing: TracingOptions = { otlp: 'http://collector:4318', sampleRatio: 0.1, serviceName: 'edge', headers: { 'x-api-key': 'k' }, exportDelay: 1000, exportTimeout: 5000 }
  await app.register(goload, { backends: ['http://10.0.0.11:3000'], name: 'traced', tracing })
  await app.register(goload, { pool: 'traced', prefix: '/t', tracing })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], tracing: { sampleRatio: 1 } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], tracing: { otlp: 'http://c:4318', sampleRatio: '1' } })
})

test('a route splits between pools by weight; a pool keeps clients by a sticky cookie', async () => {
  const app = Fastify()
  await app.register(goload, { name: 'stable', backends: ['http://10.0.0.1:3000'], sticky: { cookie: 'goload_web', maxAge: 3600, secure: true, httpOnly: true, sameSite: 'lax', secret: 'a secret of 16+ characters' } })
  await app.register(goload, { name: 'canary', backends: ['http://10.0.0.2:3000'], sticky: { cookie: 'goload_web' } })
  await app.register(goload, { pools: [{ pool: 'stable', weight: 95 }, { pool: 'canary', weight: 5 }], prefix: '/', name: 'web' })
  app.goload.setWeights('web', { canary: 10 })
  expect(app.goload.weights('web')).type.toBe<Record<string, number>>()
  expect(app.register).type.not.toBeCallableWith(goload, { pools: [{ pool: 'stable', weight: 1 }], timeout: 5 })
  expect(app.register).type.not.toBeCallableWith(goload, { pools: [{ pool: 'stable' }] })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://10.0.0.3:3000'], sticky: { maxAge: 60 } })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://10.0.0.3:3000'], sticky: { cookie: 'x', sameSite: 'sometimes' } })
})
