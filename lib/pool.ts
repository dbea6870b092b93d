import TinyQueue from 'tinyqueue'
import type { BackendConfig, Strategy } from './options.js'
import { comparators, type Comparator } from './strategies.js'

export class Worker {
  readonly id: string
  readonly url: string
  readonly weight: number
  /** Position in the backends list: the last tie-break, so the heap order is total. */
  readonly ordinal: number
  /** Requests dispatched to this backend and not yet ended: what least-busy orders by. */
  pending = 0
  /** pending / weight, kept up to date so the heap compares without dividing. */
  load = 0
  /** Weighted virtual time of this worker's last choice (see Pool.acquire). */
  turn = 0
  /** Requests the backend answered (response headers received). */
  served = 0
  /** Requests that ended in a connection error or timeout at this backend. */
  failed = 0
  /** Where this worker sits in the heap, so a release can sift it without a search. */
  heapIndex = -1

  constructor (config: BackendConfig, ordinal: number) {
    this.id = config.id
    this.url = config.url
    this.weight = config.weight
    this.ordinal = ordinal
  }
}

/**
 * tinyqueue's binary heap, with each worker's position kept in `heapIndex`.
 * tinyqueue has no decrease-key; knowing where a worker is lets `update` sift that one
 * element in O(log n) when its load changes, as Rob Pike's balancer does with heap.Fix.
 */
class WorkerHeap extends TinyQueue<Worker> {
  declare compare: Comparator

  update (worker: Worker): void {
    this._up(worker.heapIndex)
    this._down(worker.heapIndex)
  }

  // The two methods below are tinyqueue's own _up and _down, plus the heapIndex bookkeeping.
  _up (pos: number): void {
    const { data, compare } = this
    const item = data[pos]
    while (pos > 0) {
      const parent = (pos - 1) >> 1
      const current = data[parent]
      if (compare(item, current) >= 0) break
      data[pos] = current
      current.heapIndex = pos
      pos = parent
    }
    data[pos] = item
    item.heapIndex = pos
  }

  _down (pos: number): void {
    const { data, compare } = this
    const halfLength = this.length >> 1
    const item = data[pos]
    while (pos < halfLength) {
      let bestChild = (pos << 1) + 1
      const right = bestChild + 1
      if (right < this.length && compare(data[right], data[bestChild]) < 0) bestChild = right
      if (compare(data[bestChild], item) >= 0) break
      data[pos] = data[bestChild]
      data[pos].heapIndex = pos
      pos = bestChild
    }
    data[pos] = item
    item.heapIndex = pos
  }
}

export interface BackendStats {
  id: string
  url: string
  pending: number
  served: number
  failed: number
  healthy: boolean
}

export interface PoolStats {
  strategy: Strategy
  backends: BackendStats[]
}

export class Pool {
  readonly strategy: Strategy
  readonly workers: Worker[]
  readonly #heap: WorkerHeap
  /** Virtual time: the turn of the latest choice. */
  #clock = 0

  constructor (strategy: Strategy, backends: BackendConfig[]) {
    this.strategy = strategy
    this.workers = backends.map((config, ordinal) => new Worker(config, ordinal))
    this.#heap = new WorkerHeap([], comparators[strategy])
    for (const worker of this.workers) this.#heap.push(worker)
  }

  /** Takes the worker at the top of the heap and counts one more request on it. */
  acquire (): Worker | undefined {
    const worker = this.#heap.peek()
    if (worker === undefined) return undefined
    worker.pending++
    worker.load = worker.pending / worker.weight
    // A worker that was passed over for a while restarts from the current virtual time,
    // so it cannot bank turns and then take a burst; heavier workers advance more slowly.
    this.#clock = Math.max(worker.turn, this.#clock)
    worker.turn = this.#clock + 1 / worker.weight
    this.#heap.update(worker)
    return worker
  }

  /** Ends one request on this worker. Called exactly once per acquire. */
  release (worker: Worker): void {
    worker.pending--
    worker.load = worker.pending / worker.weight
    this.#heap.update(worker)
  }

  stats (): PoolStats {
    return {
      strategy: this.strategy,
      backends: this.workers.map((worker) => ({
        id: worker.id,
        url: worker.url,
        pending: worker.pending,
        served: worker.served,
        failed: worker.failed,
        // Every configured backend takes traffic until health checks exist to say otherwise.
        healthy: true
      }))
    }
  }
}
