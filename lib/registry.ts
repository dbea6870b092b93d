import type { Registry as PromRegistry } from 'prom-client'
import { closest } from './config/suggest.js'
import { InvalidOptionError, UnknownBackendError, UnknownPoolError } from './errors.js'
import { h2cOrigin, normalizeBackend, type BackendOptions, type PoolConfig } from './options.js'
import { claimOrigin } from './tls-options.js'
import type { Pool, PoolStats, Worker } from './pool/pool.js'
import type { Forwarder } from './proxy/forward.js'
import { splitOf, type Split } from './policy/split.js'
import type { Sticky } from './policy/sticky.js'
import type { ProxyRoute } from './routing/proxy-route.js'
import { RouteTable } from './routing/table.js'

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

/** A pool as the registry holds it. */
export interface PoolEntry {
  readonly name: string
  readonly pool: Pool
  readonly config: PoolConfig
  /** What serves the pool: its circuit breaker and retry budget, when it has them (tests may leave it out). */
  readonly forwarder?: Forwarder
  /** The pool's sticky cookie counts, when it has one. */
  readonly sticky?: Sticky['counts']
}

/** `fastify.goload`: every pool registered on this instance; the GoloadPool methods act on the first one. */
export interface Goload extends Omit<GoloadPool, 'name'> {
  /** A pool by its name option (else its prefix, else 'default'); throws FST_GOLOAD_UNKNOWN_POOL for any other. */
  pool(name: string): GoloadPool
  /** The names of all pools, in registration order. */
  names(): string[]
  /** A split route's weights now, by pool (the route by its `name`, else its host and prefix: `/`, `api.example.com/v1`). */
  weights(route: string): Record<string, number>
  /**
   * New weights for some or all of a split route's pools, from the next request on (the admin's PUT /routes/:route/weights).
   * Throws FST_GOLOAD_UNKNOWN_ROUTE for a route that does not split, FST_GOLOAD_INVALID_OPTION for weights all 0,
   * an unknown pool or a weight that is not a whole number.
   */
  setWeights(route: string, weights: Record<string, number>): void
  /**
   * The prom-client Registry the instance's metrics are on (the first one given with the `metrics` option, or goload's
   * own for `metrics: true`); undefined without the option. Expose it where you like: `await metrics.metrics()`.
   */
  readonly metrics: PromRegistry | undefined
}

/** The GoloadPool of one pool: the plugin's fastify.goload.pool(name), and the admin API's actions. */
export class PoolHandle implements GoloadPool {
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

  /** `key`: what the backend is called in error messages. */
  add (backend: string | BackendOptions, key = 'backend'): void {
    const config = normalizeBackend(backend, key, this.#config.maxPending, this.#config.tls)
    if (config.resolve !== undefined) throw new InvalidOptionError(`${key}.resolve is read at register only: give DNS-discovered backends in the backends option`)
    if (this.#pool.find(config.id) !== undefined) {
      throw new InvalidOptionError(`backend "${config.id}" is already in pool "${this.name}"`)
    }
    // The settings of a backend that left go with it; those of one still here hold for its URL.
    if (this.#pool.find(config.url) === undefined) this.#config.backendTls.delete(config.url)
    if (!claimOrigin(this.#config.backendTls, config)) {
      throw new InvalidOptionError(`backend "${config.id}" has the URL of a backend in pool "${this.name}" with other tls settings: one connection pool serves each origin`)
    }
    const h2c = h2cOrigin(config.url)
    const clash = this.#pool.workers.find((worker) => worker.origin === (h2c ?? config.url) && worker.url !== config.url)
    if (clash !== undefined) {
      throw new InvalidOptionError(`backend "${config.id}" is ${config.url} and backend "${clash.id}" ${clash.url}: one address speaks one protocol, h2c or HTTP/1.1`)
    }
    if (h2c !== undefined) this.#config.h2c.add(h2c)
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
  metrics: PromRegistry | undefined = undefined

  /** Every route of the instance, most specific first. */
  readonly routes = new RouteTable<ProxyRoute>()
  readonly #forwarders = new Map<string, Forwarder>()
  readonly #entries: PoolEntry[] = []
  readonly #prefixes = new Set<string>()
  /** The routes that split between pools, in registration order. */
  readonly splits: Split[] = []

  /** Called by the plugin for each registration that makes a pool. */
  addPool (name: string, pool: Pool, config: PoolConfig, forwarder: Forwarder): void {
    if (this.#pools.has(name)) {
      throw new InvalidOptionError(`name "${name}" is already taken by another registration on this instance: give each registration its own name, or share the pool with pool: "${name}"`)
    }
    this.#pools.set(name, new PoolHandle(name, pool, config))
    this.#forwarders.set(name, forwarder)
    this.#entries.push({ name, pool, config, forwarder, sticky: forwarder.sticky?.counts })
  }

  /** The pools themselves, for what reads them live (metrics, the admin API): not public API. */
  entries (): readonly PoolEntry[] {
    return this.#entries
  }

  /** `name`, or the first of `name#2`, `name#3`… that no pool has yet. */
  unusedName (name: string): string {
    let unused = name
    for (let n = 2; this.#pools.has(unused); n++) unused = `${name}#${n}`
    return unused
  }

  addSplit (split: Split): void {
    if (this.splits.some((other) => other.id === split.id)) {
      throw new InvalidOptionError(`name "${split.id}" is already taken by another split route on this instance: give each its own name`)
    }
    this.splits.push(split)
  }

  /** `id`, or the first of `id#2`, `id#3`… that no split route has yet. */
  unusedSplitId (id: string): string {
    let unused = id
    for (let n = 2; this.splits.some((split) => split.id === unused); n++) unused = `${id}#${n}`
    return unused
  }

  /** The forwarder of a pool registered before, for a route that shares it. */
  forwarder (name: string, key = 'pool'): Forwarder {
    const forwarder = this.#forwarders.get(name)
    if (forwarder === undefined) {
      const suggestion = closest(name, this.names())
      throw new InvalidOptionError(`${key}: no pool named "${name}" is registered before this route (${suggestion === undefined ? `pools: ${this.names().join(', ') || 'none'}` : `did you mean ${suggestion}?`})`)
    }
    return forwarder
  }

  /** True the first time a prefix is claimed: its Fastify routes are to be registered. */
  claimPrefix (prefix: string): boolean {
    if (this.#prefixes.has(prefix)) return false
    this.#prefixes.add(prefix)
    return true
  }

  names (): string[] {
    return [...this.#pools.keys()]
  }

  weights (route: string): Record<string, number> {
    return Object.fromEntries(splitOf(this.splits, route).pools.map((pool) => [pool.name, pool.weight]))
  }

  setWeights (route: string, weights: Record<string, number>): void {
    splitOf(this.splits, route).setWeights(weights)
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
