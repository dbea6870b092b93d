/** A request body being received, as the watch sees it. */
export interface WatchedBody {
  /** Bytes received so far. */
  received: number
  /** When the watch began and when the last byte came (performance.now()). */
  startedAt: number
  lastAt: number
  /** We stopped reading it ourselves (the backend is slow to take it, or it waits for one): not the client's fault. */
  readonly paused: boolean
  /** The client is too slow: answer 408 or cut it. */
  clientTimedOut (): void
}

/**
 * Cuts clients that send their request body too slowly: no byte for `timeout` ms (nginx's client_body_timeout),
 * or slower on average than `minRate` bytes/s, where the first `timeout` ms are free and each `minRate` bytes buy
 * one more second (Apache's mod_reqtimeout MinRate). One unref'd timer sweeps every body in flight, and runs only
 * while there is one: no timer per request.
 */
export class ClientWatch {
  readonly timeout: number
  readonly minRate: number
  readonly #bodies = new Set<WatchedBody>()
  readonly #every: number
  #timer: NodeJS.Timeout | undefined
  #sweptAt = 0

  constructor (timeout: number, minRate: number) {
    this.timeout = timeout
    this.minRate = minRate
    this.#every = Math.min(1000, Math.max(10, Math.floor(timeout / 4)))
  }

  /** Bodies watched now: the watch holds each one until it ends, is cut, or its exchange ends. */
  get watching (): number {
    return this.#bodies.size
  }

  start (body: WatchedBody): void {
    body.startedAt = body.lastAt = performance.now()
    this.#bodies.add(body)
    if (this.#timer === undefined) {
      this.#sweptAt = body.startedAt
      this.#timer = setInterval(this.#sweep, this.#every).unref()
    }
  }

  stop (body: WatchedBody): void {
    if (this.#bodies.delete(body) && this.#bodies.size === 0) this.close()
  }

  close (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#bodies.clear()
  }

  #sweep = (): void => {
    const now = performance.now()
    const since = now - this.#sweptAt
    this.#sweptAt = now
    for (const body of this.#bodies) {
      if (body.paused) {
        // Time spent waiting on our side does not count against the client.
        body.lastAt = now
        body.startedAt += since
        continue
      }
      const idle = now - body.lastAt > this.timeout
      const slow = this.minRate > 0 && now - body.startedAt > this.timeout + body.received * 1000 / this.minRate
      if (idle || slow) {
        this.#bodies.delete(body)
        body.clientTimedOut()
      }
    }
    if (this.#bodies.size === 0) this.close()
  }
}
