import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import type { Registry } from '../registry.js'
import type { TracingConfig } from './options.js'
import type { RouteTracing, Tracing } from './tracing.js'

// One tracer provider per Fastify instance, made by its first registration with a `tracing` option and shut down
// (its last spans exported) when the instance closes; other registrations with the same options share it.
const providers = new WeakMap<Registry, Promise<Tracing>>()

/**
 * The tracing of one route. The OpenTelemetry SDK is imported here, on the first registration that asks for it: an
 * app without tracing never loads it.
 */
export async function startTracing (fastify: FastifyInstance, registry: Registry, config: TracingConfig, prefix: string, host: string | undefined): Promise<RouteTracing> {
  let made = providers.get(registry)
  if (made === undefined) {
    made = import('./tracing.js').then(({ Tracing }) => new Tracing(config, fastify.log))
    providers.set(registry, made)
    const tracing = await made
    fastify.addHook('onClose', async () => { await tracing.close() })
  }
  const tracing = await made
  if (JSON.stringify(tracing.config) !== JSON.stringify(config)) {
    throw new InvalidOptionError('tracing differs from the tracing option of an earlier registration on this instance: its spans go through one exporter, so give every registration the same tracing options')
  }
  return tracing.route(prefix, host)
}
