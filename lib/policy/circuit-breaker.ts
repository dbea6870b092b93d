import type { FastifyBaseLogger } from 'fastify'
import type { CircuitBreakerOptions } from '../options.js'

/** The states by the number goload_pool_circuit_state gives them. */
export const circuitStates = ['closed', 'open', 'half-open'] as const
export type CircuitState = typeof circuitStates[number]
const closed = 0
const open = 1
const halfOpen = 2

/** The window is a ring of this many buckets: a failure leaves it within a tenth of `window` of its time. */
const buckets = 10

/** A request the breaker let through: it carries the breaker's epoch then, so a late result is told from a current one. */
export interface Admitted {
  circuitEpoch: number
}

/**
 * A pool's circuit breaker (Traefik's, with Envoy's and Resilience4j's half-open probes). Closed, it counts the
 * pool's answers in a sliding window; past errorRatio of them failed (and minRequests), it opens: requests are
 * answered 503 at once for openFor, then half-open lets halfOpenRequests through as probes. All of them succeed and it
 * closes with an empty window; one fails and it opens again.
 *
 * Counted once per request, by its final answer: a backend's 5xx, or the balancer's own 502/504. Answers the pool
 * sheds itself (queue full, no backend, the open circuit's 503) are the balancer's doing, not the backends', and a
 * client that left before an answer says nothing about them: neither counts.
 */
export class CircuitBreaker {
  /** 0 closed, 1 open, 2 half-open. */
  state = closed
  /** Bumped at each change of state: what was admitted before reports to nothing. */
  epoch = 0
  /** Changes of state so far, by the state entered. */
  readonly transitions: Record<CircuitState, number> = { closed: 0, open: 0, 'half-open': 0 }
  readonly #options: Required<CircuitBreakerOptions>
  readonly #log: FastifyBaseLogger
  readonly #bucketMs: number
  readonly #totals = new Uint32Array(buckets)
  readonly #failures = new Uint32Array(buckets)
  #total = 0
  #failed = 0
  #bucket = 0
  /** performance.now() at which the current bucket ends. */
  #bucketEnds = 0
  /** performance.now() at which an open circuit turns half-open. */
  #openUntil = 0
  #probes = 0
  #passed = 0
  #timer: NodeJS.Timeout | undefined
  readonly #observers = new Set<() => void>()

  constructor (options: Required<CircuitBreakerOptions>, log: FastifyBaseLogger, pool: string) {
    this.#options = options
    this.#log = log.child({ pool })
    this.#bucketMs = options.window / buckets
  }

  get stateName (): CircuitState {
    return circuitStates[this.state]
  }

  /** Whether this request may go to the backends; half-open, it is then one of the probes. */
  admit (request: Admitted): boolean {
    if (this.state === open || (this.state === halfOpen && this.#probes >= this.#options.halfOpenRequests)) return false
    if (this.state === halfOpen) this.#probes++
    request.circuitEpoch = this.epoch
    return true
  }

  /** Seconds a refused client is told to wait: what is left of openFor, rounded up; at least 1. */
  retryAfter (): number {
    return Math.max(1, Math.ceil((this.#openUntil - performance.now()) / 1000))
  }

  /** The final answer to an admitted request: `failed` for a 5xx or the balancer's 502/504. */
  record (request: Admitted, failed: boolean): void {
    if (request.circuitEpoch !== this.epoch) return
    request.circuitEpoch = -1
    if (this.state === halfOpen) {
      if (failed) this.#open()
      else if (++this.#passed >= this.#options.halfOpenRequests) this.#close()
      return
    }
    const now = performance.now()
    if (now >= this.#bucketEnds) this.#advance(now)
    this.#totals[this.#bucket]++
    this.#total++
    if (!failed) return
    this.#failures[this.#bucket]++
    this.#failed++
    if (this.#total >= this.#options.minRequests && this.#failed >= this.#options.errorRatio * this.#total) this.#open()
  }

  /** An admitted request ended without an answer that counts: a probe's place goes to the next request. */
  ended (request: Admitted): void {
    if (request.circuitEpoch !== this.epoch) return
    request.circuitEpoch = -1
    if (this.state === halfOpen) this.#probes--
  }

  /** Calls `observer` on each change of state (the admin's event stream); returns what stops it. */
  watch (observer: () => void): () => void {
    this.#observers.add(observer)
    return () => { this.#observers.delete(observer) }
  }

  close (): void {
    clearTimeout(this.#timer)
  }

  /** Moves the ring on to the bucket `now` falls in, emptying the buckets passed. */
  #advance (now: number): void {
    if (now - this.#bucketEnds >= this.#options.window) {
      this.#reset(now)
      return
    }
    while (now >= this.#bucketEnds) {
      this.#bucket = (this.#bucket + 1) % buckets
      this.#total -= this.#totals[this.#bucket]
      this.#failed -= this.#failures[this.#bucket]
      this.#totals[this.#bucket] = 0
      this.#failures[this.#bucket] = 0
      this.#bucketEnds += this.#bucketMs
    }
  }

  #reset (now: number): void {
    this.#totals.fill(0)
    this.#failures.fill(0)
    this.#total = 0
    this.#failed = 0
    this.#bucketEnds = now + this.#bucketMs
  }

  #open (): void {
    const { openFor } = this.#options
    // Closed, the window says why; half-open, a probe failed.
    const why = this.state === closed ? { failed: this.#failed, requests: this.#total } : { probeFailed: true }
    this.#enter(open)
    this.#openUntil = performance.now() + openFor
    this.#log.warn({ circuit: 'open', ...why, ms: openFor }, 'goload: circuit open, the pool answers 503 without its backends')
    this.#timer = setTimeout(() => {
      this.#enter(halfOpen)
      this.#probes = 0
      this.#passed = 0
      this.#log.info({ circuit: 'half-open', probes: this.#options.halfOpenRequests }, 'goload: circuit half-open, probe requests go through')
    }, openFor).unref()
  }

  #close (): void {
    this.#enter(closed)
    this.#reset(performance.now())
    this.#log.info({ circuit: 'closed' }, 'goload: circuit closed, the probes succeeded')
  }

  #enter (state: number): void {
    this.state = state
    this.epoch++
    this.transitions[circuitStates[state]]++
    for (const observer of this.#observers) observer()
  }
}
