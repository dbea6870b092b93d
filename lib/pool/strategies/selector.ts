import type { Worker } from '../pool.js'

export type Comparator = (a: Worker, b: Worker) => number

/** How a strategy picks: the heap order, the key each worker is ordered by, and optionally its own choice. */
export interface Selector {
  readonly compare: Comparator
  /** The worker's key in the heap, recomputed whenever its pending count, weight or latency changes. */
  load (worker: Worker): number
  /** Picks among the workers that can take a request (the heap's array, `length` of them); default: the top. */
  choose? (workers: readonly Worker[], length: number): Worker
}
