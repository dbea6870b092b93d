import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import goload from '../index.js'
import type { SharedPoolOptions, Strategy } from '../options.js'
import { kPoolRuntime, type PoolRuntime } from '../runtime.js'
import type { GoloadFileConfig, ListenerConfig } from '../config/schema.js'

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
 * listens: the listener's long-lived server hands it requests (see Listeners).
 */
export async function buildApp (listener: ListenerConfig, pools: Map<string, PoolRuntime>, logger: FastifyServerOptions['logger'], closing: () => boolean): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  for (const { pool, path, ...route } of listener.routes) {
    await app.register(goload, { ...route, prefix: path, [kPoolRuntime]: pools.get(pool)! } as unknown as SharedPoolOptions)
  }
  // While closing, ask clients not to send more on this connection.
  app.addHook('onSend', async (request, reply) => {
    if (closing()) reply.header('connection', 'close')
  })
  await app.ready()
  return app
}
