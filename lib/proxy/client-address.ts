import type { ServerHttp2Stream } from 'node:http2'
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
  // HTTP/2 servers only: an http.Server has no such event.
  server.on('stream', keepStreamAddress)
}

function readAddress (socket: Socket): void {
  socket.remoteAddress // eslint-disable-line @typescript-eslint/no-unused-expressions
}

/** An HTTP/2 stream, given what its request's socket answers once the stream has closed. */
type AddressedStream = ServerHttp2Stream & { remoteAddress?: string, remotePort?: number, encrypted?: boolean }

/**
 * An HTTP/2 request's `socket` is Node's stand-in, which asks the session's socket while the stream is open and the
 * stream itself once it has closed: Fastify's `request.ip` and the access line, written at the close, would get
 * undefined. The stream is given the connection's address at its start, what the stand-in answers from then on.
 */
function keepStreamAddress (stream: AddressedStream): void {
  // A new stream's session is there: it is the session's 'stream' event that brings it.
  const socket = stream.session!.socket as ClientSocket & { encrypted?: boolean }
  stream.remoteAddress = clientAddress(socket)
  stream.remotePort = socket.remotePort
  stream.encrypted = socket.encrypted === true
}

/**
 * The client's address for X-Forwarded-For: the connection's peer, or `unknown` (as RFC 7239 writes it) for one
 * that reset before it was even accepted, so the last entry is never empty and never another hop's. A TLS socket
 * asks its peer on its own, too late after such a reset: the TCP socket under it was read on accept.
 */
export function clientAddress (socket: ClientSocket | undefined): string {
  return socket?.remoteAddress ?? socket?._parent?.remoteAddress ?? 'unknown'
}
