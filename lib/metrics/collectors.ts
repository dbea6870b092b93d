import type { Registry } from 'prom-client'
import { InvalidOptionError } from '../errors.js'
import { latencyBuckets } from '../pool/latency.js'
import type { FailureReason, ShedReason, Worker } from '../pool/pool.js'
import { circuitStates } from '../policy/circuit-breaker.js'
import type { SplitSource } from '../policy/split.js'
import type { PoolEntry } from '../registry.js'
import { mirrorCounts, mirrorSkipReasons } from '../policy/mirror-counts.js'

/** Where the collectors find the pools, walked on every scrape: a reload may have replaced any of them since. */
export type PoolSource = () => Iterable<PoolEntry>

type Labels = Record<string, string>
interface Sample { value: number, labels: Labels, metricName?: string }
/**
 * How `--workers N` combines one metric's samples across processes (prom-client's AggregatorRegistry): counters and
 * load gauges add up; a gauge of state carries a `worker` label instead, so nothing is added up.
 */
type Aggregator = 'sum' | 'max' | 'min'

/** Marks the metrics of ours on a registry, so that a second registration adds its pools to them. */
const kSources = Symbol.for('fastify-goload.metrics.sources')

/**
 * A metric read at scrape time. prom-client's Registry takes any object with a name, help, type, aggregator and
 * get(): nothing is counted per request here, and nothing is kept between scrapes (no stale backend stays).
 */
export class ReadMetric {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'gauge' | 'histogram'
  readonly aggregator: Aggregator
  readonly [kSources]: Set<PoolSource>
  readonly #read: (samples: Sample[]) => void

  constructor (name: string, type: ReadMetric['type'], aggregator: Aggregator, help: string, read: (samples: Sample[]) => void, sources = new Set<PoolSource>()) {
    this.name = name
    this.help = help
    this.type = type
    this.aggregator = aggregator
    this.#read = read
    this[kSources] = sources
  }

  async get (): Promise<{ name: string, help: string, type: string, aggregator: Aggregator, values: Sample[] }> {
    const values: Sample[] = []
    this.#read(values)
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  /** registry.resetMetrics(): the counts are the pools', not ours to reset. */
  reset (): void {}
}

const codeClasses = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const
const failureReasons: FailureReason[] = ['refused', 'reset', 'timeout', 'bad_response']
const shedReasons: ShedReason[] = ['queue_full', 'queue_timeout', 'no_backend', 'rate_limited', 'circuit_open']
export const backendStates = ['up', 'ejected', 'unhealthy', 'draining', 'slow-start'] as const
export type BackendState = typeof backendStates[number]
const bucketBounds = latencyBuckets.map(String).concat('+Inf')

/** A backend's one-word state; the first that holds of draining, unhealthy, ejected, slow-start, up. */
export function backendState (worker: Worker): BackendState {
  if (worker.draining) return 'draining'
  if (!worker.healthy) return 'unhealthy'
  if (worker.ejectedUntil !== 0) return 'ejected'
  return worker.effectiveWeight < worker.weight ? 'slow-start' : 'up'
}

/**
 * Adds goload's metrics of the pools `source` gives to `registry`: the metrics themselves the first time, the pools
 * to the same metrics after that (two registrations, two apps on one registry). Returns what takes the pools off.
 * `worker` (a cluster worker's id) labels the gauges of state, which must not be added up across processes.
 */
export function addPoolMetrics (registry: Registry, source: PoolSource, worker?: string, splits?: SplitSource): () => void {
  const found = registry.getSingleMetric('goload_backend_requests_total') as unknown as Partial<ReadMetric> | undefined
  let sources = found?.[kSources]
  if (sources === undefined) {
    sources = new Set()
    const metrics = poolMetrics(sources, worker === undefined ? {} : { worker })
    const taken = metrics.find(({ name }) => registry.getSingleMetric(name) !== undefined)
    if (taken !== undefined) throw new InvalidOptionError(`metrics: the registry already has a metric named ${taken.name} that is not fastify-goload's`)
    for (const metric of metrics) registry.registerMetric(metric as never)
  }
  const added = sources
  added.add(source)
  // The split routes' metric reads routes, not pools: its own set of sources.
  const splitSources = (registry.getSingleMetric(splitMetricName) as unknown as ReadMetric)[kSources] as unknown as Set<SplitSource>
  if (splits !== undefined) splitSources.add(splits)
  return () => {
    added.delete(source)
    if (splits !== undefined) splitSources.delete(splits)
  }
}

const splitMetricName = 'goload_route_split_requests_total'

function splitMetric (): ReadMetric {
  const sources = new Set<SplitSource>()
  return new ReadMetric(splitMetricName, 'counter', 'sum', 'Requests a route that splits between pools sent to each pool (the route is its id in the admin API).', (samples) => {
    for (const source of sources) {
      for (const split of source()) {
        for (const pool of split.pools) samples.push({ value: pool.requests, labels: { route: split.id, pool: pool.name } })
      }
    }
  }, sources as unknown as Set<PoolSource>)
}

function poolMetrics (sources: Set<PoolSource>, stateLabels: Labels): ReadMetric[] {
  // Every backend of every pool, with its labels, once per metric and scrape.
  const eachBackend = (read: (worker: Worker, labels: Labels, samples: Sample[]) => void) => (samples: Sample[]): void => {
    for (const source of sources) {
      for (const { name, pool } of source()) {
        for (const worker of pool.workers) read(worker, { pool: name, backend: worker.id }, samples)
      }
    }
  }
  const eachPool = (read: (entry: PoolEntry, labels: Labels, samples: Sample[]) => void) => (samples: Sample[]): void => {
    for (const source of sources) for (const entry of source()) read(entry, { pool: entry.name }, samples)
  }
  const metric = (name: string, type: ReadMetric['type'], aggregator: Aggregator, help: string, read: (samples: Sample[]) => void): ReadMetric =>
    new ReadMetric(name, type, aggregator, help, read, sources)
  return [
    splitMetric(),
    metric('goload_sticky_requests_total', 'counter', 'sum', 'Requests of a pool with a sticky cookie, by result: cookie (sent where a valid cookie said), assigned (given a new cookie).',
      eachPool(({ sticky }, labels, samples) => {
        if (sticky === undefined) return
        samples.push({ value: sticky.cookie, labels: { ...labels, result: 'cookie' } }, { value: sticky.assigned, labels: { ...labels, result: 'assigned' } })
      })),
    metric('goload_backend_requests_total', 'counter', 'sum', 'Responses received from the backend, by status class (1xx to 5xx).',
      eachBackend((worker, labels, samples) => {
        for (const [index, code] of codeClasses.entries()) samples.push({ value: worker.responses[index], labels: { ...labels, code } })
      })),
    metric('goload_backend_failures_total', 'counter', 'sum', 'Requests that failed at the backend without a usable response, by reason (refused, reset, timeout, bad_response).',
      eachBackend((worker, labels, samples) => {
        for (const reason of failureReasons) samples.push({ value: worker.failures[reason], labels: { ...labels, reason } })
      })),
    metric('goload_backend_retries_total', 'counter', 'sum', 'Requests that failed at the backend and were sent on to another one.',
      eachBackend((worker, labels, samples) => { samples.push({ value: worker.retried, labels }) })),
    metric('goload_backend_pending', 'gauge', 'sum', 'Requests in flight to the backend (upgraded connections included): what least-busy orders by.',
      eachBackend((worker, labels, samples) => { samples.push({ value: worker.pending, labels }) })),
    metric('goload_backend_upgraded', 'gauge', 'sum', 'Upgraded (WebSocket) connections open to the backend.',
      eachBackend((worker, labels, samples) => { samples.push({ value: worker.upgraded, labels }) })),
    metric('goload_backend_up', 'gauge', 'sum', 'Whether the backend is in rotation (1), or drained, unhealthy or ejected (0).',
      eachBackend((worker, labels, samples) => { samples.push({ value: worker.inRotation ? 1 : 0, labels: { ...labels, ...stateLabels } }) })),
    metric('goload_backend_weight', 'gauge', 'sum', 'The backend\'s configured weight.',
      eachBackend((worker, labels, samples) => { samples.push({ value: worker.weight, labels: { ...labels, ...stateLabels } }) })),
    metric('goload_backend_response_seconds', 'histogram', 'sum', 'Upstream latency: request written to the backend until its response headers, in seconds.',
      eachBackend((worker, labels, samples) => {
        const { counts, sum, count } = worker.latencies
        let cumulative = 0
        for (const [index, le] of bucketBounds.entries()) {
          cumulative += counts[index]
          samples.push({ metricName: 'goload_backend_response_seconds_bucket', value: cumulative, labels: { ...labels, le } })
        }
        samples.push({ metricName: 'goload_backend_response_seconds_sum', value: sum, labels })
        samples.push({ metricName: 'goload_backend_response_seconds_count', value: count, labels })
      })),
    metric('goload_pool_queued', 'gauge', 'sum', 'Requests waiting in the pool\'s queue for a backend with room.',
      eachPool(({ pool }, labels, samples) => { samples.push({ value: pool.queue.length, labels }) })),
    metric('goload_pool_shed_total', 'counter', 'sum', 'Requests the pool answered itself without a backend, by reason (queue_full, queue_timeout, no_backend, rate_limited, circuit_open).',
      eachPool(({ pool }, labels, samples) => {
        for (const reason of shedReasons) samples.push({ value: pool.shed[reason], labels: { ...labels, reason } })
      })),
    metric('goload_mirror_requests_total', 'counter', 'sum', 'Copies of requests for a mirror pool, by result: sent (its backend answered, whatever the status), failed (no answer: refused, reset, timed out), skipped (not sent).',
      eachPool(({ pool }, labels, samples) => {
        const counts = mirrorCounts(pool)
        if (counts === undefined) return
        let skipped = 0
        for (const reason of mirrorSkipReasons) skipped += counts.skipped[reason]
        samples.push({ value: counts.sent, labels: { ...labels, result: 'sent' } }, { value: counts.failed, labels: { ...labels, result: 'failed' } }, { value: skipped, labels: { ...labels, result: 'skipped' } })
      })),
    metric('goload_mirror_skipped_total', 'counter', 'sum', 'Copies for a mirror pool not sent, by reason (too_large, in_flight, no_backend, incomplete_body).',
      eachPool(({ pool }, labels, samples) => {
        const counts = mirrorCounts(pool)
        if (counts === undefined) return
        for (const reason of mirrorSkipReasons) samples.push({ value: counts.skipped[reason], labels: { ...labels, reason } })
      })),
    metric('goload_pool_backends', 'gauge', 'sum', 'Backends of the pool, by state (up, slow-start, ejected, unhealthy, draining).',
      eachPool(({ pool }, labels, samples) => {
        const counts: Record<BackendState, number> = { up: 0, ejected: 0, unhealthy: 0, draining: 0, 'slow-start': 0 }
        for (const worker of pool.workers) counts[backendState(worker)]++
        for (const state of backendStates) samples.push({ value: counts[state], labels: { ...labels, ...stateLabels, state } })
      })),
    // Only pools with a circuitBreaker or retryBudget have these samples.
    metric('goload_pool_circuit_state', 'gauge', 'sum', 'The pool\'s circuit breaker: 0 closed, 1 open (answering 503 without its backends), 2 half-open (probing).',
      eachPool(({ forwarder }, labels, samples) => {
        if (forwarder?.circuit !== undefined) samples.push({ value: forwarder.circuit.state, labels: { ...labels, ...stateLabels } })
      })),
    metric('goload_pool_circuit_transitions_total', 'counter', 'sum', 'Changes of the pool\'s circuit breaker, by the state entered (open, half-open, closed).',
      eachPool(({ forwarder }, labels, samples) => {
        const circuit = forwarder?.circuit
        if (circuit !== undefined) for (const to of circuitStates) samples.push({ value: circuit.transitions[to], labels: { ...labels, to } })
      })),
    metric('goload_pool_retries_budget_exhausted_total', 'counter', 'sum', 'Retries not made because the pool\'s retry budget was spent: the first failure was answered.',
      eachPool(({ forwarder }, labels, samples) => {
        if (forwarder?.retryBudget !== undefined) samples.push({ value: forwarder.retryBudget.exhausted, labels })
      })),
    metric('goload_pool_retries_in_flight', 'gauge', 'sum', 'Requests of the pool on a retry now, what its retry budget bounds.',
      eachPool(({ forwarder }, labels, samples) => {
        if (forwarder?.retryBudget !== undefined) samples.push({ value: forwarder.retryBudget.retrying, labels })
      }))
  ]
}
