import { buildConnector, Client, errors, H2CClient, Pool, type Agent, type Dispatcher } from 'undici'
import type { PoolConfig } from '../options.js'
import type { TlsOptions } from '../tls-options.js'

/**
 * Requests in flight on one HTTP/2 connection to an h2c backend: undici's H2CClient default, and the
 * SETTINGS_MAX_CONCURRENT_STREAMS of Node's (and grpc-js's) servers. `pipelining` is an HTTP/1.1 notion: with its
 * default of 1, each gRPC call would open a connection of its own.
 */
const h2cStreams = 100

/**
 * The undici Agent options that connect a pool's backends: within `connectTimeout` on a timer of our own (undici's
 * fires up to a second late), and over TLS as the pool's tls and allowH2 options say. undici's Agent has one
 * connection pool per origin and builds each with `factory`: ours gives each https origin the TLS settings of its
 * backend, looked up when its first request comes, so a backend that add() brings in later gets its own too. An
 * origin nobody recorded (an address DNS discovery found) connects with the pool's tls. An h2c origin gets
 * H2CClients, HTTP/2 with prior knowledge, each carrying up to 100 calls at once.
 */
export function agentConnect (config: Pick<PoolConfig, 'tls' | 'allowH2' | 'backendTls' | 'connectTimeout' | 'h2c'>): Pick<Agent.Options, 'factory' | 'allowH2'> {
  return {
    allowH2: config.allowH2,
    factory (origin: string | URL, options: object): Dispatcher {
      const key = typeof origin === 'string' ? origin : origin.origin
      const settings = options as Pool.Options
      if (config.h2c.has(key)) {
        // useH2c (untyped in undici 7.30) marks the plain socket as HTTP/2, as H2CClient's own connector does.
        const connect = withTimeout(buildConnector({ timeout: 0, useH2c: true } as buildConnector.BuildOptions), config.connectTimeout)
        const h2c = { ...settings, connect, pipelining: h2cStreams, maxConcurrentStreams: h2cStreams }
        const client = (at: URL, options: object): Dispatcher => new H2CClient(at, options as H2CClient.Options).on('connect', multiplexing)
        return settings.connections === 1 ? client(new URL(key), h2c) : new Pool(origin, { ...h2c, factory: client })
      }
      const tls = config.backendTls.has(key) ? config.backendTls.get(key) : config.tls
      const connect = withTimeout(connector(tls, settings), config.connectTimeout)
      if (settings.connections === 1) {
        const client = new Client(origin, { ...settings, connect })
        return config.allowH2 ? client.on('connect', multiplexing) : client
      }
      // A connection that ALPN made HTTP/2 multiplexes too.
      const factory = config.allowH2 ? (at: URL, options: object): Dispatcher => new Client(at, options).on('connect', multiplexing) : undefined
      return new Pool(origin, { ...settings, connect, factory })
    }
  }
}

/**
 * undici's HTTP/2 client sends a POST, or a request with a streamed body (every gRPC call is both), only once no other
 * request is in flight on its connection (client-h2.js busy(), reasoning from HTTP/1.1, where a body that fails breaks
 * the requests pipelined behind it). HTTP/2 streams fail alone, and with that rule one long gRPC stream would hold every
 * call behind it. So each h2c connection's check is replaced as it connects ('connect' comes before its queue is
 * served); the cap of streams per connection (pipelining) still holds. undici keeps the connection's protocol behind an
 * internal symbol, found by its name: without it (another undici), calls are sent one at a time, never wrongly.
 */
function multiplexing (this: Dispatcher): void {
  const client = this as unknown as Record<symbol, { version?: string, busy?: () => boolean } | undefined>
  const context = Object.getOwnPropertySymbols(client).find((symbol) => symbol.description === 'http context')
  const protocol = context === undefined ? undefined : client[context]
  if (protocol?.version === 'h2') protocol.busy = notBusy
}

function notBusy (): boolean {
  return false
}

function connector (tls: TlsOptions | undefined, settings: Pool.Options): buildConnector.connector {
  const { servername, ...rest } = tls ?? {}
  const base = typeof settings.connect === 'object' ? settings.connect : undefined
  const connect = buildConnector({ ...base, ...rest, timeout: 0, allowH2: settings.allowH2 ?? false })
  if (servername === undefined) return connect
  // undici passes the servername it takes from the request's Host header (the backend URL's hostname), which would
  // win over a servername given here: the one the user set is the name the backend's certificate is checked against.
  return (options, callback) => { connect({ ...options, servername }, callback) }
}

/** A connector that gives up after `ms`, on a native timer: one per new connection, none per request. */
function withTimeout (connect: buildConnector.connector, ms: number): buildConnector.connector {
  return (options, callback) => {
    let settled = false
    const socket = connect(options, (error, connected) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (error === null) callback(null, connected!)
      else callback(error, null)
    }) as unknown as { destroy: () => void } | undefined
    const timer = setTimeout(() => {
      if (settled) return
      settled = true
      socket?.destroy()
      callback(new errors.ConnectTimeoutError(`no connection to ${options.hostname} within ${ms} ms`), null)
    }, ms)
  }
}

/**
 * Errors of a TLS handshake that failed: the backend's certificate was refused, or the backend refused ours or
 * spoke no TLS or no protocol we offered. The request was never sent, so it may go to another backend whatever its
 * method, and it is the backend's failure for passive health, as nginx counts an SSL handshake error.
 */
export const handshakeCodes = [
  // The backend's certificate (Node's names for OpenSSL's verify results).
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'UNABLE_TO_GET_ISSUER_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'CERT_NOT_YET_VALID', 'CERT_SIGNATURE_FAILURE', 'CERT_UNTRUSTED', 'CERT_REJECTED',
  'CERT_REVOKED', 'INVALID_CA', 'INVALID_PURPOSE', 'CERT_CHAIN_TOO_LONG', 'PATH_LENGTH_EXCEEDED', 'ERR_TLS_CERT_ALTNAME_INVALID',
  // The backend's side: plain HTTP on the port, no protocol in common, our certificate refused.
  'ERR_SSL_WRONG_VERSION_NUMBER', 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE',
  'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA', 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
  'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'ERR_SSL_TLSV1_ALERT_ACCESS_DENIED', 'ERR_SSL_TLSV1_UNRECOGNIZED_NAME'
]
