import type { HostMatcher } from './host.js'
import { matchPath, matchPrefix, rawEnd } from './path.js'

/** One registration as the router sees it: what a request must match, and where it then goes. */
export interface Route<Target> {
  readonly host: HostMatcher | undefined
  /** '' for every path. */
  readonly prefix: string
  /** Uppercase method names; undefined for every method. */
  readonly methods: ReadonlySet<string> | undefined
  readonly headers: ReadonlyArray<readonly [name: string, value: string | RegExp]>
  readonly target: Target
}

export interface Match<Target> {
  route: Route<Target>
  /** Where the prefix ends in the raw request target. */
  prefixEnd: number
}

/** A route, with its prefix in the form of the paths it is matched against (see matchPath). */
interface Entry<Target> {
  route: Route<Target>
  prefix: string
}

/**
 * Every route of one Fastify instance, most specific first, as nginx picks a server and then a location: the host
 * first (exact, then the longest wildcard, then a RegExp, then none), then the longest prefix, then the route with
 * more method and header conditions, then the one registered first. Fastify's router matches the path before the
 * host, so a request reaches a handler at the longest prefix it fits, and this table then decides host-first among
 * all the routes; a match is the first route in this order whose conditions all hold.
 */
export class RouteTable<Target> {
  readonly #routes: Array<Entry<Target>> = []

  /** Adds a route; returns the one it duplicates (same host, prefix, methods and headers) instead, if any. */
  add (route: Route<Target>): Route<Target> | undefined {
    const same = this.#routes.find((other) => sameConditions(other.route, route))
    if (same !== undefined) return same.route
    this.#routes.push({ route, prefix: matchPrefix(route.prefix) })
    // A stable sort: among equals, the route registered first stays first.
    this.#routes.sort((a, b) => specificity(b.route) - specificity(a.route) || (b.route.host?.length ?? 0) - (a.route.host?.length ?? 0) || b.prefix.length - a.prefix.length || conditions(b.route) - conditions(a.route))
    return undefined
  }

  /**
   * The route a request takes, by its raw target (origin form): the prefix is matched against the target's matched
   * path (decoded, separators merged, parameters cut: see matchPath), so every spelling of a path takes the same
   * route and counts against the same rate limit. A target matchPath refuses is matched as received, only so that
   * the route it was meant for can log its refusal.
   */
  match (target: string, host: string, method: string, headers: Record<string, string | string[] | undefined>): Match<Target> | undefined {
    const path = matchPath(target) ?? target
    for (const { route, prefix } of this.#routes) {
      if (route.host !== undefined && !route.host.matches(host)) continue
      if (route.methods !== undefined && !route.methods.has(method)) continue
      if (!route.headers.every(([name, value]) => headerMatches(headers[name], value))) continue
      if (under(path, prefix)) return { route, prefixEnd: rawEnd(target, prefix.length) }
    }
    return undefined
  }
}

/** The prefix ends at a segment boundary: `/api` holds `/api` and `/api/x`, not `/apix`. */
function under (path: string, prefix: string): boolean {
  if (prefix.length === 0) return true
  return path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* '/' */)
}

function specificity (route: Route<unknown>): number {
  return route.host?.rank ?? 0
}

function conditions (route: Route<unknown>): number {
  return (route.methods === undefined ? 0 : 1) + route.headers.length
}

function headerMatches (received: string | string[] | undefined, wanted: string | RegExp): boolean {
  if (received === undefined) return false
  const value = Array.isArray(received) ? received.join(', ') : received
  return typeof wanted === 'string' ? value === wanted : wanted.test(value)
}

function sameConditions (a: Route<unknown>, b: Route<unknown>): boolean {
  return conditionsOf(a) === conditionsOf(b)
}

/** What a request must match to take this route, as one string: equal for routes no request could tell apart. */
export function conditionsOf (route: Omit<Route<unknown>, 'target'>): string {
  return JSON.stringify([route.host?.source ?? '', route.prefix, [...(route.methods ?? [])].sort(), route.headers.map(([name, value]) => `${name}=${String(value)}`).sort()])
}
