import type { Problem } from './errors.js'
import type { ListenerConfig } from './schema.js'

// Several listener blocks on one host and port are one server, as nginx's `server` blocks on one `listen` are: the
// routes of all of them are served together, and a request's host picks among them (the route table ranks hosts).
// What belongs to the server, not to a route, must then be the same in every block of it.

/** nginx's client_header_timeout, and what the README has always said. */
export const defaultHeadersTimeout = 60_000

/** The settings of the server itself, in the order they are reported. */
export const serverSettings = ['tls', 'http2', 'trustProxy', 'proxyProtocol', 'redirectHttps', 'headersTimeout'] as const

type ServerSetting = typeof serverSettings[number]

/** Where a block listens: blocks with the same place are one server. */
export function placeOf ({ host, port }: Pick<ListenerConfig, 'host' | 'port'>): string {
  return `${host}:${port}`
}

/** One server: its blocks merged, named by its first block's index (for messages: `listeners[2]: port 80 is in use`). */
export interface ListenerServerConfig {
  index: number
  listener: ListenerConfig
}

/** The servers of a config's listener blocks, in the order of their first blocks; each block's routes in file order. */
export function serversOf (listeners: ListenerConfig[]): ListenerServerConfig[] {
  const servers = new Map<string, ListenerServerConfig>()
  listeners.forEach((listener, index) => {
    const server = servers.get(placeOf(listener))
    if (server === undefined) {
      servers.set(placeOf(listener), { index, listener })
    } else if (listener.routes !== undefined) {
      server.listener = { ...server.listener, routes: [...(server.listener.routes ?? []), ...listener.routes] }
    }
  })
  return [...servers.values()]
}

/**
 * A block that cannot be served with the blocks before it on its port: a server setting that differs from the
 * first block's, or another host on a port that a block listens on for every address (the second listen would fail).
 */
export function listenerBlockProblems (listeners: ListenerConfig[]): Problem[] {
  const problems: Problem[] = []
  const firstOnPort = new Map<number, number>()
  const firstAt = new Map<string, number>()
  listeners.forEach((listener, index) => {
    const other = firstOnPort.get(listener.port)
    if (other === undefined) firstOnPort.set(listener.port, index)
    const first = firstAt.get(placeOf(listener))
    if (first === undefined) {
      firstAt.set(placeOf(listener), index)
      if (other === undefined) return
      const { host } = listeners[other]
      const why = isEveryAddress(host)
        ? `listeners[${other}] listens on port ${listener.port} of every address (${host}), which leaves the port to no other server`
        : isEveryAddress(listener.host) ? `listeners[${other}] listens on port ${listener.port} of ${host}, and ${listener.host} (every address) would take the port from it` : undefined
      if (why !== undefined) problems.push({ path: ['listeners', index, 'host'], message: `${why}: give this block host ${host} (its routes then join that server) or another port` })
      return
    }
    for (const key of serverSettings) {
      const [mine, theirs] = [effective(listener, key), effective(listeners[first], key)]
      // http2's default follows tls: said once, as tls.
      if (key === 'http2' && (listener.tls === undefined) !== (listeners[first].tls === undefined)) continue
      if (JSON.stringify(mine) === JSON.stringify(theirs)) continue
      problems.push({
        path: ['listeners', index, key],
        message: `listeners[${first}] serves port ${listener.port} too, ${describe(key, theirs, mine)}: blocks on one port are one server and must agree on ${serverSettings.slice(0, -1).join(', ')} and ${serverSettings.at(-1)!}`
      })
    }
  })
  return problems
}

/** A setting as the server would apply it: an unset one is its default, so writing the default changes nothing. */
function effective (listener: ListenerConfig, key: ServerSetting): unknown {
  switch (key) {
    case 'http2': return listener.http2 ?? listener.tls !== undefined
    case 'trustProxy': return listener.trustProxy ?? false
    case 'proxyProtocol': return listener.proxyProtocol ?? false
    case 'redirectHttps': return listener.redirectHttps === true ? 443 : listener.redirectHttps
    case 'headersTimeout': return listener.headersTimeout ?? defaultHeadersTimeout
    default: return listener[key]
  }
}

/** The first block's value, as it reads beside another one's. TLS settings are not shown: they can be long. */
function describe (key: ServerSetting, value: unknown, other: unknown): string {
  if (value === undefined) return `without ${key}`
  if (key === 'tls') return other === undefined ? 'with tls' : 'with other tls settings'
  return `with ${key} ${typeof value === 'object' ? JSON.stringify(value) : String(value)}`
}

function isEveryAddress (host: string): boolean {
  return host === '0.0.0.0' || host === '::' || /^(0*:){2,7}0*$/.test(host)
}
