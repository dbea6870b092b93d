import type { FastifyBaseLogger } from 'fastify'
import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'

interface Count {
  /** Requests in the current window. */
  requests: number
  /** When the window began (ms since the epoch). */
  since: number
}

type Result = Parameters<Parameters<FastifyRateLimitStore['incr']>[1]>[1]

/**
 * One route's in-memory counts: a fixed window per key, as @fastify/rate-limit's own LocalStore, with two differences.
 * Each answer is a copy of the count: LocalStore hands back the live record, which the next request of the same key
 * increments before the rate-limit plugin (awaiting between the two) reads it, so a pipelined burst over `max` was
 * refused whole, each request reading the burst's final count. And the keys are bounded by `maxKeys`, with a warning
 * the first time a key still in its window has to make room for another (its client then starts again at zero).
 *
 * A Map in order of last use, so both ends are O(1): each count touched moves to the back, the front is the least
 * recently used. Counts whose window is over leave from the front as requests come, so memory follows the keys seen
 * within one window.
 */
export class MemoryStore implements FastifyRateLimitStore {
  readonly maxKeys: number
  readonly #counts = new Map<string, Count>()
  readonly #log: FastifyBaseLogger
  #warned = false

  constructor (maxKeys: number, log: FastifyBaseLogger) {
    this.maxKeys = maxKeys
    this.#log = log
  }

  /** Keys counted now. */
  get size (): number {
    return this.#counts.size
  }

  incr (key: string, callback: (error: Error | null, result?: Result) => void, timeWindow: number): void {
    const now = Date.now()
    this.#forgetEnded(now, timeWindow)
    let count = this.#counts.get(key)
    if (count === undefined || count.since + timeWindow <= now) {
      count = { requests: 0, since: now }
      if (this.#counts.size >= this.maxKeys) this.#evict(now, timeWindow)
    }
    count.requests++
    this.#counts.delete(key)
    this.#counts.set(key, count)
    callback(null, { current: count.requests, ttl: count.since + timeWindow - now })
  }

  /** @fastify/rate-limit's per-route copy; goload makes one store per route itself, so a copy starts empty. */
  child (): FastifyRateLimitStore {
    return new MemoryStore(this.maxKeys, this.#log)
  }

  // At most two per request, as nginx's limit_req expires its states: enough to keep up, never a long pause.
  #forgetEnded (now: number, timeWindow: number): void {
    for (let i = 0; i < 2; i++) {
      const [first] = this.#counts
      if (first === undefined || first[1].since + timeWindow > now) return
      this.#counts.delete(first[0])
    }
  }

  #evict (now: number, timeWindow: number): void {
    const [key, count] = this.#counts.entries().next().value!
    this.#counts.delete(key)
    if (count.since + timeWindow > now && !this.#warned) {
      this.#warned = true
      this.#log.warn({ maxKeys: this.maxKeys }, `goload: rate limit counts more than ${this.maxKeys} clients in one window; the least recent ones are forgotten and start again at zero: raise rateLimit.cache, or keep counts in Redis`)
    }
  }
}

/** The store class @fastify/rate-limit makes (it calls `new Store(options)`), holding this route's size and logger. */
export function memoryStore (maxKeys: number, log: FastifyBaseLogger): FastifyRateLimitStoreCtor {
  return class extends MemoryStore {
    constructor () {
      super(maxKeys, log)
    }
  }
}
