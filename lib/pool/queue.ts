/** A request waiting for a worker: told when one is free, or when it has waited too long. */
export interface Waiter<T> {
  ready (item: T): void
  expired (): void
}

interface Entry<T> {
  waiter: Waiter<T>
  timer: NodeJS.Timeout
  done: boolean
}

/**
 * The Go balancer's work channel: a FIFO of requests waiting for a worker with room, bounded in length and in
 * waiting time. Entries leave in order; one that left early (timed out, its client gone) is skipped lazily.
 */
export class WaitQueue<T> {
  readonly max: number
  readonly timeout: number
  /** Live entries: those still waiting. */
  length = 0
  #entries: Array<Entry<T>> = []
  #head = 0

  constructor (max: number, timeout: number) {
    this.max = max
    this.timeout = timeout
  }

  /** Queues the waiter; undefined when the queue is full. */
  enqueue (waiter: Waiter<T>): Entry<T> | undefined {
    if (this.length >= this.max) return undefined
    const entry: Entry<T> = { waiter, done: false, timer: setTimeout(() => this.#expire(entry), this.timeout) }
    this.#entries.push(entry)
    this.length++
    return entry
  }

  /** Takes the entry out without telling its waiter: its request has gone. */
  cancel (entry: Entry<T>): void {
    if (this.#leave(entry)) this.#compact()
  }

  /** Hands the item to the longest waiting entry; false when nobody waits. */
  dispatch (item: T): boolean {
    while (this.#head < this.#entries.length) {
      const entry = this.#entries[this.#head++]
      if (this.#leave(entry)) {
        this.#compact()
        entry.waiter.ready(item)
        return true
      }
    }
    this.#compact()
    return false
  }

  /** Expires every waiting entry: the pool is closing. */
  close (): void {
    for (const entry of this.#entries.slice(this.#head)) this.#expire(entry)
  }

  #expire (entry: Entry<T>): void {
    if (this.#leave(entry)) entry.waiter.expired()
  }

  #leave (entry: Entry<T>): boolean {
    if (entry.done) return false
    entry.done = true
    clearTimeout(entry.timer)
    this.length--
    return true
  }

  // Drops the entries already passed once they are most of the array, so it does not grow without bound.
  #compact (): void {
    if (this.length === 0) {
      this.#entries = []
      this.#head = 0
    } else if (this.#head > 1024 && this.#head * 2 > this.#entries.length) {
      this.#entries = this.#entries.slice(this.#head)
      this.#head = 0
    }
  }
}
