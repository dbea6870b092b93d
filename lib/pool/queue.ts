/** A request waiting for a worker: told when one is free, or when it has waited too long. */
export interface Waiter<T> {
  ready (item: T): void
  expired (): void
}

/** A waiting request, linked to its neighbours in arrival order. */
interface Entry<T> {
  readonly waiter: Waiter<T>
  timer: NodeJS.Timeout | undefined
  previous: Entry<T> | undefined
  next: Entry<T> | undefined
  waiting: boolean
}

/**
 * The Go balancer's work channel: a FIFO of requests waiting for a worker with room, bounded in length and in
 * waiting time. A doubly linked list, so an entry that leaves early (timed out, its client gone) is unlinked at once,
 * in O(1): the queue never holds a request that no longer waits, nor the body it read ahead (up to bufferBody), even
 * while no worker frees up to move it on.
 */
export class WaitQueue<T> {
  readonly max: number
  readonly timeout: number
  /** Entries waiting: every one the queue holds. */
  length = 0
  #first: Entry<T> | undefined
  #last: Entry<T> | undefined
  /** Told when the last waiter leaves (see emptied). */
  #onEmpty: Array<() => void> = []

  constructor (max: number, timeout: number) {
    this.max = max
    this.timeout = timeout
  }

  /** Queues the waiter; undefined when the queue is full. */
  enqueue (waiter: Waiter<T>): Entry<T> | undefined {
    if (this.length >= this.max) return undefined
    const entry: Entry<T> = { waiter, timer: undefined, previous: this.#last, next: undefined, waiting: true }
    entry.timer = setTimeout(() => { this.#expire(entry) }, this.timeout)
    if (this.#last === undefined) this.#first = entry
    else this.#last.next = entry
    this.#last = entry
    this.length++
    return entry
  }

  /** Takes the entry out without telling its waiter: its request has gone. */
  cancel (entry: Entry<T>): void {
    this.#leave(entry)
  }

  /** Hands the item to the longest waiting entry; false when nobody waits. */
  dispatch (item: T): boolean {
    const entry = this.#first
    if (entry === undefined) return false
    this.#leave(entry)
    entry.waiter.ready(item)
    return true
  }

  /** Settles once nobody waits, at once if nobody does: a pool retired by a reload serves its queue, then closes. */
  emptied (): Promise<void> {
    if (this.length === 0) return Promise.resolve()
    return new Promise((resolve) => { this.#onEmpty.push(resolve) })
  }

  /** Expires every waiting entry: the pool is closing. */
  close (): void {
    // Only those waiting now: a waiter told it expired could queue again.
    for (let left = this.length; left > 0 && this.#first !== undefined; left--) this.#expire(this.#first)
  }

  #expire (entry: Entry<T>): void {
    if (this.#leave(entry)) entry.waiter.expired()
  }

  #leave (entry: Entry<T>): boolean {
    if (!entry.waiting) return false
    entry.waiting = false
    clearTimeout(entry.timer)
    const { previous, next } = entry
    if (previous === undefined) this.#first = next
    else previous.next = next
    if (next === undefined) this.#last = previous
    else next.previous = previous
    entry.previous = entry.next = entry.timer = undefined
    this.length--
    if (this.length === 0 && this.#onEmpty.length > 0) {
      const told = this.#onEmpty
      this.#onEmpty = []
      for (const resolve of told) resolve()
    }
    return true
  }
}
