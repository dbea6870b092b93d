import type { FastifyBaseLogger } from 'fastify'
import type { PoolConfig } from '../options.js'
import type { Pool, Worker } from '../pool/pool.js'

/** One backend's recent failures and ejections. */
interface FailureRecord {
  windowStart: number
  fails: number
  consecutive5xx: number
  /** failurePercentage's count: requests answered or failed within the window that began at requestsSince, and failed of them. */
  requestsSince: number
  requests: number
  requestsFailed: number
  /** Ejections in a row: each one lasts twice as long as the one before. */
  ejections: number
  lastEjectedAt: number
}

// Envoy's default max_ejection_time: however often a backend fails, it is tried again within five minutes.
const maxEjectFor = 300_000

/**
 * Outlier ejection from real traffic: nginx's max_fails within fail_timeout, and Envoy's consecutive_5xx and
 * failure_percentage (5xx and failures a share of the requests within window, once there are minRequests).
 * Only what a backend did counts; requests the balancer sheds itself never reach here.
 */
export class PassiveHealth {
  readonly #pool: Pool
  readonly #options: Exclude<PoolConfig['passiveHealth'], false>
  readonly #records = new WeakMap<Worker, FailureRecord>()
  readonly #log: FastifyBaseLogger

  constructor (pool: Pool, options: Exclude<PoolConfig['passiveHealth'], false>, log: FastifyBaseLogger) {
    this.#pool = pool
    this.#options = options
    this.#log = log
    pool.onUneject = (worker) => { log.info({ backend: worker.id }, 'goload: backend back in rotation') }
  }

  /**
   * A connection error or timeout at this worker. It counts towards maxFails, and also in a run of consecutive5xx:
   * Envoy treats such locally seen failures as 5xx by default (split_external_local_origin_errors off), so a
   * backend that alternates 500s and resets is not spared by the mix.
   */
  failure (worker: Worker): void {
    const record = this.#record(worker)
    const now = Date.now()
    if (now - record.windowStart > this.#options.window) {
      record.windowStart = now
      record.fails = 0
    }
    const { maxFails, consecutive5xx, failurePercentage } = this.#options
    if (++record.fails >= maxFails || (consecutive5xx > 0 && ++record.consecutive5xx >= consecutive5xx)) this.#eject(worker, record, now)
    else if (failurePercentage > 0 && this.#failedShare(record, true, now)) this.#eject(worker, record, now)
  }

  /** An answer from this worker: 5xx in a row may eject it (anything else resets the run), or too many 5xx of its requests. */
  answered (worker: Worker, status: number): void {
    const { consecutive5xx, failurePercentage } = this.#options
    if (consecutive5xx === 0 && failurePercentage === 0) return
    const record = this.#record(worker)
    const failed = status >= 500
    if (consecutive5xx > 0) record.consecutive5xx = failed ? record.consecutive5xx + 1 : 0
    const run = consecutive5xx > 0 && record.consecutive5xx >= consecutive5xx
    if (run || (failurePercentage > 0 && this.#failedShare(record, failed, Date.now()))) this.#eject(worker, record, Date.now())
  }

  /** Counts a request in failurePercentage's window; whether the failed share has reached it. */
  #failedShare (record: FailureRecord, failed: boolean, now: number): boolean {
    if (now - record.requestsSince > this.#options.window) {
      record.requestsSince = now
      record.requests = 0
      record.requestsFailed = 0
    }
    record.requests++
    if (failed) record.requestsFailed++
    return failed && record.requests >= this.#options.minRequests && record.requestsFailed * 100 >= this.#options.failurePercentage * record.requests
  }

  #eject (worker: Worker, record: FailureRecord, now: number): void {
    const { ejectFor } = this.#options
    // A backend that stayed healthy for a while after its last ejection starts again from ejectFor.
    const previous = Math.min(ejectFor * 2 ** Math.max(0, record.ejections - 1), maxEjectFor)
    if (now - record.lastEjectedAt > previous * 2) record.ejections = 0
    const ms = Math.min(ejectFor * 2 ** record.ejections, Math.max(maxEjectFor, ejectFor))
    if (!this.#pool.eject(worker, ms)) return
    this.#log.warn({ backend: worker.id, ms }, 'goload: backend ejected')
    record.ejections++
    record.lastEjectedAt = now
    record.fails = 0
    record.consecutive5xx = 0
    record.requests = 0
    record.requestsFailed = 0
  }

  #record (worker: Worker): FailureRecord {
    let record = this.#records.get(worker)
    if (record === undefined) {
      record = { windowStart: 0, fails: 0, consecutive5xx: 0, requestsSince: 0, requests: 0, requestsFailed: 0, ejections: 0, lastEjectedAt: 0 }
      this.#records.set(worker, record)
    }
    return record
  }
}
