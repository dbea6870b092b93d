import http, { type ClientRequest, type IncomingMessage } from 'node:http'
import https from 'node:https'
import type { Socket } from 'node:net'
import type { FastifyRequest } from 'fastify'
import type { PoolConfig } from '../options.js'
import { upstreamRequestHeaders } from './headers.js'

/**
 * What goload keeps of the bytes a client sends before its backend has switched protocols. Past it the client's
 * socket is paused until the backend answers, so TCP holds the rest back in the client, as nginx stops reading
 * once its buffer is full: a client streaming at a backend that answers late costs this much and no more.
 */
export const earlyBytesLimit = 64 * 1024

/**
 * The client's side of an upgrade goload takes, from then until its backend answers. What the client sends is kept
 * for the backend (up to earlyBytesLimit, then it is not read); a client that ends its side has left (the server
 * allows half-open sockets, so a half-close is an 'end', never a 'close'), and its socket is destroyed, which ends
 * the exchange through its response's 'close'.
 */
export class UpgradeClient {
  readonly socket: Socket
  /** What the client sent after its request head, chunk by chunk (never copied into one buffer). */
  readonly early: Buffer[] = []
  #held = 0

  constructor (socket: Socket, head: Buffer) {
    this.socket = socket
    if (head.length > 0) this.#keep(head)
    socket.on('data', this.#keep)
    socket.on('end', destroy)
  }

  #keep = (chunk: Buffer): void => {
    this.early.push(chunk)
    this.#held += chunk.length
    if (this.#held >= earlyBytesLimit) this.socket.pause()
  }

  /** The backend switched: what was kept goes to it first, then the tunnel carries the rest (and resumes reading). */
  switched (): Buffer[] {
    this.socket.removeListener('data', this.#keep)
    this.socket.removeListener('end', destroy)
    return this.early
  }
}

/** What a tunnel needs of its exchange: the request to send, and where to report each attempt's outcome. */
export interface TunnelExchange {
  readonly request: FastifyRequest
  /** The request target to send, its prefix already rewritten. */
  readonly target: string
  /** The Host to send; undefined for the backend's own. */
  readonly host: string | undefined
  /** The connection to the backend is open: the upstream time runs from here. */
  tunnelConnected: () => void
  /** The attempt failed before any answer: retried elsewhere, or answered 502/504, as for any request. */
  tunnelFailed: (error: Error) => void
  /** The backend answered something other than 101 (a 401, a 426): that answer goes to the client. */
  tunnelRefused: (response: IncomingMessage) => void
  /** The backend switched: the tunnel is open from here until the client's socket closes. */
  tunnelOpened: () => void
  /** The attempt in flight is to stop: the handshake's deadline passed, or the client left. */
  on: (event: 'abort', listener: () => void) => unknown
}

export type TunnelSettings = Pick<PoolConfig, 'connectTimeout' | 'tls' | 'backendTls' | 'tunnelIdleTimeout'>

/**
 * An upgrade on its way to a backend, then open: each attempt goes over a connection of its own (an upgraded
 * connection never goes back to a keep-alive pool), and after the backend's 101 bytes flow both ways unread.
 */
export class Tunnel {
  readonly client: UpgradeClient
  readonly #settings: TunnelSettings
  #attempt: ClientRequest | undefined
  #backend: Socket | undefined
  /** tunnelIdleTimeout closed it: no byte either way for that long. */
  idled = false
  /** A sticky pool's cookie for the client, added to the backend's 101. */
  setCookie: string | undefined = undefined

  constructor (client: UpgradeClient, settings: TunnelSettings) {
    this.client = client
    this.#settings = settings
  }

  /** The backend switched protocols: the tunnel was opened, and counts until its exchange ends. */
  get switched (): boolean {
    return this.#backend !== undefined
  }

  /** Sends the upgrade to the backend at `origin`; a retry sends it again, and the attempt before is forgotten. */
  send (exchange: TunnelExchange, origin: string): void {
    const settings = this.#settings
    const url = new URL(origin)
    const secure = url.protocol === 'https:'
    const headers = upstreamRequestHeaders(exchange.request, exchange.request.headers)
    for (const name in headers) if (headers[name] === undefined) delete headers[name]
    // The hop-by-hop headers an upgrade is made of, as the client sent them.
    headers.connection = 'upgrade'
    headers.upgrade = exchange.request.headers.upgrade
    headers.host = exchange.host ?? url.host
    const request = (secure ? https : http).request({
      hostname: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port,
      method: exchange.request.method,
      path: exchange.target,
      headers,
      agent: false,
      ...(secure ? settings.backendTls.get(url.origin) ?? settings.tls : undefined)
    })
    this.#attempt = request
    const connectTimer = setTimeout(() => {
      request.destroy(Object.assign(new Error(`no connection to ${url.host} within ${settings.connectTimeout} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' }))
    }, settings.connectTimeout)
    request.on('socket', (socket) => {
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(connectTimer)
        exchange.tunnelConnected()
      })
    })
    exchange.on('abort', () => { request.destroy() })
    request.on('error', (error) => {
      clearTimeout(connectTimer)
      // A retry made another attempt the current one: this one's late report is not a second failure.
      if (this.#attempt === request) exchange.tunnelFailed(error)
    })
    request.on('response', (response) => { exchange.tunnelRefused(response) })
    request.on('upgrade', (response: IncomingMessage, backend: Socket, head: Buffer) => {
      this.#backend = backend
      exchange.tunnelOpened()
      this.#join(response, backend, head)
    })
    request.end()
  }

  /** Closes the backend's side, once the client's has closed. */
  close (): void {
    this.#backend?.destroy()
  }

  /** Closes the client's side, which closes the rest: no frame can say goodbye without parsing. */
  cut (): void {
    this.client.socket.destroy()
  }

  /** Passes the 101 on, then the bytes each side sent early, then pipes both ways. */
  #join (response: IncomingMessage, backend: Socket, head: Buffer): void {
    const early = this.client.switched()
    const client = this.client.socket
    backend.on('error', destroy)
    // An open connection may be quiet for hours: no idle timeout of the server's may cut it, only the pool's own.
    backend.setTimeout(0)
    const idle = this.#settings.tunnelIdleTimeout
    if (idle > 0) {
      // Every byte of the tunnel, either way, is read from or written to the client's socket, whose timer both reset.
      client.setTimeout(idle, () => {
        this.idled = true
        client.destroy()
      })
    } else {
      client.setTimeout(0)
    }
    client.setNoDelay(true)
    backend.setNoDelay(true)
    // The 101 as the backend sent it: its Connection and Upgrade are what the client switches on.
    let text = `HTTP/1.1 101 ${response.statusMessage!}\r\n`
    for (let i = 0; i < response.rawHeaders.length; i += 2) text += `${response.rawHeaders[i]}: ${response.rawHeaders[i + 1]}\r\n`
    if (this.setCookie !== undefined) text += `Set-Cookie: ${this.setCookie}\r\n`
    client.write(text + '\r\n', 'latin1')
    if (head.length > 0) client.write(head)
    for (const chunk of early) backend.write(chunk)
    early.length = 0
    // Ends propagate (a client gone half-open ends the backend's side too); a side that closes closes the other,
    // and the client's close ends the exchange (Exchange.end), which releases the worker. The pipe resumes a client
    // paused at earlyBytesLimit.
    backend.pipe(client)
    client.pipe(backend)
    backend.on('close', () => { client.destroy() })
  }
}

function destroy (this: Socket): void {
  this.destroy()
}
