import TinyQueue from 'tinyqueue'
import type { Comparator } from './strategies/index.js'
import type { Worker } from './pool.js'

/**
 * tinyqueue's binary heap, with each worker's position kept in `heapIndex`.
 *
 * Why not tinyqueue's public API (push, pop, peek) alone: a worker's key changes in place on every acquire and
 * release, and the heap must move that one worker from wherever it sits, in O(log n), as Rob Pike's balancer does
 * with heap.Fix (decrease-key, and delete for a worker leaving rotation). tinyqueue has neither. Lazy entries (push a
 * fresh copy, skip stale ones once they reach the top) would add an entry per request, and garbage with it.
 * So this relies on tinyqueue 3.0.0's internals: its fields `data`, `length` and `compare`, and a `push` that appends
 * to `data` and sifts through `this._up`, which is overridden here, with `_down`, to keep `heapIndex`. A tinyqueue
 * that renamed those fields or sifted in `push` without `_up` would leave `heapIndex` stale, and the pool would hand
 * out the wrong worker without an error. Hence the exact version in package.json, and `checkTinyQueue` at load.
 */
export class WorkerHeap extends TinyQueue<Worker> {
  declare compare: Comparator

  update (worker: Worker): void {
    this._up(worker.heapIndex)
    this._down(worker.heapIndex)
  }

  /**
   * The worker's key went up (it took a request): Floyd's sift, down to a leaf along the smaller children without
   * comparing the worker itself, then back up to where it belongs. A just-chosen worker usually belongs near the
   * bottom, so this takes about half the comparisons of _down.
   */
  sink (worker: Worker): void {
    const { data, compare, length } = this
    let pos = worker.heapIndex
    let child = 2 * pos + 1
    while (child < length) {
      if (child + 1 < length && compare(data[child + 1], data[child]) < 0) child++
      data[pos] = data[child]
      data[pos].heapIndex = pos
      pos = child
      child = 2 * pos + 1
    }
    data[pos] = worker
    // Back up: never above `start`, whose parent was already no greater than the worker before its key went up.
    this._up(pos)
  }

  /** Restores the heap order after every key changed at once. */
  rebuild (): void {
    for (let i = (this.length >> 1) - 1; i >= 0; i--) this._down(i)
  }

  remove (worker: Worker): void {
    const last = this.data.pop()!
    this.length--
    if (last !== worker) {
      this.data[worker.heapIndex] = last
      last.heapIndex = worker.heapIndex
      this.update(last)
    }
    worker.heapIndex = -1
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

/**
 * Throws unless tinyqueue still works as WorkerHeap relies on: pushed workers must each know where they sit, and the
 * least loaded be on top. Run once at load, so a changed tinyqueue stops goload from starting rather than have it
 * balance wrong.
 */
export function checkTinyQueue (): void {
  const loads = [5, 3, 4, 1, 2]
  const probes = loads.map((load) => ({ load, heapIndex: -1 }) as Worker)
  let kept: boolean
  try {
    const heap = new WorkerHeap([], (a, b) => a.load - b.load)
    for (const probe of probes) heap.push(probe)
    kept = heap.length === probes.length && probes.every((probe) => heap.data[probe.heapIndex] === probe) && heap.peek() === probes[loads.indexOf(1)]
  } catch {
    kept = false
  }
  if (!kept) throw new Error('goload: tinyqueue no longer works as lib/pool/heap.ts relies on (its data, length and compare, and push through _up): update WorkerHeap for this tinyqueue version')
}

checkTinyQueue()
