import { InvalidOptionError, UnknownBackendError, UnknownPoolError } from './errors.js'
import { normalizeBackend, type BackendOptions, type PoolConfig } from './options.js'
import { claimOrigin } from './tls-options.js'
import type { Pool, PoolStats, Worker } from './pool/pool.js'

/** One registration of the plugin: a named pool of backends. */
export interface GoloadPool {
  readonly name: string
  /** Live counts per backend; `pending` is what least-busy orders by. */
  stats(): PoolStats
  /** Adds a backend; it takes traffic at once (ramping up over slowStart). */
  add(backend: string | BackendOptions): void
  /** Stops sending to the backend and resolves once its requests in flight have ended; then it is gone. */
  remove(urlOrId: string): Promise<void>
  /** Stops sending new requests to the backend; those in flight finish. */
  drain(urlOrId: string): void
  /** Takes a drained backend back into rotation. */
  undrain(urlOrId: string): void
}

/** `fastify.goload`: every pool registered on this instance; the GoloadPool methods act on the first one. */
export interface Goload extends Omit<GoloadPool, 'name'> {
  /** A pool by its name option (else its prefix, else 'default'); throws FST_GOLOAD_UNKNOWN_POOL for any other. */
  pool(name: string): GoloadPool
  /** The names of all pools, in registration order. */
  names(): string[]
}

class PoolHandle implements GoloadPool {
  readonly name: string
  readonly #pool: Pool
  readonly #config: PoolConfig

  constructor (name: string, pool: Pool, config: PoolConfig) {
    this.name = name
    this.#pool = pool
    this.#config = config
  }

  stats (): PoolStats {
    return this.#pool.stats()
  }

  add (backend: string | BackendOptions): void {
    const config = normalizeBackend(backend, 'backend', this.#config.maxPending, this.#config.tls)
    if (config.resolve !== undefined) throw new InvalidOptionError('backend.resolve is read at register only: give DNS-discovered backends in the backends option')
    if (this.#pool.find(config.id) !== undefined) {
      throw new InvalidOptionError(`backend "${config.id}" is already in pool "${this.name}"`)
    }
    // The settings of a backend that left go with it; those of one still here hold for its URL.
    if (this.#pool.find(config.url) === undefined) this.#config.backendTls.delete(config.url)
    if (!claimOrigin(this.#config.backendTls, config)) {
      throw new InvalidOptionError(`backend "${config.id}" has the URL of a backend in pool "${this.name}" with other tls settings: one connection pool serves each origin`)
    }
    this.#pool.add(config)
  }

  remove (urlOrId: string): Promise<void> {
    return this.#pool.remove(this.#find(urlOrId))
  }

  drain (urlOrId: string): void {
    this.#pool.setDraining(this.#find(urlOrId), true)
  }

  undrain (urlOrId: string): void {
    this.#pool.setDraining(this.#find(urlOrId), false)
  }

  #find (urlOrId: string): Worker {
    const worker = this.#pool.find(urlOrId)
    if (worker === undefined) throw new UnknownBackendError(JSON.stringify(urlOrId))
    return worker
  }
}

export class Registry implements Goload {
  readonly #pools = new Map<string, GoloadPool>()

  /** Called by the plugin for each registration. */
  addPool (name: string, pool: Pool, config: PoolConfig): void {
    if (this.#pools.has(name)) {
      throw new InvalidOptionError(`name "${name}" is already taken by another registration on this instance: give each registration its own name or prefix`)
    }
    this.#pools.set(name, new PoolHandle(name, pool, config))
  }

  names (): string[] {
    return [...this.#pools.keys()]
  }

  pool (name: string): GoloadPool {
    const pool = this.#pools.get(name)
    if (pool === undefined) throw new UnknownPoolError(JSON.stringify(name))
    return pool
  }

  stats (): PoolStats { return this.#first().stats() }
  add (backend: string | BackendOptions): void { this.#first().add(backend) }
  remove (urlOrId: string): Promise<void> { return this.#first().remove(urlOrId) }
  drain (urlOrId: string): void { this.#first().drain(urlOrId) }
  undrain (urlOrId: string): void { this.#first().undrain(urlOrId) }

  #first (): GoloadPool {
    return this.#pools.values().next().value!
  }
}
