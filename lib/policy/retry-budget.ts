import type { RetryBudgetOptions } from '../options.js'

/**
 * A pool's retry budget: Envoy's retry_budget (retries in flight under budget_percent of the requests in flight) with
 * Finagle's floor (minRetriesPerSec), so that a pool with little traffic may still retry. A retry count alone lets an
 * outage of one backend double the load on the others; the budget keeps retries a share of the traffic.
 *
 * The floor is a token bucket of minPerSecond tokens, refilled at minPerSecond a second: a retry the percent does not
 * allow takes one, if there is one.
 */
export class RetryBudget {
  /** Requests of the pool on a second or later attempt, now. */
  retrying = 0
  /** Retries not made because the budget was spent: the request got its first failure's answer. */
  exhausted = 0
  readonly #share: number
  readonly #perSecond: number
  #tokens: number
  /** performance.now() of the last refill. */
  #filledAt = performance.now()

  constructor ({ percent, minPerSecond }: Required<RetryBudgetOptions>) {
    this.#share = percent / 100
    this.#perSecond = minPerSecond
    this.#tokens = minPerSecond
  }

  /** Whether a request may be retried while `inFlight` requests of the pool are in flight (itself included). */
  allow (inFlight: number): boolean {
    if (this.retrying < this.#share * inFlight) return true
    const now = performance.now()
    this.#tokens = Math.min(this.#perSecond, this.#tokens + (now - this.#filledAt) * this.#perSecond / 1000)
    this.#filledAt = now
    if (this.#tokens >= 1) {
      this.#tokens--
      return true
    }
    this.exhausted++
    return false
  }
}
