import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import goload from '../index.js'
import type { GoloadOptions, SharedPoolOptions, Strategy } from '../options.js'
import type { GoloadFileConfig, ListenerConfig, RouteConfig } from '../config/schema.js'

/** `goload --backend URL…`: the config file those flags stand for, one listener with one route to one pool. */
export function configOfBackends ({ backends, port, host, strategy }: { backends: string[], port: number, host: string, strategy?: string }): GoloadFileConfig {
  return {
    listeners: [{ port, host, routes: [{ path: '/', pool: 'default' }] }],
    pools: { default: { backends, ...(strategy === undefined ? {} : { strategy: strategy as Strategy }) } }
  }
}

/**
 * One listener's Fastify app, built only by registering the plugin, as a coder would: the first route to a pool
 * registers the pool (its options and the route's), later routes to it on this listener share it with `pool: name`.
 * A pool used by two listeners is two pools for now, one in each app, with counts of their own.
 */
export async function buildApp (listener: ListenerConfig, pools: GoloadFileConfig['pools'], logger: FastifyServerOptions['logger']): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  const registered = new Set<string>()
  for (const route of listener.routes) {
    const routeOptions = pluginRoute(route)
    if (registered.has(route.pool)) {
      await app.register(goload, { ...routeOptions, pool: route.pool } satisfies SharedPoolOptions)
    } else {
      registered.add(route.pool)
      await app.register(goload, { ...pools[route.pool], ...routeOptions, name: route.pool } as GoloadOptions)
    }
  }
  drainKeepAlive(app)
  return app
}

/** A route of the file as the plugin's route options: `path` is the plugin's `prefix`. */
function pluginRoute ({ pool, path, ...route }: RouteConfig): Omit<SharedPoolOptions, 'pool'> {
  return { ...route, prefix: path }
}

// While closing, answer `Connection: close` and drop connections as they go idle: Node 20's server.close() leaves
// idle keep-alive sockets open until keepAliveTimeout, and a client would keep sending to a server on its way out.
function drainKeepAlive (app: FastifyInstance): void {
  let closing = false
  app.addHook('preClose', async () => {
    closing = true
    app.server.closeIdleConnections()
  })
  app.addHook('onSend', async (request, reply) => {
    if (closing) reply.header('connection', 'close')
  })
}
