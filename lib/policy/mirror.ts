import { Readable } from 'node:stream'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import type { MirrorConfig, MirrorOptions } from '../options.js'
import type { Forwarder } from '../proxy/forward.js'
import type { Registry } from '../registry.js'
import { kPoolRuntime, type PoolRuntime } from '../runtime.js'
import { BodyCopy } from './mirror-body.js'
import { mirrorCountsOf, type MirrorCounts, type MirrorSkipReason } from './mirror-counts.js'
import { bodyLength, mirrorHeaders, sendMirror } from './mirror-request.js'

/**
 * A route's mirror: which of its requests are copied (a counter spreads `percent` evenly: every 10th request for 10,
 * so a test or an operator sees the exact share, with no randomness), how many copies may be in flight, and where
 * they go. The client's exchange never waits on a copy: see BodyCopy and sendMirror.
 */
export class Mirror {
  readonly forwarder: Forwarder
  readonly config: MirrorConfig
  readonly counts: MirrorCounts
  /** Copies of this route's requests between being chosen and their end, body collection included. */
  inFlight = 0
  /** Percent points owed: a request is chosen each time they reach 100. */
  #credit = 0
  /** The copies on the wire, aborted when the instance closes: nobody waits for them. */
  readonly open = new Set<AbortController>()
  closed = false

  constructor (forwarder: Forwarder, config: MirrorConfig) {
    this.forwarder = forwarder
    this.config = config
    this.counts = mirrorCountsOf(forwarder.pool)
  }

  /**
   * Called once the request is handed to its own pool: `target` as the primary sends it (prefix rewritten), `host`
   * the client's Host when the route preserves it. Upgrades are never copied, nor gRPC streams (their bodies have
   * no end to wait for).
   */
  copy (request: FastifyRequest, target: string, host: string | undefined): void {
    const { headers } = request
    if (this.closed || headers.upgrade !== undefined || !this.#chosen()) return
    if (request.raw.httpVersionMajor === 2 && headers['content-type']?.startsWith('application/grpc') === true) return
    if (this.inFlight >= this.config.maxInFlight) {
      this.counts.skipped.in_flight++
      return
    }
    const length = bodyLength(request)
    if (length > this.config.maxBody) {
      this.counts.skipped.too_large++
      return
    }
    this.inFlight++
    const copied = mirrorHeaders(request, host)
    if (length === 0) {
      sendMirror(this, request, target, copied, undefined)
      return
    }
    // Where the primary reads it from too (see Forwarder.forward).
    const source = request.body instanceof Readable ? request.body : request.raw
    BodyCopy.start(this, source, (chunks) => { sendMirror(this, request, target, copied, chunks) })
  }

  /** A chosen request that was not sent after all. */
  skip (reason: MirrorSkipReason): void {
    this.inFlight--
    this.counts.skipped[reason]++
  }

  close (): void {
    this.closed = true
    for (const controller of this.open) controller.abort()
  }

  #chosen (): boolean {
    this.#credit += this.config.percent
    if (this.#credit < 100) return false
    this.#credit -= 100
    return true
  }
}

/**
 * The route's mirror, from its `mirror` option: its pool is one registered before on this instance (or, from the
 * goload command, the pool the file names, kept across reloads). Its copies are aborted when the instance closes.
 */
export function startMirror (fastify: FastifyInstance, registry: Registry, options: MirrorOptions, config: MirrorConfig, own: Forwarder): Mirror {
  const kept = (options as { [kPoolRuntime]?: PoolRuntime })[kPoolRuntime]
  let forwarder = kept?.forwarder
  if (forwarder === undefined) {
    if (!registry.names().includes(config.pool)) {
      const others = registry.names().filter((name) => name !== own.config.name)
      throw new InvalidOptionError(`mirror.pool: no pool named ${JSON.stringify(config.pool)} is registered before this route (pools: ${others.join(', ') || 'none'})`)
    }
    forwarder = registry.forwarder(config.pool)
  }
  if (forwarder === own) throw new InvalidOptionError(`mirror.pool: "${config.pool}" is the route's own pool: mirror to another one`)
  const mirror = new Mirror(forwarder, config)
  fastify.addHook('preClose', async () => { mirror.close() })
  return mirror
}
