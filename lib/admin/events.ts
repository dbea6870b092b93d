import type { ServerResponse } from 'node:http'
import type { FastifyBaseLogger, FastifyReply } from 'fastify'
import type { Pool } from '../pool/pool.js'
import type { PoolEntry } from '../registry.js'
import type { Snapshots } from './snapshot.js'

/** ms between snapshots. */
export const tick = 500
/** Snapshots a client may miss, its socket still full, before it is cut: about two seconds behind. */
const patience = 4
/**
 * ms a stream lasts by default. A client that stops reading is seen only once the socket buffers are full (about
 * 2.5 MB on loopback, an hour of small snapshots): ending every stream after this bounds how long one is kept.
 */
export const defaultStreamMaxAge = 5 * 60_000
/** The last event of a stream that has lasted its time: the page opens a new one at once. */
const reconnect = 'event: reconnect\ndata: this stream has lasted its time: open a new one\n\n'

interface Client {
  readonly response: ServerResponse
  /** When the stream has lasted its time (Date.now()). */
  readonly endsAt: number
  /** write() returned false and no 'drain' came since: nothing more is written to it. */
  blocked: boolean
  missed: number
}

/**
 * The Server-Sent Events of GET /events: every client gets `event: snapshot` at connect, then one every tick and
 * one on a pool's state change (at most one more a tick), until `event: reconnect` ends it after `maxAge` ms. One
 * timer serves them all and each snapshot is made once, however many clients read it. It also keeps the snapshots'
 * history, with or without clients.
 */
export class EventStreams {
  readonly #snapshots: Snapshots
  readonly #source: () => Iterable<PoolEntry>
  readonly #clients = new Set<Client>()
  readonly #watched = new Map<Pool, () => void>()
  readonly #timer: NodeJS.Timeout
  readonly #log: FastifyBaseLogger
  readonly #maxAge: number
  /** A change already has its snapshot this tick (sent, or about to be). */
  #changeSent = false

  constructor (snapshots: Snapshots, source: () => Iterable<PoolEntry>, log: FastifyBaseLogger, maxAge = defaultStreamMaxAge) {
    this.#snapshots = snapshots
    this.#source = source
    this.#log = log
    this.#maxAge = maxAge
    this.#watch()
    this.#timer = setInterval(() => {
      snapshots.tick()
      // A reload may have replaced pools: watch the ones there are now.
      this.#watch()
      this.#changeSent = false
      this.#endAged()
      this.#publish()
    }, tick).unref()
  }

  /** Takes over the reply: it stays open, sending snapshots, until the client goes or the admin closes. */
  open (reply: FastifyReply): void {
    reply.hijack()
    const response = reply.raw
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      // Tells nginx and the like in front not to buffer the stream.
      'x-accel-buffering': 'no',
      // Once the stream ends, so does the connection: a client that stopped reading sends no next request.
      connection: 'close'
    })
    const client: Client = { response, endsAt: Date.now() + this.#maxAge, blocked: false, missed: 0 }
    this.#clients.add(client)
    response.once('close', () => { this.#clients.delete(client) })
    this.#send(client, this.#event())
  }

  /** Ends every stream and stops the timer: an open stream would keep the server from closing. */
  close (): void {
    clearInterval(this.#timer)
    for (const unwatch of this.#watched.values()) unwatch()
    this.#watched.clear()
    for (const { response, blocked } of this.#clients) {
      if (blocked) response.destroy()
      else response.end()
    }
    this.#clients.clear()
  }

  // A stream that has lasted its time ends with `reconnect`; one still open a tick later (its socket full, its
  // client not reading) is cut.
  #endAged (): void {
    const now = Date.now()
    for (const client of this.#clients) {
      if (now < client.endsAt) continue
      this.#clients.delete(client)
      const { response } = client
      response.end(reconnect)
      const cut = setTimeout(() => { this.#cut(response) }, tick).unref()
      response.once('close', () => { clearTimeout(cut) })
    }
  }

  #watch (): void {
    const current = new Set<Pool>()
    for (const { pool, forwarder } of this.#source()) {
      current.add(pool)
      if (this.#watched.has(pool)) continue
      const changed = (): void => { this.#changed() }
      const unwatchPool = pool.watch(changed)
      // A pool's circuit opening or closing is a change of its state too.
      const unwatchCircuit = forwarder?.circuit?.watch(changed)
      this.#watched.set(pool, () => { unwatchPool(); unwatchCircuit?.() })
    }
    for (const [pool, unwatch] of this.#watched) {
      if (!current.has(pool)) {
        unwatch()
        this.#watched.delete(pool)
      }
    }
  }

  // A burst of changes (a reload draining several backends) makes one snapshot, once the burst is over.
  #changed (): void {
    if (this.#changeSent || this.#clients.size === 0) return
    this.#changeSent = true
    setImmediate(() => { this.#publish() })
  }

  #publish (): void {
    if (this.#clients.size === 0) return
    const event = this.#event()
    for (const client of this.#clients) this.#send(client, event)
  }

  #event (): string {
    return `event: snapshot\ndata: ${JSON.stringify(this.#snapshots.snapshot())}\n\n`
  }

  // A client that does not read fills its socket: it misses snapshots rather than have them pile up, and is cut
  // once it has missed `patience` of them.
  #send (client: Client, event: string): void {
    if (client.blocked) {
      if (++client.missed >= patience) this.#cut(client.response)
      return
    }
    if (!client.response.write(event)) {
      client.blocked = true
      client.response.once('drain', () => {
        client.blocked = false
        client.missed = 0
      })
    }
  }

  #cut (response: ServerResponse): void {
    this.#log.warn(`goload admin: cut an event stream to ${response.socket?.remoteAddress} that stopped reading`)
    response.destroy()
  }
}
