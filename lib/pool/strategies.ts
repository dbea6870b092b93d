import type { Strategy } from '../options.js'
import type { Worker } from '../pool/pool.js'

export type Comparator = (a: Worker, b: Worker) => number

/** How a strategy picks: the heap order, the key each worker is ordered by, and optionally its own choice. */
export interface Selector {
  readonly compare: Comparator
  /** The worker's key in the heap, recomputed whenever its pending count, weight or latency changes. */
  load (worker: Worker): number
  /** Picks among the workers that can take a request (the heap's array, `length` of them); default: the top. */
  choose? (workers: readonly Worker[], length: number): Worker
}

// Lowest key first; ties fall to the lower weighted turn (least recently chosen, as nginx and HAProxy do),
// then to the order backends were given in, so the order is total and equally idle backends take turns.
const byLoad: Comparator = (a, b) => (a.load - b.load) || (a.turn - b.turn) || (a.ordinal - b.ordinal)

const leastBusy: Selector = {
  compare: byLoad,
  // HAProxy leastconn's pending / weight.
  load: (worker) => worker.pending / worker.effectiveWeight
}

export const selectors: Record<Strategy, Selector> = {
  'least-busy': leastBusy,
  // Weighted turns only, whatever the load: the baseline least-busy is measured against.
  'round-robin': {
    compare: (a, b) => (a.turn - b.turn) || (a.ordinal - b.ordinal),
    load: leastBusy.load
  },
  // Power of two random choices on pending (Envoy's LEAST_REQUEST): two workers drawn at random, the less busy
  // one goes. Several balancer processes, each with its own counts, then do not all rush to the same backend.
  p2c: {
    compare: byLoad,
    load: leastBusy.load,
    choose (workers, length) {
      if (length === 1) return workers[0]
      const first = Math.floor(Math.random() * length)
      let second = Math.floor(Math.random() * (length - 1))
      if (second >= first) second++
      return byLoad(workers[first], workers[second]) <= 0 ? workers[first] : workers[second]
    }
  },
  // Finagle's and Linkerd's peak-EWMA: expected wait = (pending + 1) × peak-EWMA of the backend's own latency.
  'peak-ewma': {
    compare: byLoad,
    // An outlier (far slower than the pool's median) already busy with one request, or resting after one, goes
    // last: it keeps being measured, one request now and then, so it comes back when it speeds up, but it cannot
    // set the pool's tail. Last, not out: when nothing else can take the request, it still does.
    load: (worker) => worker.outlier && (worker.pending > 0 || worker.resting) ? Infinity : (worker.pending + 1) * worker.latency / worker.effectiveWeight
  }
}

/**
 * Peak-EWMA of a backend's latency, in ms: a sample above the average replaces it at once (the peak), a sample
 * below pulls it down with weight 1 - e^(-elapsed / decay), and by at least 1/32, so a latency spike is felt at
 * once and forgotten within `decay` or within some 32 requests, whichever comes first. (With the time alone, a busy
 * backend answering in 2 ms kept the 15 ms of one event-loop stall for seconds, and looked as slow as a 30 ms one.)
 * Returns the new average.
 */
export function peakEwma (average: number, sample: number, elapsed: number, decay: number): number {
  if (sample > average) return sample
  const keep = Math.min(Math.exp(-elapsed / decay), 31 / 32)
  return average * keep + sample * (1 - keep)
}

/** The same average after `elapsed` ms without samples: it fades towards 0, so an idle backend is tried again. */
export function fade (average: number, elapsed: number, decay: number): number {
  return average * Math.exp(-elapsed / decay)
}
