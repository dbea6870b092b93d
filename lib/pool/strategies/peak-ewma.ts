import { byLoad } from './least-busy.js'
import type { Selector } from './selector.js'

// Finagle's and Linkerd's peak-EWMA: expected wait = (pending + 1) × peak-EWMA of the backend's own latency.
export const peakEwmaSelector: Selector = {
  compare: byLoad,
  // An outlier (far slower than the pool's median) already busy with one request, or resting after one, goes
  // last: it keeps being measured, one request now and then, so it comes back when it speeds up, but it cannot
  // set the pool's tail. Last, not out: when nothing else can take the request, it still does.
  load: (worker) => worker.outlier && (worker.pending > 0 || worker.resting) ? Infinity : (worker.pending + 1) * worker.latency / worker.effectiveWeight
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
