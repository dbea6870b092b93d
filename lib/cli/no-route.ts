import type { FastifyReply, FastifyRequest } from 'fastify'
import type { RouteConfig } from '../config/schema.js'
import { BadRequestHostError, NoRouteError, NoRouteForHostError } from '../errors.js'
import { checkedHost, hostMatcher, requestHost } from '../routing/host.js'

/**
 * What a listener answers a request none of its routes takes, in goload's shape rather than Fastify's
 * `Route GET:/ not found`: 400 for a Host that is not one, 421 for a host no route of the listener names (RFC 9110
 * §15.5.20: this server will not answer for it; a client that reused a connection meant for another name retries on
 * a new one), 404 for a path no route takes on a host it serves. nginx instead hands an unknown host to its
 * default_server (the first block) and Traefik answers 404: a misspelt host then looks like a missing page.
 */
export function noRoute (routes: Array<Pick<RouteConfig, 'host'>>): (request: FastifyRequest, reply: FastifyReply) => void {
  // A route without a host takes every host: then only the path can be missing; so too on a listener without routes.
  const matchers = routes.length === 0 || routes.some((route) => route.host === undefined) ? undefined : routes.map((route) => hostMatcher(route.host!))
  return (request, reply) => {
    const authority = checkedHost(request.raw)
    if (authority === undefined) reply.send(new BadRequestHostError())
    else if (matchers !== undefined && !matchers.some((matcher) => matcher.matches(requestHost(authority)))) reply.send(new NoRouteForHostError())
    else reply.send(new NoRouteError())
  }
}
