import http from 'node:http'
import http2 from 'node:http2'
import tls from 'node:tls'
import { defaultHeadersTimeout } from '../config/listener-blocks.js'
import type { ListenerConfig } from '../config/schema.js'
import type { ChallengeBoard } from '../tls/acme/challenges.js'
import { endValidation, tlsAlpnOptions } from '../tls/acme/alpn.js'

/**
 * The Node server behind one listener: http.Server for plain HTTP/1.1, an HTTP/2 server with prior knowledge (h2c)
 * for a plain listener with `http2: true`, and for every TLS listener an HTTP/2 secure server that also serves
 * HTTP/1.1 (allowHTTP1), the protocol chosen by ALPN at each handshake. A TLS listener is that one server whether
 * h2 is offered or not, so a reload can turn `http2` on or off without a new server on its port.
 */
export type ListenerServer = http.Server | http2.Http2SecureServer | http2.Http2Server

/**
 * What an HTTP/2 client may hold at once. nginx's http2_max_concurrent_streams (128) and its header buffers
 * (large_client_header_buffers 4 × 8k, 32 KiB), and its keepalive_timeout (75 s), which ends an HTTP/2
 * connection with no stream open. Node's own defences stay on: a session is closed past 100 streams it had to
 * refuse (maxSessionRejectedStreams) or 1,000 invalid frames, and nghttp2 answers a flood of streams reset by the
 * client (rapid reset, CVE-2023-44487) with GOAWAY.
 */
export interface Http2Limits {
  maxConcurrentStreams: number
  /** Bytes of one request's header list, as HPACK counts it (name + value + 32 each). */
  maxHeaderListSize: number
  /** ms a connection may have no stream open before it is closed with GOAWAY. */
  idleTimeout: number
}

export const http2Limits: Http2Limits = { maxConcurrentStreams: 128, maxHeaderListSize: 32 * 1024, idleTimeout: 75_000 }

export interface ListenerServerOptions {
  /** A TLS listener's certificates now: the default one's options, and the SNI choice, both read at each handshake. */
  certificates?: {
    defaults: tls.SecureContextOptions
    select: (servername: string) => tls.SecureContext
  }
  /** Whether h2 is offered now: asked at each TLS handshake, so that a reload's `http2` applies to new connections. */
  offersH2?: () => boolean
  /** The ACME challenges under way: HTTP-01 ones are answered on a plain listener before `handle`. */
  acme?: ChallengeBoard
  /** This TLS listener answers TLS-ALPN-01 challenges (acme-tls/1) for its ACME block. */
  alpnChallenges?: boolean
  /** For tests: other limits than http2Limits. */
  limits?: Partial<Http2Limits>
}

/** Makes the server for `listener`; `handle` serves every request, HTTP/1.1 and HTTP/2 alike. */
export function createListenerServer (listener: ListenerConfig, handle: http.RequestListener, { certificates, offersH2 = () => listener.http2 !== false, acme, alpnChallenges = false, limits = {} }: ListenerServerOptions = {}): ListenerServer {
  const { maxConcurrentStreams, maxHeaderListSize, idleTimeout } = { ...http2Limits, ...limits }
  const h2: http2.ServerOptions = { settings: { maxConcurrentStreams, maxHeaderListSize } }
  let server: ListenerServer
  if (certificates !== undefined) {
    const choose = (offered: string[]): string | undefined => chooseProtocol(offered, offersH2())
    server = http2.createSecureServer({
      ...h2,
      ...certificates.defaults,
      allowHTTP1: true,
      ...(alpnChallenges
        ? tlsAlpnOptions(acme!, choose, certificates.select)
        : {
            SNICallback: (servername: string, done: (error: Error | null, context?: tls.SecureContext) => void) => { done(null, certificates.select(servername)) },
            ALPNCallback: ({ protocols }: { protocols: string[] }) => choose(protocols)
          })
    }, handle as unknown as (request: http2.Http2ServerRequest, response: http2.Http2ServerResponse) => void)
    if (alpnChallenges) server.on('secureConnection', endValidation)
    // allowHTTP1 serves HTTP/1.1 through Node's http.Server code, reading its settings off this server, which
    // does not have them all: without these, an idle keep-alive connection would never be closed.
    Object.assign(server, http1Settings)
  } else {
    const plain: http.RequestListener = acme === undefined
      ? handle
      : (request, response) => { if (!acme.answerHttp(request, response)) handle(request, response) }
    server = listener.http2 === true
      ? http2.createServer(h2, plain as unknown as (request: http2.Http2ServerRequest, response: http2.Http2ServerResponse) => void)
      : http.createServer(plain)
  }
  setTimeouts(server, listener)
  if (!(server instanceof http.Server)) closeIdleSessions(server, idleTimeout)
  return server
}

// http.Server's own defaults, for the HTTP/1.1 connections of an HTTP/2 secure server.
const http1Settings = { keepAliveTimeout: 5000, maxHeadersCount: null, maxRequestsPerSocket: 0, requireHostHeader: true, httpAllowHalfOpen: false, rejectNonStandardBodyWrites: false }

/**
 * The application protocol of a TLS connection, from those the client offers (RFC 7301): h2 where offered and
 * allowed, else HTTP/1.1; none of them (h2 only, to `http2: false`) refuses the handshake with the
 * no_application_protocol alert. A client that offers nothing is not asked: it speaks HTTP/1.1. Other protocols
 * (acme-tls/1) join here.
 */
export function chooseProtocol (offered: string[], h2: boolean): string | undefined {
  if (h2 && offered.includes('h2')) return 'h2'
  return offered.includes('http/1.1') ? 'http/1.1' : undefined
}

/**
 * A request whose headers have not all come within headersTimeout is answered 408 and its connection closed. Node
 * checks every connectionsCheckingInterval (30 s by default, so a 60 s timeout cut at up to 90 s): checked here at
 * a tenth of the timeout, at most every second, the cut comes within headersTimeout + 1 s. requestTimeout (the
 * whole request, body included: Node's 300 s) may not be below it. HTTP/1.1 only: an HTTP/2 request's headers come
 * in one block, and an HTTP/2 connection that sends nothing is closed by idleTimeout.
 */
export function setTimeouts (server: ListenerServer, { headersTimeout = defaultHeadersTimeout }: ListenerConfig): void {
  if (isPlainH2(server)) return
  const settings = server as Pick<http.Server, 'headersTimeout' | 'requestTimeout'> & { connectionsCheckingInterval?: number }
  settings.headersTimeout = headersTimeout
  settings.requestTimeout = Math.max(300_000, headersTimeout)
  // Its checking interval is set when it starts listening (a reload cannot change it); the timeouts are read at each check.
  if (!server.listening) settings.connectionsCheckingInterval = Math.min(1000, Math.ceil(headersTimeout / 10))
}

const kSessions = Symbol('goload.sessions')
type SessionServer = (http2.Http2SecureServer | http2.Http2Server) & { [kSessions]?: Set<http2.ServerHttp2Session> }

/**
 * Closes (GOAWAY, then the connection) each HTTP/2 session once it has had no stream open for `idleTimeout`.
 * Node's server timeout would end a session with streams open too (a long poll, a gRPC stream waiting for its
 * next message): the session's own timer only fires for an idle connection here. The sessions are kept for close.
 */
function closeIdleSessions (server: SessionServer, idleTimeout: number): void {
  const sessions = new Set<http2.ServerHttp2Session>()
  server[kSessions] = sessions
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session)
    session.once('close', () => { sessions.delete(session) })
    let open = 0
    session.on('stream', (stream: http2.ServerHttp2Stream) => {
      open++
      // Counted from the last stream's end (setTimeout starts the timer anew).
      stream.once('close', () => { if (--open === 0 && !session.destroyed) session.setTimeout(idleTimeout) })
    })
    // The timer restarts with every frame either way. A listener of our own, since setTimeout's callback is
    // called once only: the timer fires while a stream is open too, and must be heard the next time.
    session.on('timeout', () => { if (open === 0) session.close() })
    session.setTimeout(idleTimeout)
  })
}

/**
 * Stops accepting, and closes every connection once its requests in flight have ended: HTTP/1.1 ones as they go
 * idle (Node 20's server.close() leaves idle keep-alive sockets open until keepAliveTimeout), HTTP/2 ones with
 * GOAWAY, which lets their streams open finish and tells the client to open no more.
 */
export async function closeListenerServer (server: ListenerServer): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => { resolve() }))
  for (const session of (server as SessionServer)[kSessions] ?? []) session.close()
  if (isPlainH2(server)) {
    await closed
    return
  }
  server.closeIdleConnections()
  const idle = setInterval(() => { server.closeIdleConnections() }, 100)
  await closed
  clearInterval(idle)
}

/** h2c: the one kind with no HTTP/1.1 in it (node:http2 exports no class to test against). */
function isPlainH2 (server: ListenerServer): server is http2.Http2Server {
  return !(server instanceof http.Server) && !(server instanceof tls.Server)
}
