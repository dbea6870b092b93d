import type { FastifyInstance } from 'fastify'
import { Registry as PromRegistry } from 'prom-client'
import type { Registry } from '../registry.js'
import type { SplitSource } from '../policy/split.js'
import { addPoolMetrics, type PoolSource } from './collectors.js'

/**
 * The `metrics` option of a registration: the metrics of every pool of the instance (`goload.entries()`, read at each
 * scrape, so pools registered later count too) on `target`, or on a registry of goload's own for `true`; off the
 * registry again when the instance closes. One collector set per prom-client registry, whatever the registrations.
 */
export function registerMetrics (fastify: FastifyInstance, goload: Registry, target: true | PromRegistry): void {
  const registry = target === true ? goload.metrics ?? new PromRegistry() : target
  goload.metrics ??= registry
  const remove = addPoolMetrics(registry, sourceOf(goload), undefined, splitSourceOf(goload))
  fastify.addHook('onClose', async () => { remove() })
}

const sources = new WeakMap<Registry, PoolSource>()
const splitSources = new WeakMap<Registry, SplitSource>()

function splitSourceOf (goload: Registry): SplitSource {
  let source = splitSources.get(goload)
  if (source === undefined) {
    source = () => goload.splits
    splitSources.set(goload, source)
  }
  return source
}

// One source per instance: a second registration asking for the same registry adds nothing.
function sourceOf (goload: Registry): PoolSource {
  let source = sources.get(goload)
  if (source === undefined) {
    source = () => goload.entries()
    sources.set(goload, source)
  }
  return source
}
