import { createHmac, randomBytes } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { parse as parseCookie } from 'cookie'
import type { FastifyReply } from 'fastify'
import type { StickyConfig } from '../options.js'
import type { Pool, Worker } from '../pool/pool.js'

/** What a sticky pool's answer needs of its exchange. */
export interface StickyExchange {
  readonly request: { readonly headers: IncomingHttpHeaders }
  readonly reply: FastifyReply
  readonly worker: Worker | undefined
  /** The worker its valid cookie named, and that took the request. */
  stickyWorker: Worker | undefined
  /** An upgrade: its 101 goes out past Fastify, with this Set-Cookie added (see Tunnel). */
  readonly upgrade: { setCookie: string | undefined } | undefined
}

// base64url of a SHA-256 HMAC: any other length is no cookie of ours, and is not looked up.
const tokenLength = 43

const asSent = { decode: (value: string) => value }

/**
 * A pool's sticky cookie (Traefik's): each client is told which backend served it, and sent there again while that
 * backend is in rotation. The cookie's value is the HMAC-SHA256 of the pool's name and the backend's id under the
 * secret: opaque (no address shows), unforgeable without the secret, and the same on every balancer given the same
 * secret and names. Reading it is one Map lookup; a value that names no backend of this pool now (forged, stale,
 * malformed, another pool's) is not an error: the request is balanced as any other, and its answer sets a new cookie.
 */
export class Sticky {
  readonly cookie: string
  /** Requests sent where their cookie said, and requests given a new cookie. */
  readonly counts = { cookie: 0, assigned: 0 }
  readonly #pool: Pool
  readonly #poolName: string
  readonly #secret: string | Buffer
  readonly #attributes: string
  readonly #byToken = new Map<string, Worker>()
  /** Each worker's whole Set-Cookie value, made once. */
  readonly #setCookie = new Map<Worker, string>()

  constructor (poolName: string, pool: Pool, config: StickyConfig) {
    this.cookie = config.cookie
    this.#pool = pool
    this.#poolName = poolName
    // Random per pool instance: cookies then outlive neither a restart nor a move to another balancer.
    this.#secret = config.secret ?? randomBytes(32)
    this.#attributes = '; Path=/' +
      (config.maxAge === undefined ? '' : `; Max-Age=${config.maxAge}`) +
      (config.httpOnly ? '; HttpOnly' : '') +
      (config.secure ? '; Secure' : '') +
      `; SameSite=${config.sameSite[0].toUpperCase()}${config.sameSite.slice(1)}`
    for (const worker of pool.workers) this.#track(worker)
    // Joins and leaves come as changes; so do drains and health, which change nothing here.
    pool.watch((worker) => { this.#track(worker) })
  }

  /** The backend of this pool the request's cookie names, whatever its state; undefined without a valid cookie. */
  known (headers: IncomingHttpHeaders): Worker | undefined {
    const header = headers.cookie
    if (header === undefined) return undefined
    const value = parseCookie(header, asSent)[this.cookie]
    return value?.length === tokenLength ? this.#byToken.get(value) : undefined
  }

  /** The cookie's backend, taken for the request when it can take one now; undefined: choose as for any request. */
  acquire (exchange: StickyExchange): Worker | undefined {
    const worker = this.known(exchange.request.headers)
    if (worker === undefined || !this.#pool.acquireWorker(worker)) return undefined
    exchange.stickyWorker = worker
    return worker
  }

  /** The backend answered: a request that went elsewhere than its cookie said is told its new backend. */
  answered (exchange: StickyExchange, status: number): void {
    const worker = exchange.worker!
    if (worker === exchange.stickyWorker) {
      this.counts.cookie++
      return
    }
    this.counts.assigned++
    const setCookie = this.#setCookie.get(worker)
    // Removed from the pool while its request was in flight: no cookie to name it.
    if (setCookie === undefined) return
    if (exchange.upgrade !== undefined && status === 101) exchange.upgrade.setCookie = setCookie
    else exchange.reply.header('set-cookie', setCookie)
  }

  #track (worker: Worker): void {
    if (this.#pool.workers.includes(worker)) {
      if (this.#setCookie.has(worker)) return
      const token = createHmac('sha256', this.#secret).update(`${this.#poolName}\0${worker.id}`).digest('base64url')
      this.#byToken.set(token, worker)
      this.#setCookie.set(worker, `${this.cookie}=${token}${this.#attributes}`)
      return
    }
    const setCookie = this.#setCookie.get(worker)
    if (setCookie === undefined) return
    this.#setCookie.delete(worker)
    const token = setCookie.slice(this.cookie.length + 1, this.cookie.length + 1 + tokenLength)
    // A backend of the same id may have joined since, under the same token.
    if (this.#byToken.get(token) === worker) this.#byToken.delete(token)
  }
}
