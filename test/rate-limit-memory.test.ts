// In-memory rate-limit counts (issue 15 item 10): a pipelined burst over max is counted request by request, and the
// keys kept are bounded by rateLimit.cache (default 100,000), with counts whose window is over forgotten first, so a
// flood from other addresses must be that wide before it makes the store forget a client's count.
import Fastify from 'fastify'
import t from 'tap'
import { normalizeRateLimit } from '../lib/options.js'
import { MemoryStore } from '../lib/proxy/rate-limit-store.js'
import { request } from './helpers/client.js'
import { capturedLogs } from './helpers/logs.js'
import { connect, ResponseReader } from './helpers/raw.js'
import { hello, settled, pendingCounts, startBackend, startBalancer, waitFor } from './helpers/servers.js'

t.test('10 requests pipelined on one connection with max 3: 3 served (remaining 2, 1, 0), then 7 refused 429', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const { app, port } = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 3, timeWindow: '1 minute' } })
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  socket.write('GET /burst HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(10))
  const answers = []
  for (let i = 0; i < 10; i++) answers.push(await reader.next(5000))
  t.same(answers.map((answer) => answer.status), [200, 200, 200, 429, 429, 429, 429, 429, 429, 429])
  t.same(answers.map((answer) => answer.headers['x-ratelimit-remaining']?.[0]), ['2', '1', '0', '0', '0', '0', '0', '0', '0', '0'])
  t.equal(backend.received, 3, 'the backend saw the three within the limit')
  await settled(app)
  t.same(pendingCounts(app), [0])
})

const quiet = Fastify().log

/** The key a request counts under: its x-client header, so a test can be many clients from one address. */
const byClient = (request: { headers: Record<string, unknown> }) => String(request.headers['x-client'])

t.test('rateLimit.cache: past that many clients in a window the least recent is forgotten, with one warning; within it, counts hold', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const logs = capturedLogs('warn')
  const small = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: '1 minute', keyGenerator: byClient, cache: 20 } }, { logger: logs.logger })
  const as = (url: string, client: string) => request(url, { headers: { 'x-client': client } }).then((answer) => answer.status)
  t.equal(await as(small.url, 'attacker'), 200)
  t.equal(await as(small.url, 'attacker'), 429)
  for (let i = 0; i < 19; i++) await as(small.url, `other-${i}`)
  t.equal(await as(small.url, 'attacker'), 429, 'with 19 other clients, 20 in all, the count holds')
  t.same(logs.warnings(), [])
  for (let i = 19; i < 39; i++) await as(small.url, `other-${i}`)
  t.equal(await as(small.url, 'attacker'), 200, 'after 20 more, the attacker was forgotten: cache is the bound')
  t.match(logs.warnings().map((line) => line.msg), [/rate limit counts more than 20 clients in one window; .*raise rateLimit\.cache, or keep counts in Redis/])
  for (let i = 39; i < 80; i++) await as(small.url, `other-${i}`)
  t.equal(logs.warnings().length, 1, 'one warning, not one per client forgotten')
})

t.test('the default keeps 100,000 keys: a flood of 5,001 other clients leaves a count as it was', async (t) => {
  t.equal(normalizeRateLimit({ max: 1, timeWindow: 60_000 })!.cache, 100_000)
  const store = new MemoryStore(100_000, quiet)
  const counted: number[] = []
  const incr = (key: string) => { store.incr(key, (_error, result) => { counted.push(result!.current) }, 60_000) }
  incr('attacker')
  for (let i = 0; i < 5001; i++) incr(`10.0.${i >> 8}.${i & 255}`)
  incr('attacker')
  t.equal(counted.at(-1), 2, "the attacker's second request counts as its second")
  t.equal(store.size, 5002)
})

t.test('each answer is a copy: a later request of the same key does not change what an earlier one was told', async (t) => {
  const store = new MemoryStore(10, quiet)
  const told: Array<{ current: number, ttl: number }> = []
  for (let i = 0; i < 3; i++) store.incr('k', (_error, result) => { told.push(result!) }, 60_000)
  t.same(told.map((result) => result.current), [1, 2, 3])
  const child = store.child() as MemoryStore
  t.same([child.size, child.maxKeys], [0, 10], "@fastify/rate-limit's per-route copy starts empty, as big")
})

t.test('counts whose window is over are forgotten as requests come, so memory follows the clients of one window', async (t) => {
  const store = new MemoryStore(1000, quiet)
  const incr = (key: string, timeWindow: number) => { store.incr(key, () => {}, timeWindow) }
  const window = 200
  for (let i = 0; i < 100; i++) incr(`k${i}`, window)
  t.equal(store.size, 100)
  const started = Date.now()
  await waitFor(() => Date.now() > started + window, 'their windows to end')
  for (let i = 0; i < 50; i++) incr('now', window)
  t.equal(store.size, 1, 'two ended counts forgotten per request: 100 in 50 requests')
  incr('k0', window)
  t.equal(store.size, 2, 'a client back after its window starts a new count')
})
