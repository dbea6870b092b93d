// rateLimit per registration, kept in memory by @fastify/rate-limit: past max in the window the balancer answers 429
// itself, and the request never reaches a backend nor counts against one.
import Fastify from 'fastify'
import t from 'tap'
import goload from '../lib/index.js'
import { request } from './helpers/client.js'
import { capturedLogs } from './helpers/logs.js'
import { hello, pendingCounts, settled, startBackend, startBalancer } from './helpers/servers.js'

t.test('the (max+1)th request in the window is 429 with retry-after and x-ratelimit-*, and never reaches a backend', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const balancer = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 3, timeWindow: '1 minute' } })
  for (let sent = 1; sent <= 3; sent++) {
    const answer = await request(balancer.url + '/x')
    t.equal(answer.status, 200)
    t.equal(answer.headers['x-ratelimit-limit'], '3')
    t.equal(answer.headers['x-ratelimit-remaining'], String(3 - sent))
  }
  const over = await request(balancer.url + '/x')
  t.equal(over.status, 429)
  t.match(over.headers['content-type'], /^application\/json/)
  t.same(JSON.parse(over.body), { statusCode: 429, code: 'FST_GOLOAD_RATE_LIMITED', error: 'Too Many Requests', message: 'Too many requests: rate limit exceeded, retry in 1 minute' })
  t.equal(over.headers['x-ratelimit-limit'], '3')
  t.equal(over.headers['x-ratelimit-remaining'], '0')
  const reset = Number(over.headers['x-ratelimit-reset'])
  t.ok(reset > 0 && reset <= 60, `x-ratelimit-reset is the seconds left in the window, got ${reset}`)
  t.equal(over.headers['retry-after'], String(reset))
  t.equal((await request(balancer.url + '/y', { method: 'POST', body: 'hello' })).status, 429, 'a request with a body is refused the same way')
  t.equal(backend.received, 3, 'the backend saw max requests')
  await settled(balancer.app)
  t.same(pendingCounts(balancer.app), [0])
  t.equal(balancer.app.goload.stats().backends[0].served, 3, 'no refused request was counted against a backend')
})

t.test('a short window opens again once it has passed', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const balancer = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 200 } })
  t.equal((await request(balancer.url)).status, 200)
  const over = await request(balancer.url)
  t.equal(over.status, 429)
  t.equal(over.headers['retry-after'], '1', 'retry-after rounds up to whole seconds')
  await new Promise((resolve) => setTimeout(resolve, 250))
  t.equal((await request(balancer.url)).status, 200)
  t.equal(backend.received, 2)
})

t.test('allowList: listed client addresses are never limited', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const balancer = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 60_000, allowList: ['::ffff:127.0.0.1'] } })
  for (let i = 0; i < 3; i++) t.equal((await request(balancer.url)).status, 200)
  t.equal(backend.received, 3)
})

t.test('allowList as a function of the request and its key', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const keys: string[] = []
  const balancer = await startBalancer(t, {
    backends: [backend.url],
    rateLimit: { max: 1, timeWindow: 60_000, allowList: (request, key) => { keys.push(key); return request.headers['x-internal'] === 'yes' } }
  })
  t.equal((await request(balancer.url)).status, 200)
  t.equal((await request(balancer.url, { headers: { 'x-internal': 'yes' } })).status, 200)
  t.equal((await request(balancer.url)).status, 429)
  t.same(keys, ['127.0.0.1', '127.0.0.1', '127.0.0.1'], 'the default key is the client address')
})

t.test('keyGenerator: each key has a count of its own; the default key follows trustProxy', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const byUser = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 60_000, keyGenerator: async (request) => String(request.headers['x-user']) } })
  t.equal((await request(byUser.url, { headers: { 'x-user': 'ann' } })).status, 200)
  t.equal((await request(byUser.url, { headers: { 'x-user': 'bob' } })).status, 200)
  t.equal((await request(byUser.url, { headers: { 'x-user': 'ann' } })).status, 429)

  const behindProxy = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 60_000 } }, { trustProxy: true })
  t.equal((await request(behindProxy.url, { headers: { 'x-forwarded-for': '203.0.113.1' } })).status, 200)
  t.equal((await request(behindProxy.url, { headers: { 'x-forwarded-for': '203.0.113.2' } })).status, 200, 'with trustProxy, X-Forwarded-For names the client')
  t.equal((await request(behindProxy.url, { headers: { 'x-forwarded-for': '203.0.113.1' } })).status, 429)
  // An IPv6 client is counted by its /64, as @fastify/rate-limit does: one host cannot dodge the limit by address.
  t.equal((await request(behindProxy.url, { headers: { 'x-forwarded-for': '2001:db8:1:2::1' } })).status, 200)
  t.equal((await request(behindProxy.url, { headers: { 'x-forwarded-for': '2001:db8:1:2:ffff::9' } })).status, 429)
  t.equal((await request(behindProxy.url, { headers: { 'x-forwarded-for': '2001:db8:1:3::1' } })).status, 200)

  const direct = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 60_000 } })
  t.equal((await request(direct.url, { headers: { 'x-forwarded-for': '203.0.113.1' } })).status, 200)
  t.equal((await request(direct.url, { headers: { 'x-forwarded-for': '203.0.113.2' } })).status, 429, 'without trustProxy, the header is not believed')
})

t.test('a keyGenerator that throws: a 500 of Fastify, and no backend reached', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const logs = capturedLogs('error')
  const balancer = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 60_000, keyGenerator: () => { throw new Error('no key') } } }, { logger: logs.logger })
  t.equal((await request(balancer.url)).status, 500)
  t.equal(backend.received, 0)
})

t.test('two registrations at one prefix, by host, keep counts of their own; one without a limit is never limited', async (t) => {
  const a = await startBackend(t, hello('a'))
  const b = await startBackend(t, hello('b'))
  const c = await startBackend(t, hello('c'))
  const balancer = await startBalancer(t, { backends: [a.url], host: 'a.test', rateLimit: { max: 2, timeWindow: 60_000 } }, {}, async (app) => {
    await app.register(goload, { backends: [b.url], host: 'b.test', rateLimit: { max: 1, timeWindow: 60_000 } })
    await app.register(goload, { backends: [c.url], host: 'c.test' })
  })
  const at = (host: string) => request(balancer.url + '/', { headers: { host } })
  t.equal((await at('a.test')).status, 200)
  t.equal((await at('b.test')).status, 200)
  t.equal((await at('b.test')).status, 429)
  t.equal((await at('a.test')).status, 200, "b's requests did not count against a")
  t.equal((await at('a.test')).status, 429)
  for (let i = 0; i < 4; i++) {
    const answer = await at('c.test')
    t.equal(answer.status, 200)
    t.equal(answer.headers['x-ratelimit-limit'], undefined, 'a route without rateLimit has no limiter')
  }
  t.same([a.received, b.received, c.received], [2, 1, 4])
})

t.test("the app's own routes and requests no route takes (404) are never counted", async (t) => {
  const backend = await startBackend(t, hello('a'))
  const balancer = await startBalancer(t, { backends: [backend.url], prefix: '/api', host: 'api.test', rateLimit: { max: 1, timeWindow: 60_000 } }, {}, (app) => {
    app.get('/own', async () => 'own')
  })
  for (let i = 0; i < 3; i++) {
    const own = await request(balancer.url + '/own')
    t.equal(own.status, 200)
    t.equal(own.headers['x-ratelimit-limit'], undefined)
    t.equal((await request(balancer.url + '/api/x', { headers: { host: 'other.test' } })).status, 404, 'no route for that host')
  }
  t.equal((await request(balancer.url + '/api/x', { headers: { host: 'api.test' } })).status, 200, 'the first request the route takes is within the limit')
  t.equal((await request(balancer.url + '/api/x', { headers: { host: 'api.test' } })).status, 429)
})

t.test('a route sharing a pool keeps a limit of its own; the pool routes apart are not limited by it', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const balancer = await startBalancer(t, { pool: 'web', prefix: '/search', rateLimit: { max: 1, timeWindow: 60_000 } } as never, {}, async (app) => {
    await app.register(goload, { backends: [backend.url], name: 'web' })
  })
  t.equal((await request(balancer.url + '/search?q=1')).status, 200)
  t.equal((await request(balancer.url + '/search?q=2')).status, 429)
  t.equal((await request(balancer.url + '/other')).status, 200)
  t.equal((await request(balancer.url + '/other')).status, 200)
})

t.test('a client that leaves while its count is taken is never forwarded', async (t) => {
  const backend = await startBackend(t, hello('a'))
  let release!: () => void
  const held = new Promise<void>((resolve) => { release = resolve })
  let asked!: () => void
  const keyAsked = new Promise<void>((resolve) => { asked = resolve })
  const balancer = await startBalancer(t, {
    backends: [backend.url],
    rateLimit: { max: 5, timeWindow: 60_000, keyGenerator: async () => { asked(); await held; return 'k' } }
  })
  const controller = new AbortController()
  const gone = request(balancer.url, { signal: controller.signal }).catch((error: Error) => error)
  await keyAsked
  controller.abort()
  t.match(await gone, { name: 'AbortError' })
  await new Promise((resolve) => setTimeout(resolve, 20))
  release()
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(backend.received, 0)
  t.same(pendingCounts(balancer.app), [0])
})

t.test('invalid rateLimit options are refused, naming the key', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['often', /rateLimit must be an object/],
    [{ timeWindow: 1000 }, /rateLimit\.max is required/],
    [{ max: 0, timeWindow: 1000 }, /rateLimit\.max must be a positive integer, got 0/],
    [{ max: 1.5, timeWindow: 1000 }, /rateLimit\.max must be a positive integer/],
    [{ max: 1 }, /rateLimit\.timeWindow is required/],
    [{ max: 1, timeWindow: 'soon' }, /rateLimit\.timeWindow .* got "soon"/],
    [{ max: 1, timeWindow: -5 }, /rateLimit\.timeWindow/],
    [{ max: 1, timeWindow: 1000, keyGenerator: 'ip' }, /rateLimit\.keyGenerator must be a function/],
    [{ max: 1, timeWindow: 1000, allowList: ['127.0.0.1', 'localhost'] }, /rateLimit\.allowList\[1\] must be an IP address, got "localhost"/],
    [{ max: 1, timeWindow: 1000, allowList: '127.0.0.1' }, /rateLimit\.allowList must be an array of IP addresses or a function/],
    [{ max: 1, timeWindow: 1000, redis: 'http://127.0.0.1:6379' }, /rateLimit\.redis must be a redis:\/\/ or rediss:\/\/ URL/],
    [{ max: 1, timeWindow: 1000, redis: 'not a url' }, /rateLimit\.redis must be/],
    [{ max: 1, timeWindow: 1000, cache: 0 }, /rateLimit\.cache must be a positive integer, got 0/],
    [{ max: 1, timeWindow: 1000, redis: 'redis://127.0.0.1:6379', cache: 10 }, /rateLimit\.cache only applies to counts kept in memory: with rateLimit\.redis they live in Redis/],
    [{ max: 1, timeWindow: 1000, store: 'x' }, /rateLimit has an unknown field "store"/]
  ]
  for (const [rateLimit, message] of cases) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(goload, { backends: ['http://127.0.0.1:1'], rateLimit } as never) }, { code: 'FST_GOLOAD_INVALID_OPTION', message }, JSON.stringify(rateLimit))
    await app.close()
  }
  const app = Fastify()
  await app.register(goload, { backends: ['http://127.0.0.1:1'], rateLimit: { max: 1, timeWindow: 1000, keyGenerator: (r) => r.url, allowList: ['users-key'] } })
  await app.close()
  t.pass('with a keyGenerator, allowList entries are keys, not addresses')
})
