import t from 'tap'
import type { Strategy } from '../lib/options.js'
import { Pool, type Worker } from '../lib/pool/pool.js'
import { waitFor } from './helpers/servers.js'

const backends = (n: number, weight = (_i: number) => 1) =>
  Array.from({ length: n }, (_, i) => ({ id: `b${i}`, url: `http://127.0.0.1:${10000 + i}`, weight: weight(i), maxPending: Infinity }))
const settings = (strategy: Strategy) => ({ strategy, slowStart: 0, maxEjectedPercent: 50, queue: { max: 10, timeout: 1000 }, ewmaDecay: 10_000 })

// What the heap must agree with: the lowest pending / weight, ties to the lowest turn, then the first listed.
function linearChoice (workers: Worker[]): Worker {
  let best = workers[0]
  for (const w of workers) {
    if (w.load < best.load || (w.load === best.load && (w.turn < best.turn || (w.turn === best.turn && w.ordinal < best.ordinal)))) best = w
  }
  return best
}

/**
 * peak-ewma, three backends: two answering in 2 ms, one in `slowMs`; the slow one is sampled before and after the
 * 64th sample (when the pool first takes its median, 2 ms), so it is classified against that median.
 */
function oneSlowOfThree (pool: Pool, slowMs: number): Worker[] {
  const [fast1, fast2, slow] = pool.workers
  pool.observe(slow, slowMs)
  for (let i = 0; i < 63; i++) pool.observe(i % 2 === 0 ? fast1 : fast2, 2)
  pool.observe(slow, slowMs)
  return [fast1, fast2, slow]
}

t.test('acquire takes the least busy worker and release gives it back, whatever the order of events', async (t) => {
  const pool = new Pool(settings('least-busy'), backends(37, (i) => 1 + (i % 3)))
  const inFlight: Worker[] = []
  let seed = 42
  const random = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
  let mismatches = 0
  for (let step = 0; step < 20_000; step++) {
    if (inFlight.length === 0 || random() < 0.55) {
      const expected = linearChoice(pool.workers)
      const worker = pool.acquire()!
      if (worker !== expected) mismatches++
      inFlight.push(worker)
    } else {
      const [worker] = inFlight.splice(Math.floor(random() * inFlight.length), 1)
      pool.release(worker)
    }
  }
  t.equal(mismatches, 0, 'every choice equals a linear scan for the least busy')
  for (const worker of inFlight.splice(0)) pool.release(worker)
  t.same(pool.stats().backends.map((b) => b.pending), new Array(37).fill(0), 'all pending back to 0')
})

t.test('equally idle workers take turns', async (t) => {
  const pool = new Pool(settings('least-busy'), backends(3))
  const order: string[] = []
  for (let i = 0; i < 9; i++) {
    const worker = pool.acquire()!
    order.push(worker.id)
    pool.release(worker)
  }
  t.same(order, ['b0', 'b1', 'b2', 'b0', 'b1', 'b2', 'b0', 'b1', 'b2'])
})

t.test('least-busy orders by pending / weight', async (t) => {
  const pool = new Pool(settings('least-busy'), backends(2, (i) => (i === 0 ? 3 : 1)))
  const counts: Record<string, number> = { b0: 0, b1: 0 }
  // Nothing is released: after 8 requests the weight-3 backend holds 6 and the other 2.
  for (let i = 0; i < 8; i++) counts[pool.acquire()!.id]++
  t.same(counts, { b0: 6, b1: 2 })
})

t.test('round-robin ignores load and follows weights', async (t) => {
  const pool = new Pool(settings('round-robin'), backends(3, (i) => (i === 0 ? 2 : 1)))
  const counts: Record<string, number> = { b0: 0, b1: 0, b2: 0 }
  for (let i = 0; i < 400; i++) counts[pool.acquire()!.id]++
  t.same(counts, { b0: 200, b1: 100, b2: 100 })
})

t.test('a worker passed over for a long time does not take a burst when it frees up', async (t) => {
  const pool = new Pool(settings('least-busy'), backends(3))
  const slow = pool.acquire()! // b0 stays busy while the others serve 1,000 requests
  for (let i = 0; i < 1000; i++) pool.release(pool.acquire()!)
  pool.release(slow)
  const next = [pool.acquire()!, pool.acquire()!, pool.acquire()!].map((w) => w.id)
  t.same(next.sort(), ['b0', 'b1', 'b2'], 'all three idle backends share the next three requests')
})

t.test('p2c draws two workers that can take a request and takes the less busy', async (t) => {
  const pool = new Pool(settings('p2c'), backends(2))
  // With two workers both are always drawn, so each request goes to the less busy: they stay level.
  for (let i = 0; i < 6; i++) {
    pool.acquire()
    const [a, b] = pool.workers.map((w) => w.pending)
    t.ok(Math.abs(a - b) <= 1, `level after ${i + 1} requests: ${a} and ${b}`)
  }
})

t.test('p2c spreads load over a large pool without a scan', async (t) => {
  const pool = new Pool(settings('p2c'), backends(100))
  for (let i = 0; i < 1000; i++) pool.acquire()
  const pending = pool.stats().backends.map((b) => b.pending)
  t.ok(Math.max(...pending) <= 20, `no worker took far more than its share of 10 (max ${Math.max(...pending)})`)
  t.equal(pending.reduce((a, b) => a + b, 0), 1000)
})

t.test('peak-ewma prefers the backend with the lower latency, weighted by pending + 1', async (t) => {
  const pool = new Pool(settings('peak-ewma'), backends(2))
  t.teardown(() => pool.close())
  const [fast, slow] = pool.workers
  pool.observe(fast, 2)
  pool.observe(slow, 30)
  const picks: string[] = []
  for (let i = 0; i < 10; i++) picks.push(pool.acquire()!.id)
  // (pending + 1) × 2 stays below 1 × 30 until the fast one holds 14 requests.
  t.same(picks, new Array(10).fill('b0'))
  t.ok(slow.latency === 30 && fast.latency === 2, 'a sample above the average is taken at once (the peak)')
  pool.observe(slow, 1)
  t.ok(slow.latency < 30 && slow.latency > 1, 'a lower sample pulls the average down gradually')
})

t.test('peak-ewma starts a backend added later at the median latency', async (t) => {
  const pool = new Pool(settings('peak-ewma'), backends(3))
  t.teardown(() => pool.close())
  pool.observe(pool.workers[0], 2)
  pool.observe(pool.workers[1], 5)
  pool.observe(pool.workers[2], 40)
  const added = pool.add({ id: 'new', url: 'http://127.0.0.1:9', weight: 1, maxPending: Infinity })
  t.equal(added.latency, 5)
})

t.test('peak-ewma explores a backend far slower than the median one request at a time, resting after each answer', async (t) => {
  // ewmaDecay 1 s: an outlier rests 1/20 of it, 50 ms, after each answer.
  const pool = new Pool({ ...settings('peak-ewma'), ewmaDecay: 1000 }, backends(3))
  t.teardown(() => pool.close())
  // The median latency is 2 ms; the slow one is 20 times that.
  const [fast1, fast2, slow] = oneSlowOfThree(pool, 40)
  t.ok(slow.outlier, 'over 4x the median: an outlier')
  t.notOk(fast1.outlier || fast2.outlier)
  t.ok(slow.resting, 'it just answered: it rests')
  const inFlight: Worker[] = []
  for (let i = 0; i < 100; i++) inFlight.push(pool.acquire()!)
  t.equal(slow.pending, 0, 'while it rests, every request goes to the fast ones')
  await waitFor(() => !slow.resting, 'the end of the rest')
  // 100 more, none released: by (pending + 1) x latency alone the slow one would take several.
  for (let i = 0; i < 100; i++) inFlight.push(pool.acquire()!)
  t.equal(slow.pending, 1, 'rested, it takes one request, and no second while that one is in flight')
  t.equal(fast1.pending + fast2.pending, 199)
})

t.test('peak-ewma: an outlier still takes a request when no other backend can', async (t) => {
  const pool = new Pool(settings('peak-ewma'), backends(2).map((b, i) => ({ ...b, maxPending: i === 0 ? 1 : Infinity })))
  t.teardown(() => pool.close())
  const [fast, slow] = pool.workers
  for (let i = 0; i < 64; i++) pool.observe(fast, 2)
  pool.observe(slow, 40)
  t.ok(slow.outlier && slow.resting)
  t.equal(pool.acquire(), fast)
  t.equal(pool.acquire(), slow, 'the fast one is full: the resting outlier goes last, not out')
})

t.test('peak-ewma: one stalled sample makes no outlier of a fast backend, nor hides the slow one', async (t) => {
  const pool = new Pool(settings('peak-ewma'), backends(3))
  t.teardown(() => pool.close())
  const [fast1, fast2, slow] = oneSlowOfThree(pool, 30)
  t.ok(slow.outlier, 'the median is known (2 ms): the 30 ms one is an outlier')
  // An event-loop stall: fast1's next answer is seen 15 ms late. Its peak-EWMA jumps (the peak)...
  pool.observe(fast1, 15)
  t.equal(fast1.latency, 15)
  // ...but its typical latency barely moves, so it stays in full use; the next median (after 64 more samples)
  // is still a fast backend's, so the slow one stays an outlier.
  t.notOk(fast1.outlier, 'the stalled backend is no outlier')
  for (let i = 0; i < 64; i++) pool.observe(i % 2 === 0 ? fast1 : fast2, i === 0 ? 15 : 2)
  pool.observe(slow, 30)
  t.ok(slow.outlier, 'the slow one still is')
})

t.test('peak-ewma: an outlier that speeds up is back in full use within a few answers', async (t) => {
  const pool = new Pool(settings('peak-ewma'), backends(3))
  t.teardown(() => pool.close())
  const [, , slow] = oneSlowOfThree(pool, 40)
  t.ok(slow.outlier)
  let answers = 0
  while (slow.outlier && answers < 100) {
    pool.observe(slow, 2)
    answers++
  }
  t.ok(answers <= 8, `no longer an outlier after ${answers} fast answers`)
})

t.test('peak-ewma: backends not measured yet do not count in the median', async (t) => {
  // 100 backends, 10 of them measured at 2 ms: the median is theirs, not a never-sampled backend's.
  const pool = new Pool(settings('peak-ewma'), backends(100))
  t.teardown(() => pool.close())
  for (let i = 0; i < 64; i++) pool.observe(pool.workers[i % 10], 2)
  t.notOk(pool.workers.some((worker) => worker.outlier), 'no measured backend is an outlier')
})

t.test('a latency spike on a busy backend is forgotten within a few dozen samples', async (t) => {
  const pool = new Pool(settings('peak-ewma'), backends(1))
  t.teardown(() => pool.close())
  const [worker] = pool.workers
  pool.observe(worker, 2)
  pool.observe(worker, 15)
  t.equal(worker.latency, 15, 'the peak is taken at once')
  for (let i = 0; i < 64; i++) pool.observe(worker, 2)
  t.ok(worker.latency < 4, `back near 2 ms after 64 samples (${worker.latency.toFixed(2)} ms), however close together`)
})
