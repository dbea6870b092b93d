import type { Dispatcher } from 'undici'
import type { FastifyBaseLogger } from 'fastify'
import type { PoolConfig } from '../options.js'
import type { Pool, Worker } from '../pool/pool.js'
import { grpcCheck } from './grpc-check.js'

/** One backend's probes so far: the runs of passes and fails that move it in and out of rotation. */
interface ProbeRecord {
  passes: number
  fails: number
  probing: boolean
  /** A probe that timed out is still queued in undici, waiting for its connection to the backend (one that never connects, say). */
  stuck: boolean
}

/**
 * Active health checks: every `interval`, a GET of `path` on each backend, or a grpc.health.v1.Health/Check call.
 * `unhealthyAfter` failures in a row
 * take a backend out of rotation, `healthyAfter` passes in a row bring it back. A passing probe also ends a
 * passive ejection early, as Envoy does by default.
 */
export class HealthChecker {
  readonly #pool: Pool
  readonly #dispatcher: Dispatcher
  readonly #options: NonNullable<PoolConfig['healthCheck']>
  readonly #log: FastifyBaseLogger
  readonly #records = new WeakMap<Worker, ProbeRecord>()
  readonly #inFlight = new Set<AbortController>()
  #timer: NodeJS.Timeout | undefined

  constructor (pool: Pool, dispatcher: Dispatcher, options: NonNullable<PoolConfig['healthCheck']>, log: FastifyBaseLogger) {
    this.#pool = pool
    this.#dispatcher = dispatcher
    this.#options = options
    this.#log = log
  }

  start (): void {
    this.#timer = setInterval(() => { this.#probeAll() }, this.#options.interval)
    this.#timer.unref()
    this.#probeAll()
  }

  stop (): void {
    clearInterval(this.#timer)
    this.#timer = undefined
    for (const controller of this.#inFlight) controller.abort()
  }

  #probeAll (): void {
    for (const worker of this.#pool.workers) {
      const record = this.#record(worker)
      // A probe still running (a slow backend) is not doubled up.
      if (record.probing) continue
      // One that timed out while waiting for its connection is not queued again behind it: the
      // backend still cannot be probed within `timeout`, which counts as another failure.
      if (record.stuck) this.#count(worker, record, false)
      else this.#probe(worker, record).catch(() => {})
    }
  }

  async #probe (worker: Worker, record: ProbeRecord): Promise<void> {
    record.probing = true
    const controller = new AbortController()
    this.#inFlight.add(controller)
    const { timeout, grpc } = this.#options
    const attempt = grpc === undefined
      ? this.#get(worker, controller.signal)
      : grpcCheck(this.#dispatcher, worker.origin, grpc.service, timeout, controller.signal)
    // `timeout` bounds the whole probe, the wait for a free connection included. undici's timeouts start only once
    // the request is sent, and it acts on an abort only then too: a probe still waiting for its connection would
    // otherwise stay pending, and stop the probing of this backend, for as long as that wait lasts.
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<boolean>((resolve) => {
      // Aborted by the deadline below, or by stop(): the probe ends now, whatever undici does with the request.
      controller.signal.addEventListener('abort', () => {
        clearTimeout(timer)
        resolve(false)
      }, { once: true })
      timer = setTimeout(() => {
        record.stuck = true
        attempt.finally(() => { record.stuck = false }).catch(() => {})
        controller.abort()
      }, timeout)
      timer.unref()
    })
    let passed = false
    try {
      passed = await Promise.race([attempt, deadline])
    } catch {
      passed = false
    } finally {
      clearTimeout(timer)
      record.probing = false
      this.#inFlight.delete(controller)
    }
    if (this.#timer === undefined) return // stopped while the probe ran
    this.#count(worker, record, passed)
  }

  /** A GET of `path`: passes on an expected status. */
  async #get (worker: Worker, signal: AbortSignal): Promise<boolean> {
    const { path, timeout, expectStatus } = this.#options
    const { statusCode, body } = await this.#dispatcher.request({
      origin: worker.origin,
      path,
      method: 'GET',
      headersTimeout: timeout,
      bodyTimeout: timeout,
      signal
    })
    await body.dump()
    return expectStatus(statusCode)
  }

  #count (worker: Worker, record: ProbeRecord, passed: boolean): void {
    const { healthyAfter, unhealthyAfter } = this.#options
    if (passed) {
      record.fails = 0
      record.passes++
      this.#pool.uneject(worker)
      if (!worker.healthy && record.passes >= healthyAfter) {
        this.#log.info({ backend: worker.id }, 'goload: backend healthy again')
        this.#pool.setHealthy(worker, true)
      }
    } else {
      record.passes = 0
      record.fails++
      if (worker.healthy && record.fails >= unhealthyAfter) {
        this.#log.warn({ backend: worker.id }, 'goload: backend failed its health checks')
        this.#pool.setHealthy(worker, false)
      }
    }
  }

  #record (worker: Worker): ProbeRecord {
    let record = this.#records.get(worker)
    if (record === undefined) {
      record = { passes: 0, fails: 0, probing: false, stuck: false }
      this.#records.set(worker, record)
    }
    return record
  }
}
