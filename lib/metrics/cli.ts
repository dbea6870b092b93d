import cluster from 'node:cluster'
import { AggregatorRegistry, collectDefaultMetrics, Registry } from 'prom-client'
import type { SplitSource } from '../policy/split.js'
import { addPoolMetrics, ReadMetric, type PoolSource } from './collectors.js'
import type { CertificateSource } from '../tls/served.js'

/** What `/metrics` answers with: Prometheus' text format. */
export interface Scrape {
  contentType: string
  text: string
}

/** The metrics of the `goload` command: every live pool's, and the config reloads'. */
export interface CliMetrics {
  /** The registry of the process (pools and reloads), never prom-client's global one. */
  readonly registry: Registry
  /** Counts a SIGHUP reload, and whether the new config now serves. */
  reloaded: (success: boolean) => void
  /** The exposition for a scrape; under `--workers N`, every worker's metrics together, asked of the primary. */
  scrape: () => Promise<Scrape>
}

const request = 'goload:metrics'
const response = 'goload:metrics:text'

interface MetricsMessage { type: string, id: number, text?: string, error?: string }

/**
 * The command's metrics over the pools `source` gives at each scrape (Listeners.entries()). In a cluster worker the
 * state gauges get a `worker` label and a scrape goes through the primary, which sums the workers' registries.
 */
export function createCliMetrics (source: PoolSource, certificates: CertificateSource = () => [], splits: SplitSource = () => []): CliMetrics {
  const registry = new Registry()
  const worker = cluster.isWorker ? String(cluster.worker!.id) : undefined
  addPoolMetrics(registry, source, worker, splits)
  for (const metric of processMetrics(worker).getMetricsAsArray()) registry.registerMetric(metric as never)
  // One sample a name: a name served from two places (two listeners, a file and ACME) expires with the first of them.
  registry.registerMetric(new ReadMetric('goload_tls_certificate_expiry_timestamp_seconds', 'gauge', 'min', 'When each certificate the TLS listeners serve expires (notAfter), in seconds since the epoch, by its first DNS name.',
    (samples) => {
      const earliest = new Map<string, number>()
      for (const { name, expires } of certificates()) earliest.set(name, Math.min(expires, earliest.get(name) ?? Infinity))
      for (const [name, expires] of earliest) samples.push({ value: expires, labels: { name } })
    }) as never)
  const reloads = { count: 0, success: 1, at: Date.now() / 1000 }
  // Every worker hears every SIGHUP: the most any worker counted is how many there were, the least whether all took it.
  registry.registerMetric(new ReadMetric('goload_config_reloads_total', 'counter', 'max', 'SIGHUP reloads of the config, failed ones included.',
    (samples) => { samples.push({ value: reloads.count, labels: {} }) }) as never)
  registry.registerMetric(new ReadMetric('goload_config_last_reload_success', 'gauge', 'min', 'Whether the last reload of the config succeeded (1) or left the previous config serving (0); 1 before any reload.',
    (samples) => { samples.push({ value: reloads.success, labels: {} }) }) as never)
  registry.registerMetric(new ReadMetric('goload_config_last_reload_success_timestamp_seconds', 'gauge', 'min', 'When the config last loaded successfully (at start or on a reload), in seconds since the epoch.',
    (samples) => { samples.push({ value: reloads.at, labels: {} }) }) as never)
  const own = async (): Promise<Scrape> => ({ contentType: registry.contentType, text: await registry.metrics() })
  if (worker !== undefined) {
    // Constructing one adds prom-client's listener that answers the primary's AggregatorRegistry with this registry.
    // eslint-disable-next-line no-new -- the listener is the point
    new AggregatorRegistry()
    AggregatorRegistry.setRegistries([registry])
  }
  return {
    registry,
    reloaded (success) {
      reloads.count++
      reloads.success = success ? 1 : 0
      if (success) reloads.at = Date.now() / 1000
    },
    scrape: worker === undefined ? own : async () => ({ contentType: registry.contentType, text: await askPrimary() })
  }
}

let processRegistry: Registry | undefined

/**
 * prom-client's default collectors (`process_*`, `nodejs_*`), made once per process and shared by every registry of
 * the command: each collectDefaultMetrics() starts an event-loop delay monitor and a GC observer that nothing stops.
 * In a cluster worker each series carries its `worker` label, so the primary's aggregation keeps one per process
 * (the memory and CPU of one worker are not to be added to another's). process_start_time_seconds is `omit`ted by
 * AggregatorRegistry, which cannot add start times up; with the label there is nothing to add, so it is kept.
 */
function processMetrics (worker: string | undefined): Registry {
  if (processRegistry !== undefined) return processRegistry
  processRegistry = new Registry()
  collectDefaultMetrics({ register: processRegistry, ...(worker === undefined ? {} : { labels: { worker } }) })
  if (worker !== undefined) {
    for (const metric of processRegistry.getMetricsAsArray()) if (metric.aggregator === 'omit') metric.aggregator = 'first'
  }
  return processRegistry
}

let asked = 0

// A cluster worker's scrape: the primary asks every worker (this one included) and sends back the sum.
async function askPrimary (): Promise<string> {
  const id = ++asked
  return await new Promise<string>((resolve, reject) => {
    const answered = (message: MetricsMessage): void => {
      if (message?.type !== response || message.id !== id) return
      process.off('message', answered)
      if (message.error === undefined) resolve(message.text!)
      else reject(new Error(`metrics of the workers: ${message.error}`))
    }
    process.on('message', answered)
    process.send!({ type: request, id })
  })
}

/**
 * In the primary of `--workers N`: answers each worker's scrape with the metrics of all workers, aggregated by
 * prom-client's AggregatorRegistry. Returns what stops answering.
 */
export function serveClusterMetrics (): () => void {
  const aggregator = new AggregatorRegistry()
  const asked = (from: { send: (message: MetricsMessage) => unknown }, message: MetricsMessage): void => {
    if (message?.type !== request) return
    aggregator.clusterMetrics().then(
      (text) => { from.send({ type: response, id: message.id, text }) },
      (error: Error) => { from.send({ type: response, id: message.id, error: error.message }) })
  }
  cluster.on('message', asked)
  return () => { cluster.off('message', asked) }
}
