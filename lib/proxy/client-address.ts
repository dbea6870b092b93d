import type { Server, Socket } from 'node:net'

const kKept = Symbol('goload.clientAddresses')

/** A TLS socket on a server keeps the TCP socket it reads from here (Node's `_parent`, there since TLSWrap came). */
type ClientSocket = Socket & { _parent?: Socket | null }

/**
 * Reads each client's address as its connection is accepted. A client that sends a request and resets at once has
 * its reset read with the request, and from then on the socket has no peer to ask (getpeername fails): read only
 * later, its address would be undefined in X-Forwarded-For, the access line and the rate-limit key. Node keeps the
 * address once read (`socket._peername`), so every later `remoteAddress` (Fastify's `request.ip` too) gets it.
 */
export function keepClientAddresses (server: Server & { [kKept]?: true }): void {
  if (server[kKept] === true) return
  server[kKept] = true
  server.on('connection', readAddress)
}

function readAddress (socket: Socket): void {
  socket.remoteAddress // eslint-disable-line @typescript-eslint/no-unused-expressions
}

/**
 * The client's address for X-Forwarded-For: the connection's peer, or `unknown` (as RFC 7239 writes it) for one
 * that reset before it was even accepted, so the last entry is never empty and never another hop's. A TLS socket
 * asks its peer on its own, too late after such a reset: the TCP socket under it was read on accept.
 */
export function clientAddress (socket: ClientSocket | undefined): string {
  return socket?.remoteAddress ?? socket?._parent?.remoteAddress ?? 'unknown'
}
