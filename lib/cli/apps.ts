import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { requestLogging } from '../fastify-options.js'
import goload from '../index.js'
import type { SharedPoolOptions, Strategy, TracingOptions } from '../options.js'
import { kPoolRuntime, kPoolRuntimes, type PoolRuntime } from '../runtime.js'
import type { GoloadFileConfig, ListenerConfig } from '../config/schema.js'
import { noRoute } from './no-route.js'
import { redirectToHttps } from './redirect.js'

/** `goload --backend URL…`: the config file those flags stand for, one listener with one route to one pool. */
export function configOfBackends ({ backends, port, host, strategy }: { backends: string[], port: number, host: string, strategy?: string }): GoloadFileConfig {
  return {
    listeners: [{ port, host, routes: [{ path: '/', pool: 'default' }] }],
    pools: { default: { backends, ...(strategy === undefined ? {} : { strategy: strategy as Strategy }) } }
  }
}

/**
 * One listener's Fastify app, built only by registering the plugin, as a coder would, each route with the kept pool
 * it sends to: the app neither owns nor closes the pools, so a reload can replace the app and keep them. It never
 * listens: the listener's long-lived server hands it requests (see Listeners). The file's `tracing` goes to every
 * route: the app has one exporter, which a reload's new app replaces (the old one exports its last spans as it closes).
 */
export async function buildApp (listener: ListenerConfig, pools: Map<string, PoolRuntime>, log: FastifyBaseLogger, closing: () => boolean, tracing?: TracingOptions): Promise<FastifyInstance> {
  // One logger for every app, made once (a transport is a worker thread). A proxied request has its one access
  // line: Fastify's own pair ("incoming request", "request completed") is kept for the requests no route took.
  const app = Fastify({ loggerInstance: log, trustProxy: trustProxyOf(listener), ...requestLogging(proxied) })
  if (listener.redirectHttps !== undefined) redirectToHttps(app, listener.redirectHttps === true ? 443 : listener.redirectHttps)
  app.setNotFoundHandler(noRoute(listener.routes ?? []))
  for (const { pool, pools: split, path, mirror, ...route } of listener.routes ?? []) {
    // The mirror's pool is a kept one too, whether or not a route of this listener sends to it.
    const shared = {
      ...route,
      ...(mirror === undefined ? {} : { mirror: { ...mirror, [kPoolRuntime]: pools.get(mirror.pool)! } }),
      ...(tracing === undefined ? {} : { tracing }),
      prefix: path
    }
    // A split's id in the admin API: the listener's port, the route's host and path (`8080:/`, `8080:api.example.com/v1`).
    const options = split === undefined
      ? { ...shared, [kPoolRuntime]: pools.get(pool!)! }
      : { ...shared, pools: split, name: `${listener.port}:${route.host ?? ''}${path}`, [kPoolRuntimes]: split.map((entry) => pools.get(entry.pool)!) }
    await app.register(goload, options as unknown as SharedPoolOptions)
  }
  // While closing, ask clients not to send more on this connection. HTTP/2 has no such header (Node drops it with a
  // warning): its connections are told with GOAWAY (see closeListenerServer).
  // A callback hook: an async one costs a Promise per request.
  app.addHook('onSend', (request, reply, payload, done) => {
    if (closing() && request.raw.httpVersionMajor === 1) reply.header('connection', 'close')
    done(null, payload)
  })
  await app.ready()
  return app
}

/**
 * The listener's trustProxy as Fastify takes it. Fastify 5.12 turned a bare hop count off (it trusts the nearest peer
 * whoever it is, as `true` does), so a count is given as the function proxy-addr used to make of it: the last
 * `hops` addresses (the connection's peer first) are proxies, the one before them is the client.
 */
function trustProxyOf ({ trustProxy = false }: ListenerConfig): FastifyServerOptions['trustProxy'] {
  if (typeof trustProxy !== 'number') return trustProxy
  const hops = trustProxy
  return (_address: string, hop: number) => hop < hops
}

function proxied (request: FastifyRequest): boolean {
  return !request.is404
}
