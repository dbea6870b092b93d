/** An upstream attempt waiting for its response headers, as the sweep sees it. */
export interface TimedAttempt {
  /** performance.now() past which the attempt has failed. */
  deadlineAt: number
  /** Its place in the sweep's list; -1 when not in it. */
  deadlineIndex: number
}

/**
 * The response deadline of every attempt in flight, on one unref'd interval, as ClientWatch does for bodies. An
 * attempt joins and leaves a plain array (its index kept on it, the last one moved into the gap): no allocation,
 * ~0.1 µs, where a setTimeout/clearTimeout pair costs ~0.3 µs and a Set re-hashes as it empties and fills (~0.7 µs
 * for one add and delete at a few in flight). The interval stops at a sweep that finds nothing, not when the last
 * attempt leaves, so a steady trickle of requests does not start and stop a timer each.
 * An attempt fails at most `every` ms after its deadline, never before it: a tenth of the pool's timeout, 5 to
 * 100 ms (undici's own timers, which ours replaced, were up to a second late). A gRPC call's shorter grpc-timeout is
 * held to the same sweep.
 */
export class Deadlines<Attempt extends TimedAttempt> {
  readonly #attempts: Attempt[] = []
  readonly #every: number
  readonly #expired: (attempt: Attempt) => void
  #timer: NodeJS.Timeout | undefined

  constructor (timeout: number, expired: (attempt: Attempt) => void) {
    this.#every = Math.min(100, Math.max(5, Math.floor(timeout / 10)))
    this.#expired = expired
  }

  /** Attempts timed now. */
  get timing (): number {
    return this.#attempts.length
  }

  start (attempt: Attempt, timeout: number): void {
    attempt.deadlineAt = performance.now() + timeout
    attempt.deadlineIndex = this.#attempts.push(attempt) - 1
    this.#timer ??= setInterval(this.#sweep, this.#every).unref()
  }

  stop (attempt: Attempt): void {
    const index = attempt.deadlineIndex
    if (index < 0) return
    attempt.deadlineIndex = -1
    const last = this.#attempts.pop()!
    if (last === attempt) return
    this.#attempts[index] = last
    last.deadlineIndex = index
  }

  /** The pool is closing, its requests done: the interval (unref'd, but a timer all the same) goes now. */
  close (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  #sweep = (): void => {
    const attempts = this.#attempts
    if (attempts.length === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
      return
    }
    const now = performance.now()
    // Backwards: stop() moves the last attempt, one already looked at, into the gap.
    for (let index = attempts.length - 1; index >= 0; index--) {
      const attempt = attempts[index]
      if (attempt === undefined || now < attempt.deadlineAt) continue
      this.stop(attempt)
      this.#expired(attempt)
    }
  }
}
