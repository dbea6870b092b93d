import type { PoolSettings, Worker } from '../pool.js'

export type Comparator = (a: Worker, b: Worker) => number

/**
 * How a strategy picks: the heap order, the key each worker is ordered by, and optionally its own choice.
 * A strategy that learns from answers (peak-ewma) also has the hooks: the pool calls them at those moments and
 * knows nothing of what they keep.
 */
export interface Selector {
  readonly compare: Comparator
  /** The worker's key in the heap, recomputed whenever its pending count, weight or latency changes. */
  load (worker: Worker): number
  /** Picks among the workers that can take a request (the heap's array, `length` of them); default: the top. */
  choose? (workers: readonly Worker[], length: number): Worker
  /** The worker for a request's key (the 32-bit hash of it), or undefined to choose as for a request without one. */
  pick? (key: number): Worker | undefined
  /** The pool holds the backends it was built with. */
  start? (): void
  /** A worker joins, before its first key is taken; `added`: to a running pool (Pool.add), not at build. */
  joined? (worker: Worker, added: boolean): void
  /** A worker joined the running pool or left it: `workers` changed. */
  workersChanged? (): void
  /** The worker started answering `ms` after its request was sent. */
  observe? (worker: Worker, ms: number): void
}

/** What a strategy that keeps state of its own may see and do in the pool it serves. */
export interface SelectorContext {
  readonly workers: readonly Worker[]
  /** Requests in flight, on every worker. */
  pending (): number
  /** The effective weights of the workers in rotation, added up. */
  weight (): number
  /** Takes the worker's key again and puts it where it now belongs: O(log n). */
  reorder (worker: Worker): void
  /** Takes every worker's key again and rebuilds the heap once: O(n), for when all keys changed together. */
  reorderAll (): void
  /** Runs `run` in `ms`, unless the pool closes first. */
  later (ms: number, run: () => void): void
}

/** Makes a strategy's selector for one pool; a strategy that keeps no state hands every pool the same one. */
export type SelectorFactory = (pool: SelectorContext, settings: PoolSettings) => Selector
