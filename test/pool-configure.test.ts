// Pool.configure: a reload changes a kept backend's weight or maxPending in place, its counts kept and the heap (and
// the hash ring) re-sorted at once.
import t from 'tap'
import type { Strategy } from '../lib/options.js'
import { Pool } from '../lib/pool/pool.js'

const backends = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `b${i}`, url: `http://127.0.0.1:${10000 + i}`, weight: 1, maxPending: Infinity }))
const settings = (strategy: Strategy, slowStart = 0) => ({ strategy, slowStart, maxEjectedPercent: 50, queue: { max: 10, timeout: 1000 }, ewmaDecay: 10_000 })

t.test('a weight raised takes the heap\'s top at once; pending counts are kept', async (t) => {
  const pool = new Pool(settings('least-busy'), backends(2))
  const [a, b] = pool.workers
  t.equal(pool.acquire(), a)
  t.equal(pool.acquire(), b)
  pool.configure(b, { weight: 4, maxPending: Infinity })
  t.same([b.weight, b.effectiveWeight, b.pending], [4, 4, 1])
  // 1/4 against 1/1: b, then b again (2/4), b (3/4), then a tie at 1 falls to the turn.
  t.same([pool.acquire(), pool.acquire(), pool.acquire()], [b, b, b])
})

t.test('a maxPending lowered to what the backend holds takes it out of the heap; raised, it serves the queue', async (t) => {
  const pool = new Pool(settings('least-busy'), backends(1))
  const [a] = pool.workers
  pool.acquire()
  pool.acquire()
  pool.configure(a, { weight: 1, maxPending: 2 })
  t.equal(pool.acquire(), undefined, 'full at 2')
  let served = 0
  pool.queue.enqueue({ ready: () => { served++ }, expired: () => {} })
  pool.configure(a, { weight: 1, maxPending: 3 })
  t.equal(served, 1, 'the waiting request took the room made')
  t.equal(a.pending, 3)
})

t.test('hash: the ring is rebuilt with the new weight; a slow start under way reaches the new weight by its steps', async (t) => {
  const hash = new Pool({ ...settings('hash'), balanceFactor: 100 }, backends(2))
  const [a, b] = hash.workers
  const owners = () => Array.from({ length: 400 }, (_, key) => { const worker = hash.acquire(undefined, key * 10_000_019 >>> 0)!; hash.release(worker); return worker })
  const before = owners().filter((worker) => worker === b).length
  hash.configure(b, { weight: 9, maxPending: Infinity })
  const after = owners().filter((worker) => worker === b).length
  t.ok(after > before + 100, `b owns more of the keys: ${before} of 400, then ${after}`)
  t.equal(a.weight, 1, 'a keeps its own')

  const ramping = new Pool(settings('least-busy', 10_000), [])
  const joined = ramping.add({ id: 'c', url: 'http://127.0.0.1:1', weight: 2, maxPending: Infinity })
  t.equal(joined.effectiveWeight, 0.2, 'the first of ten steps')
  ramping.configure(joined, { weight: 5, maxPending: Infinity })
  t.same([joined.weight, joined.effectiveWeight], [5, 0.2], 'the ramp goes on, towards the new weight')
  ramping.close()
})
