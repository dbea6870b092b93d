import type { FastifyBaseLogger } from 'fastify'
import { HealthChecker } from './health/active.js'
import { KubernetesDiscovery } from './discovery/kubernetes.js'
import { Discovery } from './health/discovery.js'
import { PassiveHealth } from './health/passive.js'
import { CircuitBreaker } from './policy/circuit-breaker.js'
import { RetryBudget } from './policy/retry-budget.js'
import { h2cOrigin, type BackendConfig, type PoolConfig } from './options.js'
import { Pool, type Worker } from './pool/pool.js'
import { agentConnect } from './proxy/connect.js'
import { Forwarder } from './proxy/forward.js'
import { RenewableAgent } from './proxy/renewable-agent.js'
import { sameTls } from './tls-options.js'

/**
 * The registration option through which the goload command hands the plugin a pool it keeps across reloads, in
 * place of `pool: 'name'`: the route sends to it, and the instance neither owns nor closes it. Not public API yet.
 */
export const kPoolRuntime = Symbol.for('fastify-goload.poolRuntime')

/** The same for a split route (`pools`): the kept pools it splits between. Not public API yet. */
export const kPoolRuntimes = Symbol.for('fastify-goload.poolRuntimes')

/**
 * A pool and everything that serves it: its forwarder (undici agent), passive and active health, DNS discovery.
 * It lives as long as its owner says: the Fastify instance that registered it (the plugin closes it with the
 * instance), or the goload command, which keeps it across reloads while the apps routing to it come and go.
 */
export class PoolRuntime {
  readonly config: PoolConfig
  readonly pool: Pool
  readonly forwarder: Forwarder
  readonly #stops: Array<() => Promise<void> | void> = []
  /** The health probes' connections, when the pool has active health checks. */
  readonly #probes: RenewableAgent | undefined
  /** The pool's Kubernetes discovery, when it has one: the backends it found are its own to drain and remove. */
  #kubernetes: KubernetesDiscovery | undefined
  #cut: NodeJS.Timeout | undefined

  private constructor (config: PoolConfig, log: FastifyBaseLogger) {
    this.config = config
    // Backends found through DNS join the pool as their addresses come in; the others are in it from the start.
    this.pool = new Pool({
      strategy: config.strategy,
      slowStart: config.slowStart,
      maxEjectedPercent: config.passiveHealth === false ? 0 : config.passiveHealth.maxEjectedPercent,
      queue: config.queue,
      ewmaDecay: config.ewmaDecay,
      balanceFactor: config.balanceFactor
    }, config.backends.filter((backend) => backend.resolve === undefined))
    const passiveHealth = config.passiveHealth === false ? undefined : new PassiveHealth(this.pool, config.passiveHealth, log)
    this.forwarder = new Forwarder({
      pool: this.pool,
      config,
      passiveHealth,
      circuit: config.circuitBreaker === undefined ? undefined : new CircuitBreaker(config.circuitBreaker, log, config.name),
      retryBudget: config.retryBudget === undefined ? undefined : new RetryBudget(config.retryBudget)
    })
    // A backend removed (by remove() or a reload) keeps its open upgraded connections for closeTimeout at most.
    this.pool.onRemove = (worker) => {
      setTimeout(() => { this.forwarder.cut(worker) }, config.closeTimeout).unref()
    }
    if (config.healthCheck !== undefined) {
      // Probes have connections of their own, as HAProxy's checks do: a backend whose traffic connections are all
      // busy is busy, not down, and a probe queued behind them would take it out of rotation for being in use.
      const probes = this.#probes = new RenewableAgent({ connections: 1, ...agentConnect(config) })
      const checker = new HealthChecker(this.pool, probes, config.healthCheck, log)
      checker.start()
      this.#stops.push(() => checker.stop(), async () => { await probes.destroy() })
    }
  }

  /** Builds the pool from checked options and starts what serves it; resolves once DNS has answered, if asked. */
  static async start (config: PoolConfig, log: FastifyBaseLogger): Promise<PoolRuntime> {
    const runtime = new PoolRuntime(config, log)
    const discovered = config.backends.filter((backend) => backend.resolve !== undefined)
    if (discovered.length > 0) {
      const discovery = new Discovery(runtime.pool, log, config.h2c)
      runtime.#stops.push(() => discovery.stop())
      await discovery.start(discovered as Array<BackendConfig & { resolve: NonNullable<BackendConfig['resolve']> }>)
    }
    const kubernetes = config.discovery?.kubernetes
    if (kubernetes !== undefined) {
      const discovery = runtime.#kubernetes = new KubernetesDiscovery(runtime.pool, log, kubernetes, config.maxPending)
      runtime.#stops.push(() => discovery.stop())
      await discovery.start()
    }
    return runtime
  }

  /** A backend discovery found, rather than one the options list: a reload leaves it to the discovery. */
  discovered (worker: Worker): boolean {
    return this.#kubernetes?.owns(worker) ?? false
  }

  /** A backend joins the running pool, connecting with its own tls. */
  add (backend: BackendConfig): void {
    this.#connectAs(backend)
    this.pool.add(backend)
  }

  /** A backend's weight, maxPending or tls changed (a reload): applied to it in place, its counts kept. */
  update (worker: Worker, backend: BackendConfig): void {
    if (worker.weight !== backend.weight || worker.maxPending !== backend.maxPending) this.pool.configure(worker, backend)
    this.#connectAs(backend)
  }

  /**
   * Records the tls an https backend's connections are made with, or that an address speaks h2c (or no longer does);
   * where that differs from what its origin's connections were made with so far, new requests go over new
   * connections (see RenewableAgent).
   */
  #connectAs ({ url, tls }: BackendConfig): void {
    const h2c = h2cOrigin(url)
    const origin = h2c ?? url
    if ((h2c !== undefined) !== this.config.h2c.has(origin) && !url.startsWith('https:')) {
      if (h2c === undefined) this.config.h2c.delete(origin)
      else this.config.h2c.add(origin)
      this.#renew(origin)
      return
    }
    if (!url.startsWith('https:')) return
    const { backendTls } = this.config
    const before = backendTls.has(url) ? backendTls.get(url) : this.config.tls
    backendTls.set(url, tls)
    if (sameTls(before, tls)) return
    this.#renew(url)
  }

  #renew (origin: string): void {
    this.forwarder.agent.renew(origin)
    this.#probes?.renew(origin)
  }

  /**
   * Replaced by a reload: serves what it has, the requests in flight and those waiting in its queue, then closes.
   * Past closeTimeout, what is left is cut (see closing()), WebSockets included.
   */
  async retire (): Promise<void> {
    this.closing()
    // No backend may join while the pool empties.
    await this.#kubernetes?.stop()
    const { pool } = this
    // Its workers serve the queue as they free up; removed only once it is empty, so they go on taking from it.
    while (pool.queue.length > 0) await pool.queue.emptied()
    await Promise.all([...pool.workers].map((worker) => pool.remove(worker)))
    await this.close()
  }

  /** The close begins: requests in flight may finish for closeTimeout; past it they are cut and the queue answered. */
  closing (): void {
    const { pool, forwarder: { agent } } = this
    this.#cut ??= setTimeout(() => {
      this.forwarder.cut()
      pool.queue.close()
      agent.destroy().catch(() => {})
    }, this.config.closeTimeout)
  }

  /** Stops the timers and probes and closes the connections to the backends, once the requests in flight are done. */
  async close (): Promise<void> {
    clearTimeout(this.#cut)
    for (const stop of this.#stops) await stop()
    this.forwarder.close()
    this.pool.close()
    const { agent } = this.forwarder
    // Past closeTimeout the agent was destroyed already; close() would reject.
    if (!agent.destroyed) await agent.close()
  }
}
