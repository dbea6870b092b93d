import type { Worker } from '../pool.js'
import { byLoad } from './least-busy.js'
import type { Selector, SelectorContext } from './selector.js'

// ms: a faded latency stays above zero, so (pending + 1) still counts for an idle backend.
const minLatency = 0.01
// A backend whose typical latency is over this many times the median is an outlier. Without the bound,
// (pending + 1) x latency lets a slow backend look as good as fast ones that each hold many requests, and the share
// it then gets (1.4% in bench/RESULTS.md) puts the pool's p99 at its latency.
const outlierFactor = 4
// After each answer, an outlier rests for this share of ewmaDecay (500 ms at the default 10 s) before it takes its
// next request. With always one in flight it still took ~0.3% of requests at 10,000 req/s, which is in a p99 (more
// so as wrk counts it, see bench/RESULTS.md); two explorations a second keep measuring it, and a few fast answers
// bring it back.
const outlierRest = 1 / 20

/**
 * Finagle's and Linkerd's peak-EWMA: expected wait = (pending + 1) × peak-EWMA of the backend's own latency.
 * The latencies it keeps are fields of Worker (latency, typical, latencyAt, outlier, resting): `load` runs on every
 * acquire and release, and reads them there without a lookup; every worker has them, so all have one shape.
 */
export class PeakEwma implements Selector {
  readonly compare = byLoad
  readonly #pool: SelectorContext
  /** ms over which latency samples fade. */
  readonly #decay: number
  /** The pool's median typical latency, brought up to date on each fade and every so many samples. */
  #medianLatency = Infinity
  #samples = 0

  constructor (pool: SelectorContext, decay: number) {
    this.#pool = pool
    this.#decay = decay
  }

  // An outlier (far slower than the pool's median) already busy with one request, or resting after one, goes
  // last: it keeps being measured, one request now and then, so it comes back when it speeds up, but it cannot
  // set the pool's tail. Last, not out: when nothing else can take the request, it still does.
  load (worker: Worker): number {
    return worker.outlier && (worker.pending > 0 || worker.resting) ? Infinity : (worker.pending + 1) * worker.latency / worker.effectiveWeight
  }

  start (): void {
    this.#fadeLatencies()
  }

  joined (worker: Worker, added: boolean): void {
    // A newcomer starts at the pool's median latency, so it is tried without being flooded. (The backends a pool is
    // built with all start at the same latency: no median to take, which would make building a pool of n backends
    // O(n² log n).)
    if (added) worker.latency = median(this.#pool.workers, peakLatency)
    worker.latencyAt = performance.now()
  }

  observe (worker: Worker, ms: number): void {
    const now = performance.now()
    worker.latency = peakEwma(worker.latency, ms, now - worker.latencyAt, this.#decay)
    worker.latencyAt = now
    worker.typical = worker.typical === 0 ? ms : worker.typical + (ms - worker.typical) * (ms > worker.typical ? 1 / 32 : 1 / 4)
    // Amortised O(log n) a sample: the median is recomputed once per max(64, n) samples. Until the first one, no
    // backend is an outlier (the median is not known yet).
    const { workers } = this.#pool
    if (++this.#samples % Math.max(64, workers.length) === 0) this.#medianLatency = medianTypical(workers)
    worker.outlier = this.#isOutlier(worker)
    if (worker.outlier && !worker.resting) this.#rest(worker)
    this.#pool.reorder(worker)
  }

  #isOutlier (worker: Worker): boolean {
    return worker.typical > outlierFactor * this.#medianLatency
  }

  /**
   * Latencies fade between samples, so a backend that was slow once is tried again in time. Faded on a timer,
   * 20 times per decay period, and the heap rebuilt once: between two fades the order stands still.
   */
  #fadeLatencies (): void {
    const { workers } = this.#pool
    const now = performance.now()
    this.#medianLatency = medianTypical(workers)
    for (const worker of workers) {
      worker.latency = Math.max(fade(worker.latency, now - worker.latencyAt, this.#decay), minLatency)
      worker.latencyAt = now
      worker.outlier = this.#isOutlier(worker)
    }
    this.#pool.reorderAll()
    this.#pool.later(this.#decay / 20, () => { this.#fadeLatencies() })
  }

  /** An outlier that just answered takes no request for a while (see outlierRest). */
  #rest (worker: Worker): void {
    worker.resting = true
    this.#pool.later(this.#decay * outlierRest, () => {
      worker.resting = false
      this.#pool.reorder(worker)
    })
  }
}

function median (workers: readonly Worker[], latency: (worker: Worker) => number): number {
  if (workers.length === 0) return 1
  const sorted = workers.map(latency).sort((a, b) => a - b)
  return sorted[(sorted.length - 1) >> 1]
}

const peakLatency = (worker: Worker): number => worker.latency
const typicalLatency = (worker: Worker): number => worker.typical

/** The median typical latency of the backends measured so far: a backend never sampled says nothing yet. */
function medianTypical (workers: readonly Worker[]): number {
  const measured = workers.filter((worker) => worker.typical > 0)
  return measured.length === 0 ? Infinity : median(measured, typicalLatency)
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
