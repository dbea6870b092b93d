import type { Server, Socket } from 'node:net'

const kKept = Symbol('goload.clientAddresses')

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
  // A TLS server's requests come on the TLS socket, which asks its peer on its own.
  server.on('secureConnection', readAddress)
}

function readAddress (socket: Socket): void {
  socket.remoteAddress // eslint-disable-line @typescript-eslint/no-unused-expressions
}

/**
 * The client's address for X-Forwarded-For: the connection's peer, or `unknown` (as RFC 7239 writes it) for one
 * that reset before it was even accepted, so the last entry is never empty and never another hop's.
 */
export function clientAddress (socket: Socket | undefined): string {
  return socket?.remoteAddress ?? 'unknown'
}
