import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

// Node's HTTP/1.1 server hands over every request a client pipelines as soon as it has parsed it (one 64 KiB read
// holds ~2,500 small ones), and stops reading the connection only once *response* bytes pile up. Forwarded as they
// come, one connection's pipeline would put thousands of requests in flight at once, taking the pools' slots from
// every other client. nginx and HAProxy take a connection's requests one at a time; so does goload (the responses
// go out in order anyway). HTTP/2 has its own bound: 128 streams a session.

/** Requests a connection may have waiting behind the one being answered, as many as HTTP/2's streams a session. */
export const maxWaiting = 128

const kLine = Symbol('goload.pipeline')

/** A connection's requests: whether one is being answered, and the ones waiting their turn, in order. */
interface Line {
  busy: boolean
  readonly waiting: Array<() => void>
}

type LinedSocket = Socket & { [kLine]?: Line }

/**
 * True when no other request of its connection is being answered (or it is not HTTP/1.1): it is answered now, and
 * the next one waits until its response has closed. False: call `waitTurn`.
 */
export function turnNow (request: IncomingMessage, response: ServerResponse): boolean {
  if (request.httpVersionMajor !== 1) return true
  const socket = request.socket as LinedSocket
  const line = socket[kLine] ?? lineOf(socket)
  if (line.busy) return false
  taken(line, socket, response)
  return true
}

/**
 * Runs `take` once the requests before this one on its connection are answered. False, and `take` never runs, when
 * `maxWaiting` wait already: the caller answers at once, and those answers, queued behind the others, make Node stop
 * reading the connection until they have gone out.
 */
export function waitTurn (request: IncomingMessage, response: ServerResponse, take: () => void): boolean {
  const socket = request.socket as LinedSocket
  const line = socket[kLine]!
  if (line.waiting.length >= maxWaiting) return false
  line.waiting.push(() => {
    taken(line, socket, response)
    take()
  })
  return true
}

function lineOf (socket: LinedSocket): Line {
  const line: Line = { busy: false, waiting: [] }
  socket[kLine] = line
  // The client left: what waits is never taken (no backend hears of it, and Node has nothing to answer it on).
  socket.once('close', () => { line.waiting.length = 0 })
  return line
}

function taken (line: Line, socket: Socket, response: ServerResponse): void {
  line.busy = true
  response.once('close', () => {
    line.busy = false
    if (!socket.destroyed) line.waiting.shift()?.()
  })
}
