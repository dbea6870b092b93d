import type { FastifyInstance, RegisterOptions } from 'fastify'
import fp from 'fastify-plugin'
import { Agent } from 'undici'
import { HealthChecker } from './health/active.js'
import { Discovery } from './health/discovery.js'
import { Forwarder } from './proxy/forward.js'
import { proxyRoutes } from './proxy/routes.js'
import { agentConnect } from './proxy/connect.js'
import { normalizeOptions, type GoloadOptions } from './options.js'
import { PassiveHealth } from './health/passive.js'
import { Pool } from './pool/pool.js'
import { Registry, type Goload } from './registry.js'

export type { BackendOptions, GoloadOptions, HealthCheckOptions, PassiveHealthOptions, Pem, QueueOptions, ResolveOptions, Strategy, TlsOptions } from './options.js'
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
  const passiveHealth = config.passiveHealth === false ? undefined : new PassiveHealth(pool, config.passiveHealth, fastify.log)

  // Registering again (another prefix, another pool) adds to the same decorator, so every pool stays reachable.
  if (!fastify.hasDecorator('goload')) fastify.decorate('goload', new Registry())
  const registry = fastify.goload as Registry
  registry.addPool(config.name, pool, config)

  if (discovered.length > 0) {
    const discovery = new Discovery(pool, fastify.log)
    fastify.addHook('onClose', async () => { discovery.stop() })
    await discovery.start(discovered as Parameters<Discovery['start']>[0])
  }

  const forwarder = new Forwarder({ pool, config, passiveHealth })
  const { agent } = forwarder

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

  // logLevel and logSerializers apply to the proxied requests, as to the routes of any plugin registered with them.
  const { logLevel, logSerializers } = options as RegisterOptions
  await fastify.register(proxyRoutes, { prefix: config.prefix, logLevel, logSerializers, forwarder })
}

const plugin = fp(goload, { fastify: '5.x', name: 'fastify-goload' })
export default plugin
export { plugin as goload }
