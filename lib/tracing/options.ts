import { tracingSchema } from '../config/schema.js'
import { checkTracing } from '../options-check.js'

/** The `tracing` option of a registration, and the config file's top-level `tracing` (README, Tracing). */
export interface TracingOptions {
  /** The OTLP/HTTP collector's base URL, e.g. `http://collector:4318`: spans are POSTed (JSON) to `<otlp>/v1/traces`. */
  otlp: string
  /**
   * Share of new traces recorded, 0 to 1. A request that arrives with a `traceparent` follows its sampled flag
   * (ParentBased), and every request still sends its backend a `traceparent`. Default 1, as Envoy's random_sampling.
   */
  sampleRatio?: number
  /** The spans' `service.name`. Default 'goload'. */
  serviceName?: string
  /** Headers sent with each export: a vendor's API key. */
  headers?: Record<string, string>
  /** ms between exports of the spans batched (the BatchSpanProcessor's scheduledDelayMillis). Default 5000. */
  exportDelay?: number
  /** ms an export may take, retries included; closing the instance waits for the last one at most this long. Default 10000. */
  exportTimeout?: number
}

export type TracingConfig = Required<Omit<TracingOptions, 'headers'>> & { headers: Record<string, string> }

const { properties } = tracingSchema

export function normalizeTracing (options: TracingOptions | undefined): TracingConfig | undefined {
  if (options === undefined) return undefined
  checkTracing(options)
  return {
    otlp: options.otlp.replace(/\/+$/, ''),
    sampleRatio: options.sampleRatio ?? properties.sampleRatio.default as number,
    serviceName: options.serviceName ?? properties.serviceName.default as string,
    headers: { ...options.headers },
    exportDelay: options.exportDelay ?? properties.exportDelay.default as number,
    exportTimeout: options.exportTimeout ?? properties.exportTimeout.default as number
  }
}
