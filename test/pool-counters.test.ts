// What metrics and the status page read, kept by the pool as plain numbers: responses by status class, failures by
// reason, upstream latencies for every strategy, requests shed by reason, the heap's next pick and state changes.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { Registry } from '../lib/registry.js'
import type { Worker } from '../lib/pool/pool.js'
import { LatencyHistogram } from '../lib/pool/latency.js'
import { failureReason } from '../lib/proxy/forward.js'
import { request } from './helpers/client.js'
import { deadUrl, settled, startBackend, startBalancer } from './helpers/servers.js'

const poolOf = (app: FastifyInstance, index = 0) => (app.goload as Registry).entries()[index].pool

t.test('responses by status class and one latency sample per answer, for least-busy too', async (t) => {
  let status = 200
  const backend = await startBackend(t, (req, res) => { res.statusCode = status; res.end('x') })
  const { app, url } = await startBalancer(t, { backends: [backend.url] })
  for (status of [200, 201, 204, 302, 404, 503, 503]) await request(url + '/')
  await settled(app)
  const [worker] = poolOf(app).workers
  t.same(worker.responses, [0, 3, 1, 1, 2], '2xx 3, 3xx 1, 4xx 1, 5xx 2')
  t.equal(worker.latencies.count, 7, 'every answer timed')
  t.equal(worker.latencies.counts.reduce((a, b) => a + b, 0), 7)
  t.ok(worker.latencies.sum > 0 && worker.latencies.sum < 7 * 10, 'the sum is in seconds')
})

t.test('failures by reason: a refused connection is "refused"; the codes map as the metrics name them', async (t) => {
  const { app, url } = await startBalancer(t, { backends: [await deadUrl()], retries: 0, passiveHealth: false })
  t.equal((await request(url + '/')).status, 502)
  await settled(app)
  t.same(poolOf(app).workers[0].failures, { refused: 1, reset: 0, timeout: 0, bad_response: 0 })
  t.equal(failureReason('FST_GOLOAD_UPSTREAM_TIMEOUT'), 'timeout')
  t.equal(failureReason('UND_ERR_CONNECT_TIMEOUT'), 'timeout')
  t.equal(failureReason('ECONNRESET'), 'reset')
  t.equal(failureReason('UND_ERR_SOCKET'), 'reset')
  t.equal(failureReason('UND_ERR_RES_CONTENT_LENGTH_MISMATCH'), 'bad_response')
})

t.test('shed by reason: no backend, and over a rate limit', async (t) => {
  const backend = await startBackend(t)
  const { app, url } = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 60_000 } })
  const pool = poolOf(app)
  t.equal((await request(url + '/')).status, 200)
  t.equal((await request(url + '/')).status, 429)
  await app.goload.remove(backend.url)
  const noBackend = await startBalancer(t, { backends: [backend.url] })
  const empty = poolOf(noBackend.app)
  await noBackend.app.goload.remove(backend.url)
  t.equal((await request(noBackend.url + '/')).status, 503)
  t.same(pool.shed, { queue_full: 0, queue_timeout: 0, no_backend: 0, rate_limited: 1, circuit_open: 0 })
  t.same(empty.shed, { queue_full: 0, queue_timeout: 0, no_backend: 1, rate_limited: 0, circuit_open: 0 })
})

t.test('next is the heap top; watch() hears drains, ejections, health, joins and leaves', async (t) => {
  const [a, b] = [await startBackend(t), await startBackend(t)]
  const { app } = await startBalancer(t, { backends: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }] })
  const pool = poolOf(app)
  const heard: string[] = []
  const stop = pool.watch((worker: Worker) => { heard.push(worker.id) })
  t.equal(pool.next?.id, 'a', 'equal loads: the first')
  const held = pool.acquire()!
  t.equal(pool.next?.id, 'b', 'a has one in flight: b is next')
  pool.release(held)
  app.goload.drain('a')
  app.goload.drain('a')
  t.equal(pool.next?.id, 'b')
  app.goload.undrain('a')
  const [workerA] = pool.workers
  t.ok(pool.eject(workerA, 60_000))
  pool.uneject(workerA)
  pool.setHealthy(workerA, false)
  pool.setHealthy(workerA, true)
  app.goload.add({ url: 'http://127.0.0.1:9', id: 'c' })
  await app.goload.remove('c')
  t.same(heard, ['a', 'a', 'a', 'a', 'a', 'a', 'c', 'c', 'c'], 'drain (once), undrain, eject, uneject, unhealthy, healthy, join, drain, leave')
  stop()
  app.goload.drain('b')
  t.equal(heard.length, 9, 'stopped')
  app.goload.drain('a')
  t.equal(pool.next, undefined, 'every backend drained: nothing next')
})

t.test('a slow start tells each step of its ramp', async (t) => {
  const backend = await startBackend(t)
  const { app } = await startBalancer(t, { backends: [backend.url], slowStart: 60_000 })
  const pool = poolOf(app)
  const weights: number[] = []
  pool.watch((worker: Worker) => { weights.push(worker.effectiveWeight) })
  app.goload.add({ url: 'http://127.0.0.1:9', id: 'c' })
  t.same(weights, [0.1, 0.1], 'its first step (a tenth of its weight), then its joining')
})

t.test('the latency histogram: buckets are upper bounds in seconds, the last one open', async (t) => {
  const histogram = new LatencyHistogram()
  for (const ms of [0.5, 1, 1.5, 30_000, 45_000]) histogram.observe(ms)
  t.equal(histogram.counts[0], 2, '0.5 and 1 ms fall in le=0.001')
  t.equal(histogram.counts[1], 1, '1.5 ms in le=0.0025')
  t.equal(histogram.counts[13], 1, '30 s in le=30')
  t.equal(histogram.counts[14], 1, '45 s above every bound')
  t.equal(histogram.count, 5)
  t.ok(Math.abs(histogram.sum - 75.003) < 1e-9, 'the sum in seconds')
})
