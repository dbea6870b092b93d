import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import type { AddressInfo } from 'node:net'
import type { GoloadFileConfig } from '../config/schema.js'
import { buildApp } from './apps.js'

/** The listeners of a config, each a Fastify app on its port. */
export interface Running {
  apps: FastifyInstance[]
  /** The port each listener has, in the config's order: the real one where the config says 0. */
  ports: number[]
  /** Stops accepting, lets requests in flight finish (within each pool's closeTimeout), closes the pools. */
  close: () => Promise<void>
}

/** A listener that could not start, named by its place in the config: `listeners[0]: port 8080 is in use`. */
export class ListenError extends Error {
  readonly code = 'FST_GOLOAD_LISTEN'
}

/** Builds every listener's app, then listens on each; if one cannot, closes those started and throws. */
export async function startListeners (config: GoloadFileConfig, logger: FastifyServerOptions['logger']): Promise<Running> {
  const apps: FastifyInstance[] = []
  const close = async (): Promise<void> => { await Promise.all(apps.map((app) => app.close())) }
  try {
    for (const listener of config.listeners) apps.push(await buildApp(listener, config.pools, logger))
    for (const [index, app] of apps.entries()) {
      const { port, host } = config.listeners[index]
      try {
        await app.listen({ port, host })
      } catch (error) {
        const { code, message } = error as NodeJS.ErrnoException
        throw new ListenError(code === 'EADDRINUSE'
          ? `listeners[${index}]: port ${port} is in use`
          : `listeners[${index}]: cannot listen on ${host}:${port}: ${message}`)
      }
    }
  } catch (error) {
    await close()
    throw error
  }
  return { apps, ports: apps.map((app) => (app.server.address() as AddressInfo).port), close }
}
