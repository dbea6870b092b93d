import type { IncomingMessage } from 'node:http'
import type { Split } from '../policy/split.js'
import type { Forwarder } from '../proxy/forward.js'
import type { Limiter } from '../proxy/rate-limit.js'
import type { Mirror } from '../policy/mirror.js'
import type { RouteTracing } from '../tracing/tracing.js'
import { upstreamTarget } from '../proxy/target.js'
import { checkedHost, requestHost } from './host.js'
import type { Match, RouteTable } from './table.js'

/** Where a matched request goes: a pool's forwarder, and how the route sends the target and Host on. */
export interface ProxyRoute {
  /** The pool's forwarder; a split's first pool, which answers the requests it refuses. */
  forwarder: Forwarder
  /** A weighted split between pools: it picks each request's forwarder. */
  split: Split | undefined
  rewritePrefix: string | undefined
  preserveHost: boolean
  /** Upgrades are tunnelled (true), or sent on as plain requests. */
  websocket: boolean
  /** The route's rate limit, if it has one. */
  limiter: Limiter | undefined
  /** One access line per request. */
  accessLog: boolean
  /** Copies of the route's requests to another pool, if it mirrors. */
  mirror: Mirror | undefined
  /** The route's spans, when it has the tracing option. */
  tracing: RouteTracing | undefined
}

export interface RouteMatch {
  /** The authority the request is for (see checkedHost); undefined when its Host is refused, and nothing matched. */
  authority: string | undefined
  /** The request target to forward; undefined when it is refused (a dot segment, a control character). */
  target: string | undefined
  /** The route it takes; a refused target is matched as received, so that its route logs the refusal. */
  match: Match<ProxyRoute> | undefined
}

/** The one matching of a request to goload's routes, for requests and upgrades alike. */
export function matchRoute (table: RouteTable<ProxyRoute>, request: IncomingMessage): RouteMatch {
  const authority = checkedHost(request)
  const url = request.url ?? '/'
  const target = upstreamTarget(url)
  if (authority === undefined) return { authority, target, match: undefined }
  return { authority, target, match: table.match(target ?? url, requestHost(authority), request.method!, request.headers) }
}
