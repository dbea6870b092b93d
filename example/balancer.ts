import cluster from 'node:cluster'
import type { AddressInfo } from 'node:net'
import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import goload, { type Strategy } from '../lib/index.js'

export interface BalancerOptions {
  backends: string[]
  port: number
  host: string
  strategy?: Strategy
  /** Fastify's logger option; on by default. The load test turns it off: a log line per request would be the bottleneck. */
  logger?: FastifyServerOptions['logger']
}

/** A Fastify app that spreads every request over `backends`; resolves once it listens. */
export async function startBalancer ({ backends, port, host, strategy, logger = true }: BalancerOptions): Promise<FastifyInstance> {
  const app = Fastify({ logger })
  await app.register(goload, { backends, strategy })
  await app.listen({ port, host })
  return app
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { workers: { type: 'string' } } })
  // --workers N: N processes on node:cluster share the port, each with its own counts (like nginx workers
  // without a shared zone); 'p2c' suits that best. Default: one per core. --workers 1: a single process.
  const workers = values.workers === undefined ? availableParallelism() : Number(values.workers)
  if (!Number.isInteger(workers) || workers < 1) {
    console.error(`--workers must be a positive integer, got ${JSON.stringify(values.workers)}`)
    process.exit(1)
  }
  if (workers > 1 && cluster.isPrimary) {
    for (let i = 0; i < workers; i++) cluster.fork()
    console.log(`goload: ${workers} worker processes`)
    for (const signal of ['SIGINT', 'SIGTERM'] as const) {
      process.once(signal, () => {
        for (const worker of Object.values(cluster.workers ?? {})) worker?.kill(signal)
      })
    }
  } else {
    await serve()
  }
}

async function serve (): Promise<void> {
  const backends = (process.env.BACKENDS ?? '').split(',').map((url) => url.trim()).filter((url) => url !== '')
  if (backends.length === 0) {
    console.error('BACKENDS is required: a comma-separated list of backend URLs, e.g. BACKENDS=http://127.0.0.1:3001,http://127.0.0.1:3002')
    process.exit(1)
  }
  const app = await startBalancer({
    backends,
    port: Number(process.env.PORT ?? 8080),
    host: process.env.HOST ?? '0.0.0.0',
    // Unset or empty means the default; an unknown value is rejected by the plugin with a message listing the valid ones.
    strategy: (process.env.STRATEGY || undefined) as Strategy | undefined,
    logger: process.env.LOG !== 'off'
  })
  console.log(`goload listening on port ${(app.server.address() as AddressInfo).port}, pid ${process.pid}`)
  // Close the server (and the plugin's upstream connections) on Ctrl-C or SIGTERM, then exit 0.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
  }
}
