// rateLimit.redis: counts kept in a real redis-server, shared by every balancer using it. Redis away never fails or
// slows a request: it passes unlimited, with one log line per outage.
import t, { type Test } from 'tap'
import goload from '../lib/index.js'
import { request } from './helpers/client.js'
import { capturedLogs } from './helpers/logs.js'
import { startRedis, withoutRedis } from './helpers/redis.js'
import { deadUrl, hello, pendingCounts, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

/** Statuses of `count` requests to `url`, sent one after another, each asserted to answer within `ms`. */
async function statuses (t: Test, url: string, count: number, ms = 1000): Promise<number[]> {
  const seen: number[] = []
  for (let i = 0; i < count; i++) {
    const started = performance.now()
    seen.push((await request(url)).status)
    const took = performance.now() - started
    t.ok(took < ms, `answered in ${Math.round(took)} ms`)
  }
  return seen
}

t.test('two balancers sharing one redis-server enforce one limit between them', { skip: withoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const backend = await startBackend(t, hello('a'))
  const rateLimit = { max: 3, timeWindow: 60_000, redis: redis.url }
  const first = await startBalancer(t, { backends: [backend.url], rateLimit })
  const second = await startBalancer(t, { backends: [backend.url], rateLimit })
  t.equal((await request(first.url)).status, 200)
  t.equal((await request(second.url)).status, 200)
  const third = await request(first.url)
  t.equal(third.status, 200)
  t.equal(third.headers['x-ratelimit-remaining'], '0', "the other balancer's request counted here")
  const over = await request(second.url)
  t.equal(over.status, 429)
  t.equal(JSON.parse(over.body).code, 'FST_GOLOAD_RATE_LIMITED')
  t.ok(Number(over.headers['retry-after']) > 0 && Number(over.headers['retry-after']) <= 60)
  t.equal((await request(first.url)).status, 429)
  t.equal(backend.received, 3, 'the backend saw max requests, from both balancers together')
  await settled(first.app)
  await settled(second.app)
  t.same([...pendingCounts(first.app), ...pendingCounts(second.app)], [0, 0])
})

t.test('two routes on one redis keep counts of their own', { skip: withoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const backend = await startBackend(t, hello('a'))
  const balancer = await startBalancer(t, { backends: [backend.url], prefix: '/a', rateLimit: { max: 1, timeWindow: 60_000, redis: redis.url } }, {}, async (app) => {
    await app.register(goload, { backends: [backend.url], prefix: '/b', rateLimit: { max: 1, timeWindow: 60_000, redis: redis.url } })
  })
  t.same(await statuses(t, balancer.url + '/a', 2), [200, 429])
  t.same(await statuses(t, balancer.url + '/b', 2), [200, 429])
})

t.test('redis killed mid-test: requests pass promptly with one warning; restarted, the limit holds again', { skip: withoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const backend = await startBackend(t, hello('a'))
  const logs = capturedLogs('info')
  const balancer = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 2, timeWindow: 60_000, redis: redis.url } }, { logger: logs.logger })
  t.same(await statuses(t, balancer.url, 3), [200, 200, 429])

  await redis.kill()
  t.same(await statuses(t, balancer.url, 6), [200, 200, 200, 200, 200, 200], 'no 500, no 429: the count is unknown, so requests pass')
  await waitFor(() => logs.warnings().length > 0, 'the outage warning')
  // Reconnect attempts go on in the background, each failing: still one line for the outage.
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.same(await statuses(t, balancer.url, 2), [200, 200])
  const warnings = logs.warnings()
  t.equal(warnings.length, 1, 'one warning for the outage')
  t.match(warnings[0].msg, `Redis at 127.0.0.1:${redis.port} is unreachable; rate-limited requests pass unlimited until it is back`)

  await redis.restart()
  await waitFor(() => logs.lines.some((line) => /is back; rate limits hold again/.test(line.msg)), 'the line saying redis is back', 5000)
  t.same(await statuses(t, balancer.url, 3), [200, 200, 429], 'a fresh redis: max again, then 429')
  t.equal(logs.warnings().length, 1)
  t.equal(backend.received, 2 + 8 + 2)
  await settled(balancer.app)
})

t.test('redis hanging (SIGSTOP): each request still passes within a second, one warning; resumed, the limit holds again', { skip: withoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const backend = await startBackend(t, hello('a'))
  const logs = capturedLogs('info')
  const balancer = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 60_000, redis: redis.url } }, { logger: logs.logger })
  t.same(await statuses(t, balancer.url, 2), [200, 429])
  redis.pause()
  t.same(await statuses(t, balancer.url, 4), [200, 200, 200, 200])
  await waitFor(() => logs.warnings().length > 0, 'the outage warning')
  t.same(await statuses(t, balancer.url, 2), [200, 200])
  t.equal(logs.warnings().length, 1)
  t.match(logs.warnings()[0].msg, /is unreachable; rate-limited requests pass unlimited until it is back/)
  redis.resume()
  await waitFor(() => logs.lines.some((line) => /is back; rate limits hold again/.test(line.msg)), 'the line saying redis is back', 5000)
  t.same(await statuses(t, balancer.url, 1), [429], 'the count kept in redis holds again')
})

t.test('redis not there at start: registration waits, bounded, warns once, and the limit holds once it comes', { skip: withoutRedis }, async (t) => {
  const backend = await startBackend(t, hello('a'))
  const logs = capturedLogs('info')
  const nowhere = `redis://${new URL(await deadUrl()).host}`
  const started = performance.now()
  const balancer = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 60_000, redis: nowhere } }, { logger: logs.logger })
  const waited = performance.now() - started
  t.ok(waited >= 1900 && waited < 4000, `waited about 2 s for redis, took ${Math.round(waited)} ms`)
  t.same(await statuses(t, balancer.url, 3), [200, 200, 200])
  const warnings = logs.warnings()
  t.equal(warnings.length, 1)
  t.match(warnings[0].msg, /not ready after 2000 ms; rate-limited requests pass unlimited until it connects/)
  t.equal(warnings[0].err?.code, 'ECONNREFUSED', 'the warning carries the reason')
})

t.test('the limit holds from the first request: registration waits for redis to be ready', { skip: withoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const backend = await startBackend(t, hello('a'))
  const balancer = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 60_000, redis: redis.url } })
  // Sent together at once, before any other request could have warmed a connection.
  const answers = await Promise.all([request(balancer.url), request(balancer.url), request(balancer.url)])
  t.same(answers.map((answer) => answer.status).sort(), [200, 429, 429])
  t.equal(backend.received, 1)
})
