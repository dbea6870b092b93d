/**
 * Upper bounds, in seconds, of the upstream-latency buckets (request written → response headers): 1 ms to 30 s, the
 * span between a cached answer on loopback and the default timeout of most proxies. Prometheus' own default buckets
 * start at 5 ms, too coarse for a balancer in front of fast backends.
 */
export const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const

/**
 * One backend's upstream latencies since it joined: a plain count per bucket (the last one past 30 s) and their sum,
 * kept on the hot path without labels or allocation; metrics and the status page read it when asked.
 */
export class LatencyHistogram {
  /** Samples per bucket, not cumulative: counts[i] fell in (bucket i-1, bucket i]; the last, above every bound. */
  // Annotated: the inferred Float64Array<ArrayBuffer> is a generic older TypeScript (before 5.7) cannot read.
  readonly counts: Float64Array = new Float64Array(latencyBuckets.length + 1)
  /** Sum of the samples, in seconds. */
  sum = 0
  count = 0

  observe (ms: number): void {
    const seconds = ms / 1000
    let index = 0
    while (index < latencyBuckets.length && seconds > latencyBuckets[index]) index++
    this.counts[index]++
    this.sum += seconds
    this.count++
  }
}
