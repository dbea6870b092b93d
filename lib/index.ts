import type { FastifyInstance, RegisterOptions } from 'fastify'
import fp from 'fastify-plugin'
import { Agent } from 'undici'
import { HealthChecker } from './health/active.js'
import { Discovery } from './health/discovery.js'
import { Forwarder } from './proxy/forward.js'
import { proxyRoutes } from './proxy/routes.js'
import { agentConnect } from './proxy/connect.js'
import { InvalidOptionError } from './errors.js'
import { normalizeOptions, normalizeRoute, type GoloadOptions, type SharedPoolOptions } from './options.js'
import { hostMatcher } from './routing/host.js'
import { PassiveHealth } from './health/passive.js'
import { Pool } from './pool/pool.js'
import { Registry, type Goload } from './registry.js'

export type { BackendOptions, GoloadOptions, RouteOptions, SharedPoolOptions, HealthCheckOptions, PassiveHealthOptions, Pem, QueueOptions, ResolveOptions, Strategy, TlsOptions } from './options.js'
export type { BackendStats, PoolStats } from './pool/pool.js'
export type { Goload, GoloadPool } from './registry.js'

declare module 'fastify' {
  interface FastifyInstance {
    goload: Goload
  }
}

async function goload (fastify: FastifyInstance, options: GoloadOptions | SharedPoolOptions): Promise<void> {
  const route = normalizeRoute(options)
  // Registering again (another route, another pool) adds to the same decorator, so every pool stays reachable.
  if (!fastify.hasDecorator('goload')) fastify.decorate('goload', new Registry())
  const registry = fastify.goload as Registry
  const forwarder = route.pool === undefined ? await startPool(fastify, registry, options as GoloadOptions) : registry.forwarder(route.pool)

  const duplicate = registry.routes.add({
    host: route.host === undefined ? undefined : hostMatcher(route.host),
    prefix: route.prefix,
    methods: route.methods === undefined ? undefined : new Set(route.methods),
    headers: route.headers,
    target: { forwarder, rewritePrefix: route.rewritePrefix, preserveHost: route.preserveHost }
  })
  if (duplicate !== undefined) {
    throw new InvalidOptionError(`this route (host ${String(route.host ?? 'any')}, prefix "${route.prefix || '/'}") has the same host, prefix, methods and headers as one registered before: no request could ever reach one of them`)
  }
  // Fastify matches the path; one pair of routes per prefix hands every request under it to the table.
  if (registry.claimPrefix(route.prefix)) {
    // logLevel and logSerializers apply to the proxied requests, as to the routes of any plugin registered with them.
    const { logLevel, logSerializers } = options as RegisterOptions
    await fastify.register(proxyRoutes, { prefix: route.prefix, logLevel, logSerializers, table: registry.routes })
  }
}

/** A pool with its forwarder, its health checks and discovery, each started here and stopped on close. */
async function startPool (fastify: FastifyInstance, registry: Registry, options: GoloadOptions): Promise<Forwarder> {
  const config = normalizeOptions(options)
  // Several routes at one place (a canary beside the main pool, say) get names of their own: `/`, `/#2`…
  if (options.name === undefined) config.name = registry.unusedName(config.name)
  // Backends found through DNS join the pool as their addresses come in; the others are in it from the start.
  const discovered = config.backends.filter((backend) => backend.resolve !== undefined)
  const pool = new Pool({
    strategy: config.strategy,
    slowStart: config.slowStart,
    maxEjectedPercent: config.passiveHealth === false ? 0 : config.passiveHealth.maxEjectedPercent,
    queue: config.queue,
    ewmaDecay: config.ewmaDecay
  }, config.backends.filter((backend) => backend.resolve === undefined))
  const passiveHealth = config.passiveHealth === false ? undefined : new PassiveHealth(pool, config.passiveHealth, fastify.log)
  const forwarder = new Forwarder({ pool, config, passiveHealth })
  const { agent } = forwarder
  registry.addPool(config.name, pool, config, forwarder)

  if (discovered.length > 0) {
    const discovery = new Discovery(pool, fastify.log)
    fastify.addHook('onClose', async () => { discovery.stop() })
    await discovery.start(discovered as Parameters<Discovery['start']>[0])
  }

  if (config.healthCheck !== undefined) {
    // Probes have connections of their own, as HAProxy's checks do: a backend whose traffic connections are all
    // busy is busy, not down, and a probe queued behind them would take it out of rotation for being in use.
    const probes = new Agent({ connections: 1, ...agentConnect(config) })
    const checker = new HealthChecker(pool, probes, config.healthCheck, fastify.log)
    checker.start()
    fastify.addHook('onClose', async () => {
      checker.stop()
      await probes.destroy()
    })
  }

  // fastify.close(): Fastify stops accepting and waits for requests in flight; past closeTimeout, cut them.
  let cut: NodeJS.Timeout | undefined
  fastify.addHook('preClose', async () => {
    cut = setTimeout(() => {
      pool.queue.close()
      agent.destroy().catch(() => {})
    }, config.closeTimeout)
  })
  fastify.addHook('onClose', async () => {
    clearTimeout(cut)
    forwarder.close()
    pool.close()
    // Past closeTimeout the agent was destroyed already; close() would reject.
    if (!agent.destroyed) await agent.close()
  })
  return forwarder
}

const plugin = fp(goload, { fastify: '5.x', name: 'fastify-goload' })
export default plugin
export { plugin as goload }
