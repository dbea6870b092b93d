import type { Worker } from '../pool.js'
import { byLoad, leastBusy } from './least-busy.js'
import type { Selector, SelectorContext } from './selector.js'

// Points on the ring per unit of weight, as nginx's `hash ... consistent` (ketama) has: each of 5 equal backends
// then owns 16% to 25% of the ring (17% to 23% in nine rings of ten); the bound evens out the load that follows.
const pointsPerWeight = 160
// Past this many points in all (weights adding up to over 6,500), every backend's count is scaled down together.
const maxPoints = 1 << 20

/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup and Zadimoghaddam 2017; HAProxy `hash-balance-factor`,
 * Envoy `hash_balance_factor`). Each backend owns points on a ring of 32-bit hashes, in proportion to its weight; a
 * key goes to the owner of the first point at or after its hash, unless that backend already holds its share of the
 * requests in flight, or cannot take one now (out of rotation, full, already tried by this request): then it walks
 * on round the ring to the next one that can. The heap stays least-busy's: requests without a key take its top.
 * The ring holds every worker and changes only when one joins or leaves; health, drains and slow starts are read
 * from the workers as the walk passes them.
 */
export class HashRing implements Selector {
  readonly compare = byLoad
  readonly load = leastBusy.load
  readonly #pool: SelectorContext
  readonly #balanceFactor: number
  /** The points' hashes in ascending order, and the worker owning each. */
  #points = new Uint32Array(0)
  #owners: Worker[] = []

  constructor (pool: SelectorContext, balanceFactor: number) {
    this.#pool = pool
    this.#balanceFactor = balanceFactor
  }

  start (): void {
    this.#build()
  }

  workersChanged (): void {
    this.#build()
  }

  /**
   * The worker for a key's hash: the first on the ring from it that can take a request and holds fewer than
   * ceil(balanceFactor × (requests in flight + 1) × its weight / the weight in rotation), as HAProxy counts it (the
   * + 1 is the request being placed: without it a lone key would move between idle backends). Undefined when none
   * can: the caller takes the least busy.
   */
  pick (key: number): Worker | undefined {
    const points = this.#points
    const count = points.length
    let low = 0
    let high = count
    while (low < high) {
      const middle = (low + high) >>> 1
      if (points[middle] < key) low = middle + 1
      else high = middle
    }
    const share = this.#balanceFactor * (this.#pool.pending() + 1)
    const weight = this.#pool.weight()
    for (let i = 0; i < count; i++) {
      const worker = this.#owners[(low + i) % count]
      // In the heap: in rotation, with room, and not excluded by a retry.
      if (worker.heapIndex >= 0 && worker.pending < Math.ceil(share * worker.effectiveWeight / weight)) return worker
    }
    return undefined
  }

  /**
   * Each worker's points are the hashes of its id and a number, so every balancer with the same backends builds
   * the same ring, and adding or removing one backend moves only the keys of its own points (about 1/n of them).
   */
  #build (): void {
    const { workers } = this.#pool
    let total = 0
    for (const worker of workers) total += worker.weight
    const scale = Math.min(pointsPerWeight, maxPoints / total)
    const points: Array<{ hash: number, worker: Worker }> = []
    for (const worker of workers) {
      const count = Math.max(1, Math.round(worker.weight * scale))
      for (let i = 0; i < count; i++) points.push({ hash: hash32(`${worker.id}#${i}`), worker })
    }
    // Equal hashes (rare) fall to the id, so the order does not depend on the order workers joined in.
    points.sort((a, b) => (a.hash - b.hash) || (a.worker.id < b.worker.id ? -1 : 1))
    this.#points = Uint32Array.from(points, (point) => point.hash)
    this.#owners = points.map((point) => point.worker)
  }
}

/**
 * MurmurHash3 (x86, 32-bit, seed 0) of the string's UTF-16LE bytes, read as UTF-16 code units, two to a block, so
 * no encoding is made. About 150 ns for a 36-character key, against some 800 ns for the murmurhash package (which
 * encodes to UTF-8 first) and 1 µs for node:crypto's md5. FNV-1a, shorter still, collided far more often than chance
 * on backend ids that differ in a few digits ("http://10.0.154.1:3000#155", "http://10.1.148.1:3000#50"), so their
 * points bunched together on the ring.
 */
export function hash32 (text: string): number {
  const length = text.length
  let hash = 0
  let i = 0
  for (; i + 1 < length; i += 2) hash = mixBlock(hash, text.charCodeAt(i) | (text.charCodeAt(i + 1) << 16))
  if (i < length) hash ^= scramble(text.charCodeAt(i))
  hash ^= length * 2
  hash ^= hash >>> 16
  hash = Math.imul(hash, 0x85ebca6b)
  hash ^= hash >>> 13
  hash = Math.imul(hash, 0xc2b2ae35)
  hash ^= hash >>> 16
  return hash >>> 0
}

function scramble (block: number): number {
  block = Math.imul(block, 0xcc9e2d51)
  block = (block << 15) | (block >>> 17)
  return Math.imul(block, 0x1b873593)
}

function mixBlock (hash: number, block: number): number {
  hash ^= scramble(block)
  hash = (hash << 13) | (hash >>> 19)
  return (Math.imul(hash, 5) + 0xe6546b64) | 0
}
