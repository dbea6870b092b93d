import { BlockList, isIPv4, type Server, type Socket } from 'node:net'
import tls from 'node:tls'
import type { ListenerConfig } from '../config/schema.js'
import { namedRanges } from '../config/trusted-proxies.js'
import { parseProxyHeader, ProxyHeaderError, type ProxySource } from './proxy-protocol-header.js'

/** nginx's proxy_protocol_timeout: how long a connection may take to send its header. */
export const defaultProxyProtocolTimeout = 30_000

/** A listener's `proxyProtocol`, ready for each connection. */
export interface ProxyProtocol {
  /** The peers that may send a header; undefined: any. A connection from another one is closed at once. */
  trusted: BlockList | undefined
  /** ms a connection may take to send the whole header before it is closed. */
  timeout: number
}

/** What `listeners[].proxyProtocol` stands for; undefined when it is off. Its entries were checked with the config. */
export function proxyProtocolOf ({ proxyProtocol }: Pick<ListenerConfig, 'proxyProtocol'>): ProxyProtocol | undefined {
  if (proxyProtocol === undefined || proxyProtocol === false) return undefined
  const { trusted: entries, timeout = defaultProxyProtocolTimeout } = proxyProtocol === true ? {} : proxyProtocol
  let trusted: BlockList | undefined
  if (entries !== undefined) {
    trusted = new BlockList()
    for (const entry of entries.flatMap((entry) => Object.hasOwn(namedRanges, entry) ? namedRanges[entry] : [entry])) {
      const [address, prefix] = entry.split('/')
      const family = isIPv4(address) ? 'ipv4' : 'ipv6'
      if (prefix === undefined) trusted.addAddress(address, family)
      else trusted.addSubnet(address, Number(prefix), family)
    }
  }
  return { trusted, timeout }
}

type ConnectionListener = (this: Server, socket: Socket) => void

/**
 * Makes every connection to `server` start with a PROXY protocol header while `current()` says so (read at each
 * connection, so a reload applies to the next ones): the header is read off the socket, its client becomes the
 * socket's remote address (so `request.ip`, X-Forwarded-For, the access line and every key made from them), and
 * the socket, with what followed the header put back, goes to the server's own 'connection' listeners: HTTP/1.1,
 * TLS (the header comes before the ClientHello) or HTTP/2 alike, as Node's servers take bytes already read from a
 * socket. A connection from a peer not trusted, without a valid header, or whose header is not whole within the
 * timeout, is closed without a byte written. Call it once every 'connection' listener of the server is in place.
 */
export function acceptProxyProtocol (server: Server, current: () => ProxyProtocol | undefined, refusals: RefusalLog): void {
  const refused = refusalLogger(refusals)
  const listeners = server.listeners('connection') as ConnectionListener[]
  server.removeAllListeners('connection')
  const handOver = (socket: Socket): void => {
    for (const listener of listeners) listener.call(server, socket)
  }
  // server.close() waits for every connection to end. One still sending its header has no request in flight (the
  // server has not even seen it): dropped at once, like an idle keep-alive one, not after its timeout.
  const waiting = new Set<Socket>()
  let closing = false
  const close = server.close
  server.close = function (this: Server, ...args: Parameters<Server['close']>) {
    closing = true
    for (const socket of waiting) socket.destroy()
    return close.apply(this, args)
  }
  server.on('connection', (socket: Socket) => {
    const settings = current()
    if (settings === undefined) {
      handOver(socket)
      return
    }
    const peer = socket.remoteAddress
    if (peer === undefined || (settings.trusted !== undefined && !settings.trusted.check(peer, socket.remoteFamily === 'IPv6' ? 'ipv6' : 'ipv4'))) {
      socket.destroy()
      refused(`a connection from ${peer ?? 'a peer gone already'}, not trusted to send a PROXY protocol header`)
      return
    }
    waiting.add(socket)
    readHeader(socket, settings.timeout, (source) => {
      waiting.delete(socket)
      if (source !== undefined) claim(socket, source)
      handOver(socket)
    }, (reason) => {
      waiting.delete(socket)
      socket.destroy()
      if (!closing) refused(`a connection from ${peer}: ${reason}`)
    })
  })
  // A TLS socket asks the TCP handle under it for its peer, past the socket the header was read from.
  if (server instanceof tls.Server) {
    server.prependListener('secureConnection', (socket: tls.TLSSocket & { _parent?: Socket & { [kSource]?: ProxySource } }) => {
      const source = socket._parent?.[kSource]
      if (source !== undefined) claim(socket, source)
    })
  }
}

const kSource = Symbol('goload.proxySource')

/** Where refused connections are told (goload's logger), and the listener they came to (`0.0.0.0:8080`). */
export interface RefusalLog {
  log: { warn: (message: string) => void, debug: (message: string) => void }
  listener: string
}

/**
 * A balancer sending no header (or the listener's clients reaching it directly) closes every connection: said at
 * warn, since nothing else would show it, but at most one line every 10 s, so that nobody can flood the log by
 * connecting; the others at debug.
 */
function refusalLogger ({ log, listener }: RefusalLog): (reason: string) => void {
  let quietUntil = 0
  return (reason) => {
    const line = `goload: ${listener}: closed ${reason}`
    const now = Date.now()
    if (now < quietUntil) {
      log.debug(line)
    } else {
      quietUntil = now + 10_000
      log.warn(line)
    }
  }
}

/** The socket's remote address, port and family are the client's from now on, for every reader. */
function claim (socket: Socket & { [kSource]?: ProxySource }, source: ProxySource): void {
  socket[kSource] = source
  Object.defineProperties(socket, {
    remoteAddress: { value: source.address, configurable: true },
    remotePort: { value: source.port, configurable: true },
    remoteFamily: { value: source.family, configurable: true }
  })
}

/**
 * Reads until the header is whole, then puts back what came after it (the client's first bytes may share a packet
 * with the header) and calls `done`, or calls `fail` as soon as the bytes cannot be a header, the peer stops
 * early, or `timeout` passes. The parser bounds the bytes kept: a v1 line is refused past 107 bytes, a v2 header
 * at its fixed 16 bytes when its length is past the cap.
 */
function readHeader (socket: Socket, timeout: number, done: (source: ProxySource | undefined) => void, fail: (reason: string) => void): void {
  let received: Buffer = Buffer.alloc(0)
  const stop = (): void => {
    clearTimeout(timer)
    socket.off('data', onData)
    socket.off('end', onEnd)
    socket.off('close', onClose)
    socket.off('error', onEnd)
  }
  const onData = (chunk: Buffer): void => {
    received = received.length === 0 ? chunk : Buffer.concat([received, chunk])
    let header
    try {
      header = parseProxyHeader(received)
    } catch (error) {
      if (!(error instanceof ProxyHeaderError)) throw error
      stop()
      fail(error.message)
      return
    }
    if (header === undefined) return
    stop()
    // Paused, so that what comes next waits for the server's listeners. A TLS or HTTP/2 server takes the socket's
    // handle over and reads what was put back itself: the socket must stay paused, or it would read past them. An
    // HTTP/1.1 server reads the socket's 'data' too: resumed, the stream hands it what was put back first.
    socket.pause()
    if (received.length > header.length) socket.unshift(received.subarray(header.length))
    done(header.source)
    if (socket.listenerCount('data') > 0) socket.resume()
  }
  // A reset comes as an error, or as the end when Node reads it so; either way the peer is gone.
  const onEnd = (error?: Error): void => {
    stop()
    fail(error?.message ?? `closed after ${received.length} bytes, before a whole PROXY protocol header`)
  }
  // 'close' passes whether it had an error: not one.
  const onClose = (): void => { onEnd() }
  const timer = setTimeout(() => {
    stop()
    fail(`no whole PROXY protocol header within ${timeout} ms (${received.length} bytes came)`)
  }, timeout)
  socket.on('data', onData)
  socket.on('end', onEnd)
  socket.on('close', onClose)
  socket.on('error', onEnd)
}
