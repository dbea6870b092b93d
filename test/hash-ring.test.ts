// strategy: 'hash' on the pool itself: which worker each key gets, the bound on a hot key, and how few keys move
// when a backend joins or leaves. The keys are hashed as the proxy hashes them (hash32 of the header or cookie value).
import t from 'tap'
import { Pool, type PoolSettings, type Worker } from '../lib/pool/pool.js'
import { hash32 } from '../lib/pool/strategies/hash.js'

const backend = (i: number, weight = 1) => ({ id: `b${i}`, url: `http://127.0.0.1:${10000 + i}`, weight, maxPending: Infinity })
const backends = (n: number, weight = (_i: number) => 1) => Array.from({ length: n }, (_, i) => backend(i, weight(i)))
const settings = (balanceFactor?: number): PoolSettings =>
  ({ strategy: 'hash', slowStart: 0, maxEjectedPercent: 50, queue: { max: 10, timeout: 1000 }, ewmaDecay: 10_000, balanceFactor })
const keys = (n: number) => Array.from({ length: n }, (_, i) => hash32(`session-${i}`))

/** Where each key goes on an idle pool: acquired and released at once, so no load moves it. */
function owners (pool: Pool, hashes: number[]): string[] {
  return hashes.map((key) => {
    const worker = pool.acquire(undefined, key)!
    pool.release(worker)
    return worker.id
  })
}

/** The order a key walks the ring in: its owner, then each next one as the ones before it are excluded. */
function walk (pool: Pool, key: number): Worker[] {
  const order: Worker[] = []
  while (order.length < pool.workers.length) {
    const worker = pool.acquire(order, key)!
    pool.release(worker)
    order.push(worker)
  }
  return order
}

t.test('hash32 is MurmurHash3 x86_32 of the UTF-16LE bytes', async (t) => {
  // Reference values: the murmurhash package's v3 of Buffer.from(text, 'utf16le').
  const vectors: Array<[string, number]> = [
    ['', 0], ['a', 1867108634], ['ab', 374890698], ['abc', 1118836419], ['user-42', 2703341929],
    ['http://10.0.0.1:3000#159', 2162011882], ['é✓ 🙂', 282628548]
  ]
  for (const [text, hash] of vectors) t.equal(hash32(text), hash, JSON.stringify(text))
})

t.test('a key keeps its backend on an idle pool, and the keys spread evenly', async (t) => {
  const pool = new Pool(settings(), backends(5))
  const hashes = keys(1000)
  const first = owners(pool, hashes)
  t.same(owners(pool, hashes), first, 'the same 1,000 keys go to the same backends again')
  t.same(owners(new Pool(settings(), backends(5).reverse()), hashes), first, 'a pool with the backends in another order builds the same ring')
  const shares = pool.workers.map((worker) => first.filter((id) => id === worker.id).length)
  for (const share of shares) t.ok(share >= 130 && share <= 270, `each backend holds about a fifth of the keys (${shares.join(', ')})`)
  t.same(pool.stats().backends.map((b) => b.pending), [0, 0, 0, 0, 0])
})

t.test('two backends with a point at the same hash: the ring is the same whatever their order', async (t) => {
  // b325 and b486 each have a point at 2549756299 (found by search): the lower id owns it.
  const pair = [{ ...backend(0), id: 'b325' }, { ...backend(1), id: 'b486' }]
  for (const order of [pair, [...pair].reverse()]) {
    const pool = new Pool(settings(), order)
    t.equal(pool.acquire(undefined, 2549756299)?.id, 'b325', order.map((b) => b.id).join(', '))
  }
})

t.test('a hot key: the backend stays within ceil(balanceFactor × (total + 1) × weight / total weight), and overflow walks the ring', async (t) => {
  for (const balanceFactor of [1, 1.25, 2]) {
    const pool = new Pool(settings(balanceFactor), backends(5))
    const key = hash32('hot')
    const order = walk(pool, key)
    let total = 0
    for (let i = 0; i < 200; i++) {
      // The reference: the first in the key's walk order still under its bound.
      const cap = Math.ceil(balanceFactor * (total + 1) / 5)
      const expected = order.find((worker) => worker.pending < cap)!
      const worker = pool.acquire(undefined, key)!
      if (worker !== expected) {
        t.fail(`request ${i}: went to ${worker.id}, expected ${expected.id} (pending ${order.map((w) => w.pending).join(', ')})`)
        break
      }
      total++
      const over = pool.workers.find((w) => w.pending > Math.ceil(balanceFactor * total / 5))
      if (over !== undefined) {
        t.fail(`request ${i}: ${over.id} holds ${over.pending} of ${total}`)
        break
      }
    }
    const [owner] = order
    t.equal(owner.pending, Math.ceil(balanceFactor * 200 / 5), `balanceFactor ${balanceFactor}: the key's own backend is full to its bound`)
    const cap = Math.ceil(balanceFactor * 200 / 5)
    const used = pool.workers.filter((worker) => worker.pending > 0).length
    t.equal(used, Math.ceil(200 / cap), `balanceFactor ${balanceFactor}: the overflow filled the next backends on the ring, each to its bound`)
  }
})

t.test('bounds follow the weights, and slow start', async (t) => {
  const pool = new Pool(settings(1.25), backends(3, (i) => [1, 1, 3][i]))
  const key = hash32('hot')
  for (let i = 0; i < 99; i++) pool.acquire(undefined, key)
  const [a, b, c] = pool.workers
  t.ok(c.pending <= Math.ceil(1.25 * 99 * 3 / 5), `the weight-3 backend stays within its bound (${c.pending})`)
  t.ok(a.pending <= Math.ceil(1.25 * 99 / 5) && b.pending <= Math.ceil(1.25 * 99 / 5), `the weight-1 ones within theirs (${a.pending}, ${b.pending})`)
  t.ok(c.pending > a.pending && c.pending > b.pending, `the weight-3 backend takes the most (${a.pending}, ${b.pending}, ${c.pending})`)

  // Keys spread by weight too: a weight-3 backend has three times the points.
  const idle = new Pool(settings(), backends(3, (i) => [1, 1, 3][i]))
  const shares = idle.workers.map((worker) => owners(idle, keys(2000)).filter((id) => id === worker.id).length)
  t.ok(shares[2] > 1000 && shares[2] < 1400, `the weight-3 backend holds about 3/5 of the keys (${shares.join(', ')})`)

  // In slow start a backend's bound is that of its effective weight: a tenth of its weight at first.
  const ramping = new Pool({ ...settings(1.25), slowStart: 60_000 }, backends(4))
  const newcomer = ramping.add(backend(4))
  t.equal(newcomer.effectiveWeight, 0.1)
  const own = keys(4000).find((k) => walk(ramping, k)[0] === newcomer)!
  t.equal(ramping.acquire(undefined, own), newcomer, 'idle, its keys reach it')
  t.not(ramping.acquire(undefined, own), newcomer, 'with one request it holds its bound, ceil(1.25 × 2 × 0.1 / 4.1) = 1: the next walks on')
  ramping.close()
})

t.test('retries, drains, health and full backends make the key walk on; the ring keeps them', async (t) => {
  const pool = new Pool(settings(), backends(5))
  const key = hash32('user-42')
  const [owner, next, third] = walk(pool, key)
  t.not(owner, next)
  t.equal(pool.acquire([owner], key), next, 'a retry goes to the next backend on the ring')
  pool.release(next)
  pool.setDraining(owner, true)
  t.equal(pool.acquire(undefined, key), next, 'its backend drained: the next one')
  pool.release(next)
  pool.setHealthy(next, false)
  t.equal(pool.acquire(undefined, key), third, 'that one unhealthy too: the one after')
  pool.release(third)
  pool.setDraining(owner, false)
  t.equal(pool.acquire(undefined, key), owner, 'undrained: back to its own backend')
  pool.release(owner)

  // A backend with no room (maxPending) is passed too.
  const full = new Pool(settings(), backends(3).map((b) => ({ ...b, maxPending: 1 })))
  const [first, second] = walk(full, key)
  t.equal(full.acquire(undefined, key), first)
  t.equal(full.acquire(undefined, key), second, 'its backend full: the next one')
})

t.test('requests without a key go to the least busy, as do keys no backend under its bound can take', async (t) => {
  const pool = new Pool(settings(), backends(4))
  const key = hash32('hot')
  const [owner] = walk(pool, key)
  for (let i = 0; i < 5; i++) pool.acquire(undefined, key)
  const least = pool.workers.reduce((best, worker) => worker.pending < best.pending ? worker : best)
  t.equal(pool.acquire(), least, 'no key: the top of the heap, the least busy')
  t.not(owner, least)

  // The only backend with room is over its bound: it takes the request all the same.
  const tight = new Pool(settings(1), [{ ...backend(0), maxPending: 1 }, backend(1)])
  const [limited, open] = tight.workers
  for (let i = 0; i < 3; i++) tight.acquire(undefined, key)
  t.same([limited.pending, open.pending], [1, 2], 'one on each, then the one with room up to its bound, ceil(1 × 3 / 2) = 2')
  t.equal(tight.acquire(undefined, key), open, 'over its bound, but the only one with room')

  // Other strategies ignore a key.
  const leastBusy = new Pool({ ...settings(), strategy: 'least-busy' }, backends(2))
  const a = leastBusy.acquire(undefined, key)!
  t.not(leastBusy.acquire(undefined, key), a, 'least-busy alternates whatever the key')
})

t.test('removing one of 5 backends moves only its keys, about a fifth; adding one moves about a sixth, all to it', async (t) => {
  const hashes = keys(1000)
  const pool = new Pool(settings(), backends(5))
  const before = owners(pool, hashes)
  const removed = pool.workers[2]
  await pool.remove(removed)
  t.equal(pool.workers.length, 4)
  const after = owners(pool, hashes)
  const moved = hashes.filter((_, i) => after[i] !== before[i]).length
  t.ok(moved >= 100 && moved <= 350, `${moved} of 1,000 keys moved`)
  t.ok(hashes.every((_, i) => before[i] === removed.id ? after[i] !== removed.id : after[i] === before[i]), 'exactly the removed backend\'s keys moved')

  const added = pool.add(backend(2))
  t.same(owners(pool, hashes), before, 'the same backend back: every key back where it was')
  await pool.remove(added)
  pool.add(backend(5))
  const grown = owners(pool, hashes)
  const movedToNew = hashes.filter((_, i) => grown[i] !== after[i])
  t.ok(movedToNew.length >= 100 && movedToNew.length <= 350, `${movedToNew.length} of 1,000 keys moved to the fifth backend`)
  t.ok(hashes.every((_, i) => grown[i] === after[i] || grown[i] === 'b5'), 'every key that moved went to the new backend')
})

t.test('a pool built empty (DNS discovery) takes keys once backends join', async (t) => {
  const pool = new Pool(settings(), [])
  t.equal(pool.acquire(undefined, hash32('k')), undefined)
  pool.add(backend(0))
  t.equal(pool.acquire(undefined, hash32('k'))?.id, 'b0')
})
