import { InvalidOptionError, UnknownPoolError } from './errors.js'
import type { Pool, PoolStats } from './pool.js'

/** One registration of the plugin: a named pool of backends. */
export interface GoloadPool {
  readonly name: string
  /** Live counts per backend; `pending` is what least-busy orders by. */
  stats(): PoolStats
}

/** `fastify.goload`: every pool registered on this instance, and the first one's stats as a shortcut. */
export interface Goload {
  /** Stats of the first pool registered: with one registration, the only one. */
  stats(): PoolStats
  /** A pool by its name option (else its prefix, else 'default'); throws FST_GOLOAD_UNKNOWN_POOL for any other. */
  pool(name: string): GoloadPool
  /** The names of all pools, in registration order. */
  names(): string[]
}

export class Registry implements Goload {
  readonly #pools = new Map<string, GoloadPool>()

  add (name: string, pool: Pool): void {
    if (this.#pools.has(name)) {
      throw new InvalidOptionError(`name "${name}" is already taken by another registration on this instance: give each registration its own name or prefix`)
    }
    this.#pools.set(name, { name, stats: () => pool.stats() })
  }

  names (): string[] {
    return [...this.#pools.keys()]
  }

  pool (name: string): GoloadPool {
    const pool = this.#pools.get(name)
    if (pool === undefined) throw new UnknownPoolError(JSON.stringify(name))
    return pool
  }

  stats (): PoolStats {
    return this.#pools.values().next().value!.stats()
  }
}
