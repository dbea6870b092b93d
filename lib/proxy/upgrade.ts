import http, { ServerResponse, type ClientRequest, type IncomingMessage, type Server } from 'node:http'
import https from 'node:https'
import type { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import { requestHost } from '../routing/host.js'
import type { RouteTable } from '../routing/table.js'
import type { Worker } from '../pool/pool.js'
import type { Exchange } from './forward.js'
import { downstreamResponseHeaders, upstreamRequestHeaders } from './headers.js'
import type { ProxyRoute } from './routes.js'
import { upstreamTarget } from './target.js'

/** On a raw request that came through the server's 'upgrade' event and that goload tunnels: its socket and head. */
export const kUpgrade = Symbol('goload.upgrade')
export interface Upgrade {
  socket: Socket
  /** Bytes the client sent after the request head, read with it and until the backend switched. */
  head: Buffer
  /** The backend switched protocols: the client's bytes go into the tunnel from here. */
  switched?: () => void
}
export type UpgradeRequest = IncomingMessage & { [kUpgrade]?: Upgrade }

type UpgradeListener = (request: IncomingMessage, socket: Socket, head: Buffer, server?: Server) => void
interface Instance {
  fastify: FastifyInstance
  table: RouteTable<ProxyRoute>
}
const kUpgrades = Symbol('goload.upgrades')
type GoloadServer = Server & { [kUpgrades]?: { instances: Instance[], others: UpgradeListener[] } }

/**
 * Takes the server's 'upgrade' event, once per server: an upgrade one of goload's routes matches (with `websocket`
 * on) is routed through Fastify with a response bound to its socket, so hooks, 404s and errors take the normal
 * path, and the route's pool tunnels it (see Forwarder.forward). Any other upgrade goes to the listeners the server
 * had before (@fastify/websocket's), or, when there are none, is served as the plain request it would have been
 * without a listener: Node stops parsing a request once it hands it to 'upgrade', so its head is written back into
 * the socket, without the Upgrade, and the server parses it again.
 */
export function takeUpgrades (fastify: FastifyInstance, table: RouteTable<ProxyRoute>): void {
  const server = fastify.server as GoloadServer
  let taken = server[kUpgrades]
  if (taken === undefined) {
    // Listeners added before ours are called by ours, for the upgrades goload does not take.
    taken = { instances: [], others: server.listeners('upgrade') as UpgradeListener[] }
    server[kUpgrades] = taken
    server.removeAllListeners('upgrade')
    server.on('upgrade', onUpgrade)
  }
  taken.instances.push({ fastify, table })
}

/** The CLI's long-lived server hands its upgrades to the current app: `listening` is that server. */
function onUpgrade (this: GoloadServer, request: UpgradeRequest, socket: Socket, head: Buffer, listening: Server = this): void {
  const { instances, others } = this[kUpgrades]!
  if (!offersOnly(request, 'h2c')) {
    const target = upstreamTarget(request.url!)
    for (const { fastify, table } of instances) {
      const match = target === undefined ? undefined : table.match(target, requestHost(request.headers.host), request.method!, request.headers)
      if (match === undefined) continue
      // `websocket: false`: the backend gets the request without Upgrade, and answers it as it would any other.
      if (match.route.target.websocket) tunnel(fastify, request, socket, head)
      else asPlainRequest(listening, request, socket, head)
      return
    }
    if (others.length > 0) {
      for (const other of others) other.call(this, request, socket, head)
      return
    }
  }
  asPlainRequest(listening, request, socket, head)
}

function tunnel (fastify: FastifyInstance, request: UpgradeRequest, socket: Socket, head: Buffer): void {
  // Node removed its own error listener before handing over the socket; a reset just ends it.
  socket.on('error', destroy)
  const upgrade: Upgrade = { socket, head }
  request[kUpgrade] = upgrade
  // Until the backend switches: what the client sends is kept for it, and a client that ends its side has left
  // (the server allows half-open sockets, so that is an 'end', never a 'close').
  const early = (chunk: Buffer) => { upgrade.head = Buffer.concat([upgrade.head, chunk]) }
  socket.on('data', early)
  socket.on('end', destroy)
  upgrade.switched = () => {
    socket.removeListener('data', early)
    socket.removeListener('end', destroy)
  }
  const response = new ServerResponse(request)
  response.assignSocket(socket)
  // Any answer other than the backend's 101 (its refusal, our 404, 502 or 504) is the last on this connection.
  response.shouldKeepAlive = false
  response.on('finish', () => { socket.destroySoon() })
  fastify.routing(request, response)
}

/**
 * An `h2c` offer may be ignored (RFC 9110 §7.8): the balancer speaks HTTP/1.1 to its clients, and the request (a
 * POST, often) carries a body the backend must get as a body.
 */
function offersOnly (request: IncomingMessage, protocol: string): boolean {
  return request.headers.upgrade?.trim().toLowerCase() === protocol
}

/** Writes the request head back into the socket without Upgrade, and lets the server parse it as a plain request. */
function asPlainRequest (server: Server, request: IncomingMessage, socket: Socket, head: Buffer): void {
  const lines = [`${request.method!} ${request.url!} HTTP/${request.httpVersion}`]
  const { rawHeaders } = request
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase()
    if (name === 'upgrade' || name === 'http2-settings') continue
    let value = rawHeaders[i + 1]
    if (name === 'connection') {
      value = value.split(',').map((token) => token.trim()).filter((token) => !/^(upgrade|http2-settings)$/i.test(token)).join(', ')
      if (value === '') continue
    }
    lines.push(`${rawHeaders[i]}: ${value}`)
  }
  socket.unshift(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), head]))
  // An https server parses what its TLS sockets decrypt: the socket here is one of those already.
  server.emit(server instanceof TlsServer ? 'secureConnection' : 'connection', socket)
}

function destroy (this: Socket): void {
  this.destroy()
}

/** An upgrade on its way: the client's side, then the attempt in flight, then the backend's socket. */
export interface Tunnel {
  client: Upgrade
  request: ClientRequest | undefined
  backend: Socket | undefined
}

/**
 * Sends the upgrade request to the worker over a connection of its own (an upgraded connection never goes back to a
 * keep-alive pool), and hands the outcome to the forwarder: a failure before any answer (retried or 502/504, as for
 * any request), a refusal (passed on as the backend's response), or a 101, after which bytes flow both ways unread.
 */
export function sendUpgrade (exchange: Exchange, worker: Worker): void {
  const { forwarder } = exchange
  const { config } = forwarder
  const tunnel = exchange.upgrade!
  const url = new URL(worker.url)
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
    ...(secure ? config.backendTls.get(url.origin) ?? config.tls : undefined)
  })
  tunnel.request = request
  const connectTimer = setTimeout(() => {
    request.destroy(Object.assign(new Error(`no connection to ${url.host} within ${config.connectTimeout} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' }))
  }, config.connectTimeout)
  request.on('socket', (socket) => {
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      clearTimeout(connectTimer)
      exchange.sentAt = performance.now()
    })
  })
  // The handshake's deadline (the pool's timeout) or the client leaving stop the attempt.
  exchange.on('abort', () => { request.destroy() })
  request.on('error', (error) => {
    clearTimeout(connectTimer)
    // A retry made another attempt the current one: this one's late report is not a second failure.
    if (tunnel.request === request) forwarder.failed(exchange, error)
  })
  request.on('response', (response) => {
    clearTimeout(exchange.deadline)
    forwarder.answered(exchange, response.statusCode!)
    exchange.reply.code(response.statusCode!).headers(downstreamResponseHeaders(response.headers))
    forwarder.respond(exchange, { statusCode: response.statusCode!, stream: response })
  })
  request.on('upgrade', (response: IncomingMessage, backend: Socket, head: Buffer) => {
    clearTimeout(exchange.deadline)
    forwarder.answered(exchange, 101)
    exchange.reply.hijack()
    tunnel.backend = backend
    forwarder.opened(exchange)
    tunnel.client.switched!()
    const { socket: client, head: early } = tunnel.client
    backend.on('error', destroy)
    // An open connection may be quiet for hours: no idle timeout of the server's may cut it.
    client.setTimeout(0)
    backend.setTimeout(0)
    client.setNoDelay(true)
    backend.setNoDelay(true)
    // The 101 as the backend sent it: its Connection and Upgrade are what the client switches on.
    let text = `HTTP/1.1 101 ${response.statusMessage!}\r\n`
    for (let i = 0; i < response.rawHeaders.length; i += 2) text += `${response.rawHeaders[i]}: ${response.rawHeaders[i + 1]}\r\n`
    client.write(text + '\r\n', 'latin1')
    if (head.length > 0) client.write(head)
    if (early.length > 0) backend.write(early)
    // Ends propagate (a client gone half-open ends the backend's side too); a side that closes closes the other,
    // and the client's close ends the exchange (Exchange.end), which releases the worker.
    backend.pipe(client)
    client.pipe(backend)
    backend.on('close', () => { client.destroy() })
  })
  request.end()
}
