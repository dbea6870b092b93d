import type { FastifyInstance, RegisterOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { Forwarder } from './proxy/forward.js'
import { startLimiter } from './proxy/rate-limit.js'
import { keepClientAddresses } from './proxy/client-address.js'
import { proxyRoutes } from './proxy/routes.js'
import { takeUpgrades } from './proxy/upgrade-takeover.js'
import { InvalidOptionError } from './errors.js'
import { registerMetrics } from './metrics/plugin.js'
import { startMirror } from './policy/mirror.js'
import { normalizeOptions, normalizeRoute, type GoloadOptions, type RouteConfig, type SharedPoolOptions, type SplitOptions } from './options.js'
import { Split } from './policy/split.js'
import { hostMatcher } from './routing/host.js'
import type { ProxyRoute } from './routing/proxy-route.js'
import { conditionsOf } from './routing/table.js'
import { kPoolRuntime, kPoolRuntimes, PoolRuntime } from './runtime.js'
import { Registry, type Goload } from './registry.js'
import { startTracing } from './tracing/start.js'

export type { BackendOptions, GoloadOptions, MirrorOptions, RouteOptions, SharedPoolOptions, SplitOptions, SplitPoolOptions, StickyOptions, HashOn, HealthCheckOptions, PassiveHealthOptions, Pem, QueueOptions, RateLimitOptions, ResolveOptions, Strategy, TlsOptions, TracingOptions } from './options.js'
export type { CircuitBreakerOptions, RetryBudgetOptions } from './options.js'
export type { BackendStats, PoolStats } from './pool/pool.js'
export type { Goload, GoloadPool } from './registry.js'

declare module 'fastify' {
  interface FastifyInstance {
    goload: Goload
  }
}

async function goload (fastify: FastifyInstance, options: GoloadOptions | SharedPoolOptions | SplitOptions): Promise<void> {
  const route = normalizeRoute(options)
  // Registering again (another route, another pool) adds to the same decorator, so every pool stays reachable.
  if (!fastify.hasDecorator('goload')) {
    const created = new Registry()
    fastify.decorate('goload', created)
    keepClientAddresses(fastify.server)
    // Upgrades go through the server's 'upgrade' event, which Fastify leaves alone: once the app is ready (every
    // listener of it added), goload takes the event (see takeUpgrades).
    fastify.addHook('onReady', async () => { takeUpgrades(fastify, created.routes) })
  }
  const registry = fastify.goload as Registry
  if (route.metrics !== undefined) registerMetrics(fastify, registry, route.metrics)
  const kept = (options as { [kPoolRuntime]?: PoolRuntime })[kPoolRuntime]
  // Reachable by name like the instance's own pools (stats, routes that share it), but not closed with it.
  for (const runtime of [kept, ...(options as { [kPoolRuntimes]?: PoolRuntime[] })[kPoolRuntimes] ?? []]) {
    if (runtime !== undefined && !registry.names().includes(runtime.config.name)) registry.addPool(runtime.config.name, runtime.pool, runtime.config, runtime.forwarder)
  }
  const split = route.pools === undefined ? undefined : startSplit(registry, route)
  const forwarder = split !== undefined
    ? split.pools[0].forwarder
    : kept !== undefined
      ? kept.forwarder
      : route.pool === undefined ? await startPool(fastify, registry, options as GoloadOptions) : registry.forwarder(route.pool)

  const mirror = route.mirror === undefined ? undefined : startMirror(fastify, registry, options.mirror!, route.mirror, forwarder)
  const tracing = route.tracing === undefined ? undefined : await startTracing(fastify, registry, route.tracing, route.prefix, route.host?.toString())
  const target: ProxyRoute = { forwarder, split, rewritePrefix: route.rewritePrefix, preserveHost: route.preserveHost, websocket: route.websocket, accessLog: route.accessLog, limiter: undefined, mirror, tracing }
  const conditions = {
    host: route.host === undefined ? undefined : hostMatcher(route.host),
    prefix: route.prefix,
    methods: route.methods === undefined ? undefined : new Set(route.methods),
    headers: route.headers
  }
  const duplicate = registry.routes.add({ ...conditions, target })
  if (duplicate !== undefined) {
    throw new InvalidOptionError(`this route (host ${String(route.host ?? 'any')}, prefix "${route.prefix || '/'}") has the same host, prefix, methods and headers as one registered before: no request could ever reach one of them`)
  }
  // Counted per route: balancers sharing a Redis share the counts of the routes they have alike.
  if (route.rateLimit !== undefined) target.limiter = await startLimiter(fastify, route.rateLimit, `goload-rate-limit:${conditionsOf(conditions)}:`)
  // Fastify matches the path; one pair of routes per prefix hands every request under it to the table.
  if (registry.claimPrefix(route.prefix)) {
    // logLevel and logSerializers apply to the proxied requests, as to the routes of any plugin registered with them.
    const { logLevel, logSerializers } = options as RegisterOptions
    await fastify.register(proxyRoutes, { prefix: route.prefix, logLevel, logSerializers, table: registry.routes })
  }
}

/** A split route's pools, each registered before, and its id: its name, else its host and prefix. */
function startSplit (registry: Registry, route: RouteConfig): Split {
  const pools = route.pools!.map(({ pool, weight }, index) => ({ name: pool, forwarder: registry.forwarder(pool, `pools[${index}].pool`), weight }))
  const host = route.host === undefined ? '' : String(route.host)
  const split = new Split(route.name ?? registry.unusedSplitId(host + (route.prefix || '/')), pools)
  registry.addSplit(split)
  return split
}

/** A pool of this registration's own: started here, closed with the instance. */
async function startPool (fastify: FastifyInstance, registry: Registry, options: GoloadOptions): Promise<Forwarder> {
  const config = normalizeOptions(options)
  // Several routes at one place (a canary beside the main pool, say) get names of their own: `/`, `/#2`…
  if (options.name === undefined) config.name = registry.unusedName(config.name)
  const runtime = await PoolRuntime.start(config, fastify.log)
  registry.addPool(config.name, runtime.pool, config, runtime.forwarder)
  // fastify.close(): Fastify stops accepting and waits for requests in flight; past closeTimeout, cut them.
  fastify.addHook('preClose', async () => { runtime.closing() })
  fastify.addHook('onClose', async () => { await runtime.close() })
  return runtime.forwarder
}

const plugin = fp(goload, { fastify: '5.x', name: 'fastify-goload' })
export default plugin
export { plugin as goload }
