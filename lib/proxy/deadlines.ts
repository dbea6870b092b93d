/** An upstream attempt waiting for its response headers, as the sweep sees it. */
export interface TimedAttempt {
  /** performance.now() past which the attempt has failed. */
  deadlineAt: number
}

/**
 * The response deadline of every attempt in flight, on one unref'd interval that runs only while there is one, as
 * ClientWatch does for bodies: a Set add and delete per attempt cost a fraction of a setTimeout/clearTimeout pair.
 * An attempt is failed at most `every` ms after its deadline, never before it (a tenth of the pool's timeout, 5 to
 * 100 ms: undici's own timers, which this replaces, were up to a second late). A gRPC call's shorter grpc-timeout is
 * held to the same sweep.
 */
export class Deadlines<Attempt extends TimedAttempt> {
  readonly #attempts = new Set<Attempt>()
  readonly #every: number
  readonly #expired: (attempt: Attempt) => void
  #timer: NodeJS.Timeout | undefined

  constructor (timeout: number, expired: (attempt: Attempt) => void) {
    this.#every = Math.min(100, Math.max(5, Math.floor(timeout / 10)))
    this.#expired = expired
  }

  start (attempt: Attempt, timeout: number): void {
    attempt.deadlineAt = performance.now() + timeout
    this.#attempts.add(attempt)
    this.#timer ??= setInterval(this.#sweep, this.#every).unref()
  }

  stop (attempt: Attempt): void {
    if (this.#attempts.delete(attempt) && this.#attempts.size === 0) this.close()
  }

  close (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#attempts.clear()
  }

  #sweep = (): void => {
    const now = performance.now()
    for (const attempt of this.#attempts) {
      if (now < attempt.deadlineAt) continue
      this.#attempts.delete(attempt)
      this.#expired(attempt)
    }
    if (this.#attempts.size === 0) this.close()
  }
}
