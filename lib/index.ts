import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Discovery } from './health/discovery.js'
import { proxyRoutes } from './proxy/forward.js'
import { normalizeOptions, type GoloadOptions } from './options.js'
import { PassiveHealth } from './health/passive.js'
import { Pool } from './pool/pool.js'
import { Registry, type Goload } from './registry.js'

export type { BackendOptions, GoloadOptions, HealthCheckOptions, PassiveHealthOptions, QueueOptions, ResolveOptions, Strategy } from './options.js'
export type { BackendStats, PoolStats } from './pool/pool.js'
export type { Goload, GoloadPool } from './registry.js'

declare module 'fastify' {
  interface FastifyInstance {
    goload: Goload
  }
}

async function goload (fastify: FastifyInstance, options: GoloadOptions): Promise<void> {
  const config = normalizeOptions(options)
  // Backends found through DNS join the pool as their addresses come in; the others are in it from the start.
  const discovered = config.backends.filter((backend) => backend.resolve !== undefined)
  const pool = new Pool({
    strategy: config.strategy,
    slowStart: config.slowStart,
    maxEjectedPercent: config.passiveHealth === false ? 0 : config.passiveHealth.maxEjectedPercent,
    queue: config.queue,
    ewmaDecay: config.ewmaDecay
  }, config.backends.filter((backend) => backend.resolve === undefined))
  const passiveHealth = config.passiveHealth === false ? undefined : new PassiveHealth(pool, config.passiveHealth)

  // Registering again (another prefix, another pool) adds to the same decorator, so every pool stays reachable.
  if (!fastify.hasDecorator('goload')) fastify.decorate('goload', new Registry())
  const registry = fastify.goload as Registry
  registry.addPool(config.name, pool, config)

  if (discovered.length > 0) {
    const discovery = new Discovery(pool, fastify.log)
    fastify.addHook('onClose', async () => { discovery.stop() })
    await discovery.start(discovered as Parameters<Discovery['start']>[0])
  }

  await fastify.register(proxyRoutes, { prefix: config.prefix, pool, config, passiveHealth })
}

const plugin = fp(goload, { fastify: '5.x', name: 'fastify-goload' })
export default plugin
export { plugin as goload }
