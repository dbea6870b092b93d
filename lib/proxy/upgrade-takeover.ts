import { ServerResponse, type IncomingMessage, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import type { FastifyInstance } from 'fastify'
import { matchRoute, type ProxyRoute } from '../routing/proxy-route.js'
import type { RouteTable } from '../routing/table.js'
import { UpgradeClient } from './tunnel.js'

/** On a raw request that came through the server's 'upgrade' event and that goload tunnels: its client's side. */
export const kUpgrade = Symbol('goload.upgrade')
export type UpgradeRequest = IncomingMessage & { [kUpgrade]?: UpgradeClient }

type UpgradeListener = (request: IncomingMessage, socket: Socket, head: Buffer, server?: Server) => void
interface Instance {
  fastify: FastifyInstance
  table: RouteTable<ProxyRoute>
}
const kUpgrades = Symbol('goload.upgrades')
type GoloadServer = Server & { [kUpgrades]?: { instances: Instance[], others: UpgradeListener[] } }
/** Node's own field: the response the connection is writing now (the next pipelined ones wait in a list of Node's). */
type ServerSocket = Socket & { _httpMessage?: ServerResponse | null }

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
function onUpgrade (this: GoloadServer, request: UpgradeRequest, socket: ServerSocket, head: Buffer, listening: Server = this): void {
  // Node took its own error listener off the socket before handing it over: a reset from here just ends it.
  socket.on('error', destroy)
  afterEarlierResponses(socket, () => { dispatch(this, listening, request, socket, head) })
}

/**
 * Holds an upgrade until every response before it on its connection has been written, so that responses go out in
 * the order of their requests and nothing is written over one still going out. Node emits 'upgrade' for a pipelined
 * request as soon as it has parsed it, while the responses to the requests before it may still be in flight: the one
 * being written is the socket's `_httpMessage`, the next ones wait in a list of Node's, and each is given the socket
 * in Node's own 'finish' listener of the one before (added before any of ours, so it has run when ours does). Node
 * also leaves the socket unread (`readableFlowing = null`) when it emits 'upgrade', so the client's next bytes wait
 * in the kernel meanwhile. A connection that closes first (the client left, or an earlier request said
 * `Connection: close`) drops the upgrade: nobody is left to answer. Checked on Node 20, 22 and 24 (lib/_http_server.js:
 * `onParserExecuteCommon`, `resOnFinish`, `ServerResponse.prototype.assignSocket`).
 */
function afterEarlierResponses (socket: ServerSocket, take: () => void): void {
  const writing = socket._httpMessage
  if (writing === null || writing === undefined) {
    // Not writable: the last response said the connection ends, and Node closes it once that is written.
    if (socket.writable) take()
    return
  }
  const onClose = (): void => { writing.removeListener('finish', onFinish) }
  const onFinish = (): void => {
    socket.removeListener('close', onClose)
    afterEarlierResponses(socket, take)
  }
  socket.once('close', onClose)
  writing.once('finish', onFinish)
}

/** Routes the upgrade: goload's tunnel, a plain request, or the listeners that were there before goload. */
function dispatch (server: GoloadServer, listening: Server, request: UpgradeRequest, socket: Socket, head: Buffer): void {
  const { instances, others } = server[kUpgrades]!
  if (!offersOnly(request, 'h2c')) {
    for (const { fastify, table } of instances) {
      const { authority, target, match } = matchRoute(table, request)
      if (match === undefined && authority !== undefined) continue
      // A Host refused (two of them, not a host name) is answered 400 as a plain request, never handed on.
      // `websocket: false`: the backend gets the request without Upgrade, and answers it as it would any other.
      // A target refused is answered by the route, as a plain request.
      if (match?.route.target.websocket === true && target !== undefined) tunnel(fastify, request, socket, head)
      else asPlainRequest(listening, request, socket, head)
      return
    }
    if (others.length > 0) {
      for (const other of others) other.call(server, request, socket, head)
      return
    }
  }
  asPlainRequest(listening, request, socket, head)
}

function tunnel (fastify: FastifyInstance, request: UpgradeRequest, socket: Socket, head: Buffer): void {
  request[kUpgrade] = new UpgradeClient(socket, head)
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
  socket.removeListener('error', destroy)
  socket.unshift(Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n', 'latin1'), head]))
  // An https server parses what its TLS sockets decrypt: the socket here is one of those already.
  server.emit(server instanceof TlsServer ? 'secureConnection' : 'connection', socket)
}

function destroy (this: Socket): void {
  this.destroy()
}
