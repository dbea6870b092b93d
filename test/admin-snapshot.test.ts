// The admin's snapshot (lib/admin/snapshot.ts): state precedence, slow start, latency quantiles over the last minute
// from the histograms' differences, requests/s over the last second. Pools built directly, samples observed by hand.
import t from 'tap'
import { quantile, Snapshots, stateOf } from '../lib/admin/snapshot.js'
import { latencyBuckets } from '../lib/pool/latency.js'
import { Pool } from '../lib/pool/pool.js'
import type { PoolConfig } from '../lib/options.js'

const backend = (id: string, weight = 1) => ({ id, url: `http://${id}.test:80`, weight, maxPending: Infinity })
const poolOf = (ids: string[], slowStart = 0) => new Pool({ strategy: 'least-busy', slowStart, maxEjectedPercent: 100, queue: { max: 0, timeout: 1000 }, ewmaDecay: 10_000 }, ids.map((id) => backend(id)))
const entry = (name: string, pool: Pool) => ({ name, pool, config: {} as PoolConfig })

t.test('quantile: linear within the bucket the rank falls in, as histogram_quantile; the last bound past all; null empty', async (t) => {
  const counts = new Float64Array(latencyBuckets.length + 1)
  t.equal(quantile(counts, 0.5), null)
  counts[0] = 10 // (0, 1 ms]
  t.equal(quantile(counts, 0.5), 0.5)
  t.equal(quantile(counts, 1), 1)
  counts[3] = 10 // (5, 10 ms]
  t.equal(quantile(counts, 0.5), 1, 'rank 10 is the top of the first bucket')
  t.equal(quantile(counts, 0.75), 7.5)
  t.equal(quantile(counts, 0.99), 9.9)
  counts.fill(0)
  counts[latencyBuckets.length] = 3 // above 30 s
  t.equal(quantile(counts, 0.5), 30_000)
})

t.test('state: draining > unhealthy > ejected > slow-start > up', async (t) => {
  const pool = poolOf(['a'])
  const [worker] = pool.workers
  t.equal(stateOf(worker), 'up')
  worker.effectiveWeight = 0.5
  t.equal(stateOf(worker), 'slow-start')
  worker.ejectedUntil = Date.now() + 1000
  t.equal(stateOf(worker), 'ejected')
  worker.healthy = false
  t.equal(stateOf(worker), 'unhealthy')
  worker.draining = true
  t.equal(stateOf(worker), 'draining')
})

t.test('slowStart is the percent of weight reached while ramping, null otherwise', async (t) => {
  const pool = poolOf(['a'], 60_000)
  t.teardown(() => { pool.close() })
  pool.add(backend('b', 4))
  const snapshots = new Snapshots(() => [entry('p', pool)])
  const [a, b] = snapshots.snapshot().pools[0].backends
  t.match(a, { id: 'a', state: 'up', slowStart: null })
  t.match(b, { id: 'b', state: 'slow-start', slowStart: 10, weight: 4 })
})

t.test('latency over the last minute: samples older than 120 ticks fall out; a backend that joined later starts from zero', async (t) => {
  const pool = poolOf(['a'])
  const [a] = pool.workers
  // Samples from before the admin started are not of the last minute.
  for (let i = 0; i < 100; i++) pool.observe(a, 20_000)
  const snapshots = new Snapshots(() => [entry('p', pool)])
  const backendOf = (id: string) => snapshots.snapshot().pools[0].backends.find((backend) => backend.id === id)!
  t.same(backendOf('a').latency, { p50: null, p99: null })
  for (let i = 0; i < 10; i++) pool.observe(a, 3)
  t.same(backendOf('a').latency, { p50: 3.75, p99: 4.975 }, '(2.5, 5 ms]')
  const b = pool.add(backend('b'))
  snapshots.tick()
  // b joined after the first tick: what it had before its first tick counts.
  pool.observe(b, 0.5)
  snapshots.tick()
  t.same(backendOf('b').latency, { p50: 0.5, p99: 0.99 })
  t.equal(snapshots.snapshot().pools[0].p99, 4.972, 'the pool\'s p99 is of all its backends\' samples')
  for (let i = 0; i < 117; i++) snapshots.tick()
  t.not(backendOf('a').latency.p50, null, 'still within the minute')
  snapshots.tick()
  t.same(backendOf('a').latency, { p50: null, p99: null }, 'a minute of ticks later, the samples are out of the window')
  t.same(backendOf('b').latency, { p50: 0.5, p99: 0.99 }, 'b\'s sample came a tick later')
  snapshots.tick()
  t.same(backendOf('b').latency, { p50: null, p99: null })
  pool.observe(a, 40)
  t.same(backendOf('a').latency, { p50: 37.5, p99: 49.75 }, '(25, 50 ms]')
})

t.test('requests and rate: answered plus failed, and per second since the tick about a second ago', async (t) => {
  const pool = poolOf(['a', 'b'])
  const [a, b] = pool.workers
  a.served = 30
  b.failed = 10
  const before = Date.now()
  const snapshots = new Snapshots(() => [entry('p', pool)])
  const constructed = Date.now()
  let [snapshot] = snapshots.snapshot().pools
  t.equal(snapshot.requests, 40)
  t.equal(snapshot.rate, 0, 'the 40 came before the first tick: none within the last second')
  // Time for a rate to be measured over.
  await new Promise((resolve) => setTimeout(resolve, 200))
  snapshots.tick()
  a.served += 50
  const asked = Date.now()
  ;[snapshot] = snapshots.snapshot().pools
  const answered = Date.now()
  t.equal(snapshot.requests, 90)
  // The tick a second ago is the first (there are two): 50 requests since it, over the time since it.
  const slowest = Math.floor(50 / ((answered - before) / 1000) * 10) / 10
  const fastest = Math.ceil(50 / ((asked - constructed) / 1000) * 10) / 10
  t.ok(snapshot.rate >= slowest && snapshot.rate <= fastest, `rate ${snapshot.rate}, between ${slowest} and ${fastest}`)
  t.match(snapshot, { name: 'p', strategy: 'least-busy', queued: 0, next: 'a', shed: { queue_full: 0 } })
  // Two ticks later without a request, the window has moved past them all.
  snapshots.tick()
  snapshots.tick()
  ;[snapshot] = snapshots.snapshot().pools
  t.equal(snapshot.rate, 0)
  t.equal(snapshot.requests, 90)
})

t.test('no tick yet within the same millisecond: rate 0; a pool with no backend able to take a request has next null', async (t) => {
  const pool = poolOf(['a'])
  pool.setDraining(pool.workers[0], true)
  const snapshots = new Snapshots(() => [entry('p', pool)])
  const [snapshot] = snapshots.snapshot().pools
  t.equal(snapshot.next, null)
  t.ok(snapshot.rate === 0)
})
