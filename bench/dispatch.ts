// `npm run bench:dispatch`: acquire + release pairs per second on lib/pool/pool.ts's Pool (least-busy heap) at 3, 100,
// 1,000 and 10,000 backends, beside the linear scan a user would write by hand, and strategy: 'hash' (each step
// hashes a session key of 64 thousand, as the proxy does, and walks the ring). A window of requests stays in
// flight, and each step ends a random one of them and starts a new one, as responses finish out of order, so the
// heap really moves. No sockets: this is the dispatcher alone.
// Env: SECONDS per cell (default 1), WINDOW requests in flight (default 64), SIZES (default 3,100,1000,10000).
import type { Strategy } from '../lib/options.js'
import { Pool, type Worker } from '../lib/pool/pool.js'
import { hash32 } from '../lib/pool/strategies/hash.js'
import { codeVersion } from './harness.js'

function positive (name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback)
  if (!(value > 0 && Number.isFinite(value))) throw new Error(`${name} must be a positive number, got ${process.env[name]}`)
  return value
}

const seconds = positive('SECONDS', 1)
const window = Math.round(positive('WINDOW', 64))
const sizes = (process.env.SIZES ?? '3,100,1000,10000').split(',').map(Number)
// Each cell is timed in this many slices; the median slice is reported, so one GC pause or noisy neighbour moment
// does not decide the figure.
const slices = 5
const batch = 4096

// Precomputed slot indices: the random choice costs the same array read for both contenders.
const randomSlots = new Uint32Array(1 << 16)
let seed = 0x9e3779b9
for (let i = 0; i < randomSlots.length; i++) {
  seed ^= seed << 13
  seed ^= seed >>> 17
  seed ^= seed << 5
  randomSlots[i] = (seed >>> 0) % window
}

interface Contender {
  /** Runs `count` steps: release one request of the window, acquire a new one in its slot. */
  run (count: number): void
  /** Something derived from the state, so the work cannot be optimised away. */
  checksum (): number
}

// Session keys for the hash contender: 36-character strings, as a session cookie might be.
const sessionKeys = Array.from({ length: 1 << 16 }, (_, i) => `session-${i.toString(16).padStart(8, '0')}-0123456789abcdef00`)

function heapContender (backends: number, strategy: Strategy = 'least-busy'): Contender {
  const keyed = strategy === 'hash'
  const pool = new Pool(
    { strategy, slowStart: 0, maxEjectedPercent: 0, queue: { max: 1000, timeout: 5000 }, ewmaDecay: 10_000 },
    Array.from({ length: backends }, (_, i) => ({ id: `b${i}`, url: `http://127.0.0.1:${10000 + i}`, weight: 1, maxPending: Infinity }))
  )
  const inFlight: Worker[] = []
  for (let i = 0; i < window; i++) inFlight.push(pool.acquire()!)
  let r = 0
  return {
    run (count) {
      for (let i = 0; i < count; i++) {
        const slot = randomSlots[r++ & 0xffff]
        pool.release(inFlight[slot])
        inFlight[slot] = pool.acquire(undefined, keyed ? hash32(sessionKeys[(r * 7919) & 0xffff]) : undefined)!
      }
    },
    checksum: () => inFlight.reduce((sum, worker) => sum + worker.ordinal, 0)
  }
}

interface Backend { pending: number }

/** The hand-written least-busy: scan every backend for the fewest pending, first one on ties. */
function linearContender (backends: number): Contender {
  const pool: Backend[] = Array.from({ length: backends }, () => ({ pending: 0 }))
  const acquire = (): Backend => {
    let best = pool[0]
    for (let i = 1; i < pool.length; i++) if (pool[i].pending < best.pending) best = pool[i]
    best.pending++
    return best
  }
  const inFlight: Backend[] = []
  for (let i = 0; i < window; i++) inFlight.push(acquire())
  let r = 0
  return {
    run (count) {
      for (let i = 0; i < count; i++) {
        const slot = randomSlots[r++ & 0xffff]
        inFlight[slot].pending--
        inFlight[slot] = acquire()
      }
    },
    checksum: () => inFlight.reduce((sum, backend) => sum + backend.pending, 0)
  }
}

/** Pairs per second: the median of `slices` timed slices, after a warm-up. */
function measure (contender: Contender): number {
  const sliceNs = BigInt(Math.round((seconds * 1e9) / slices))
  const timeSlice = (): number => {
    let pairs = 0
    const start = process.hrtime.bigint()
    let elapsed = 0n
    while (elapsed < sliceNs) {
      contender.run(batch)
      pairs += batch
      elapsed = process.hrtime.bigint() - start
    }
    return pairs / (Number(elapsed) / 1e9)
  }
  // Warm-up: let V8 optimise the loop and the pool reach its steady state.
  const warmUntil = process.hrtime.bigint() + BigInt(Math.round(Math.min(0.3, seconds / 2) * 1e9))
  while (process.hrtime.bigint() < warmUntil) contender.run(batch)
  const rates = Array.from({ length: slices }, timeSlice).sort((a, b) => a - b)
  return rates[slices >> 1]
}

const fmt = (rate: number): string => rate >= 1e6 ? `${(rate / 1e6).toFixed(2)} M` : `${(rate / 1e3).toFixed(1)} k`

console.log(`dispatch: acquire+release pairs/s, least-busy, ${window} requests in flight, ${seconds} s per cell (median of ${slices} slices), node ${process.version}, ${codeVersion().text}\n`)
console.log('| backends | heap pairs/s | linear pairs/s | heap ÷ linear | heap slowdown vs 3 | hash pairs/s |')
console.log('|---:|---:|---:|---:|---:|---:|')
let baseline: number | undefined
let sink = 0
const results: Array<{ backends: number, heap: number, linear: number }> = []
for (const backends of sizes) {
  const heap = heapContender(backends)
  const heapRate = measure(heap)
  const linear = linearContender(backends)
  const linearRate = measure(linear)
  const hash = heapContender(backends, 'hash')
  const hashRate = measure(hash)
  sink += heap.checksum() + linear.checksum() + hash.checksum()
  baseline ??= heapRate
  results.push({ backends, heap: heapRate, linear: linearRate })
  console.log(`| ${backends.toLocaleString('en')} | ${fmt(heapRate)} | ${fmt(linearRate)} | ${(heapRate / linearRate).toFixed(2)}× | ${(baseline / heapRate).toFixed(2)}× | ${fmt(hashRate)} |`)
}

const at = (n: number) => results.find((row) => row.backends === n)
const three = at(3)
const tenThousand = at(10000)
console.log('')
if (three !== undefined) {
  console.log(`target ≥ 5 M pairs/s at 3 backends: ${fmt(three.heap)} → ${three.heap >= 5e6 ? 'met' : `missed (${(three.heap / 5e6).toFixed(2)}× of target)`}`)
}
if (three !== undefined && tenThousand !== undefined) {
  const slowdown = three.heap / tenThousand.heap
  console.log(`target 10,000 backends ≤ 3× slower than 3: ${slowdown.toFixed(2)}× → ${slowdown <= 3 ? 'met' : 'missed'}`)
}
if (sink === -1) console.log('') // keeps the checksums alive
