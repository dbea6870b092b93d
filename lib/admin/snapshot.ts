import { latencyBuckets } from '../pool/latency.js'
import type { BackendStats, Pool, Worker } from '../pool/pool.js'
import type { CircuitBreaker, CircuitState } from '../policy/circuit-breaker.js'
import type { PoolEntry } from '../registry.js'
import { mirrorCounts, type MirrorCounts } from '../policy/mirror-counts.js'
import type { CertificateSource, ServedCertificate } from '../tls/served.js'
import { routeSnapshot, type RouteSnapshot } from './splits.js'
import type { SplitSource } from '../policy/split.js'

export type BackendState = 'up' | 'ejected' | 'unhealthy' | 'draining' | 'slow-start'

/** A backend as pool.stats() gives it, with what the status page shows besides. */
export interface BackendSnapshot extends BackendStats {
  state: BackendState
  /** Percent of its weight a slow start has reached, while it ramps; else null. */
  slowStart: number | null
  /** Upstream latency (request written → response headers) over the last minute, ms; null without samples. */
  latency: { p50: number | null, p99: number | null }
}

export interface PoolSnapshot {
  name: string
  strategy: string
  queued: number
  /** The backend the heap would hand out next. */
  next: string | null
  /** Requests answered or failed so far, by the backends in the pool now. */
  requests: number
  /** Requests per second over the last second. */
  rate: number
  /** The pool's p99 upstream latency over the last minute, ms. */
  p99: number | null
  shed: Pool['shed']
  /** The pool's circuit breaker, when it has one: its state, seconds until an open one probes, its changes so far. */
  circuit: { state: CircuitState, retryAfter: number | null, transitions: Record<CircuitState, number> } | null
  /** The pool's retry budget, when it has one: retries in flight now, retries it refused so far. */
  retryBudget: { retrying: number, exhausted: number } | null
  /** A sticky pool's requests sent where their cookie said, and those given a new one; null without sticky. */
  sticky: { cookie: number, assigned: number } | null
  backends: BackendSnapshot[]
  /** The copies routes mirrored to this pool (README, Mirroring); null when no route mirrors to it. */
  mirror: MirrorCounts | null
}

export interface Snapshot {
  at: number
  pid: number
  pools: PoolSnapshot[]
  /** The routes that split between pools, with their weights and the requests sent to each. */
  routes: RouteSnapshot[]
  /** The TLS listeners' certificates and their expiry (the goload command's; none for the plugin). */
  certificates: ServedCertificate[]
}

/** Ticks kept: one a `tick` (500 ms) for a minute. */
const ring = 120
const buckets = latencyBuckets.length + 1
/** Each tick keeps a backend's latency bucket counts, then its requests so far. */
const width = buckets + 1
const zero = new Float64Array(width)

/** What a backend had at each of the last `ring` ticks. */
interface History {
  readonly first: number
  /** Seen after the first tick, so it joined since: it had nothing before. */
  readonly joinedLater: boolean
  readonly data: Float64Array
}

/** State shown for a backend: draining > unhealthy > ejected > slow-start > up. */
export function stateOf (worker: Worker): BackendState {
  if (worker.draining) return 'draining'
  if (!worker.healthy) return 'unhealthy'
  if (worker.ejectedUntil !== 0) return 'ejected'
  if (worker.effectiveWeight < worker.weight) return 'slow-start'
  return 'up'
}

/**
 * The pools as the admin shows them. `tick()` (every 500 ms) keeps what each backend had, so that a snapshot can
 * give latency quantiles over the last minute and requests/s over the last second from the differences: a
 * backend's histogram counts everything since it joined.
 */
export class Snapshots {
  readonly #source: () => Iterable<PoolEntry>
  readonly #certificates: CertificateSource
  readonly #splits: SplitSource
  readonly #histories = new WeakMap<Worker, History>()
  readonly #times = new Float64Array(ring)
  /** Ticks so far; the latest is `#tick - 1`. */
  #tick = 0

  constructor (source: () => Iterable<PoolEntry>, certificates: CertificateSource = () => [], splits: SplitSource = () => []) {
    this.#source = source
    this.#certificates = certificates
    this.#splits = splits
    this.tick()
  }

  /** Keeps every backend's counts now. */
  tick (): void {
    const tick = this.#tick++
    this.#times[tick % ring] = Date.now()
    for (const { pool } of this.#source()) {
      for (const worker of pool.workers) {
        let history = this.#histories.get(worker)
        if (history === undefined) {
          history = { first: tick, joinedLater: tick > 0, data: new Float64Array(ring * width) }
          this.#histories.set(worker, history)
        }
        const offset = (tick % ring) * width
        history.data.set(worker.latencies.counts, offset)
        history.data[offset + buckets] = requestsOf(worker)
      }
    }
  }

  snapshot (): Snapshot {
    const at = Date.now()
    const latest = this.#tick - 1
    // The tick about a minute ago, and the one about a second ago.
    const minuteAgo = Math.max(0, latest - (ring - 1))
    const secondAgo = Math.max(0, latest - 1)
    const seconds = (at - this.#times[secondAgo % ring]) / 1000
    const pools: PoolSnapshot[] = []
    for (const { name, pool, forwarder, sticky } of this.#source()) {
      const poolCounts = new Float64Array(buckets)
      let requests = 0
      let recent = 0
      // stats() lists the workers in their order: its names and values, plus what the admin adds.
      const backends = pool.stats().backends.map((stats, index): BackendSnapshot => {
        const worker = pool.workers[index]
        const counts = new Float64Array(buckets)
        const before = this.#at(worker, minuteAgo)
        for (let i = 0; i < buckets; i++) counts[i] = worker.latencies.counts[i] - before[i]
        for (let i = 0; i < buckets; i++) poolCounts[i] += counts[i]
        const total = requestsOf(worker)
        requests += total
        recent += total - this.#at(worker, secondAgo)[buckets]
        return {
          ...stats,
          state: stateOf(worker),
          slowStart: worker.effectiveWeight < worker.weight ? Math.round(worker.effectiveWeight / worker.weight * 100) : null,
          latency: { p50: quantile(counts, 0.5), p99: quantile(counts, 0.99) }
        }
      })
      pools.push({
        name,
        strategy: pool.strategy,
        queued: pool.queue.length,
        next: pool.next?.id ?? null,
        requests,
        rate: seconds > 0 ? Math.round(recent / seconds * 10) / 10 : 0,
        p99: quantile(poolCounts, 0.99),
        shed: { ...pool.shed },
        circuit: circuitOf(forwarder?.circuit),
        retryBudget: forwarder?.retryBudget === undefined ? null : { retrying: forwarder.retryBudget.retrying, exhausted: forwarder.retryBudget.exhausted },
        sticky: sticky === undefined ? null : { ...sticky },
        backends,
        mirror: mirrorSnapshot(pool)
      })
    }
    return { at, pid: process.pid, pools, routes: [...this.#splits()].map(routeSnapshot), certificates: this.#certificates() }
  }

  /** A backend's counts at `tick`: zero before it joined, or its first kept ones if it was there before the admin. */
  #at (worker: Worker, tick: number): Float64Array {
    const history = this.#histories.get(worker)
    if (history === undefined) return zero
    if (tick < history.first) return history.joinedLater ? zero : this.#at(worker, history.first)
    const offset = (tick % ring) * width
    return history.data.subarray(offset, offset + width)
  }
}

function circuitOf (circuit: CircuitBreaker | undefined): PoolSnapshot['circuit'] {
  if (circuit === undefined) return null
  const state = circuit.stateName
  return { state, retryAfter: state === 'open' ? circuit.retryAfter() : null, transitions: { ...circuit.transitions } }
}

function mirrorSnapshot (pool: Pool): MirrorCounts | null {
  const counts = mirrorCounts(pool)
  return counts === undefined ? null : { ...counts, skipped: { ...counts.skipped } }
}

function requestsOf (worker: Worker): number {
  return worker.served + worker.failed
}

/**
 * The q-quantile of a histogram (counts per bucket, not cumulative), in ms, as Prometheus' histogram_quantile
 * estimates it: linear within the bucket the rank falls in; past the last bound, that bound. Null without samples.
 */
export function quantile (counts: ArrayLike<number>, q: number): number | null {
  let total = 0
  for (let i = 0; i < counts.length; i++) total += counts[i]
  if (total === 0) return null
  const rank = q * total
  let below = 0
  for (let i = 0; i < latencyBuckets.length; i++) {
    if (below + counts[i] >= rank && counts[i] > 0) {
      const lower = i === 0 ? 0 : latencyBuckets[i - 1]
      const seconds = lower + (latencyBuckets[i] - lower) * (rank - below) / counts[i]
      return Math.round(seconds * 1e6) / 1e3
    }
    below += counts[i]
  }
  return latencyBuckets[latencyBuckets.length - 1] * 1000
}
