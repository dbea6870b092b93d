import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import replyFrom from '@fastify/reply-from'
import type { Dispatcher } from 'undici'
import { BadGatewayError, BadRequestHostError, BadRequestTargetError, GatewayTimeoutError, PipelineFullError } from '../errors.js'
import { matchRoute, type ProxyRoute } from '../routing/proxy-route.js'
import type { RouteTable } from '../routing/table.js'
import { kExchange, type Response } from './forward.js'
import { answerGrpc, isGrpc } from './grpc.js'
import { maxWaiting, turnNow, waitTurn } from './pipeline.js'
import { switchboard } from './upstream-agent.js'

/**
 * The Fastify routes for one prefix, in their own encapsulated context so that reply.from, the body pass-through and
 * the error handler never meet the app's own routes. Fastify matches the path; the table then picks the route
 * host-first among every registration of the instance (see RouteTable).
 */
export async function proxyRoutes (fastify: FastifyInstance, { table }: { table: RouteTable<ProxyRoute> }): Promise<void> {
  // Our own lifecycle closes the agents (lib/index.ts), not reply-from.
  await fastify.register(replyFrom, { undici: switchboard as unknown as Dispatcher, disableRequestLogging: true, destroyAgent: false })

  // Bodies of any type are streamed to the backend as they arrive, never parsed.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
  fastify.setErrorHandler(answerError)

  // A connection's pipelined requests are taken one at a time (see pipeline.ts).
  const handler = (request: FastifyRequest, reply: FastifyReply): void => {
    if (turnNow(request.raw, reply.raw)) route(table, request, reply)
    else if (!waitTurn(request.raw, reply.raw, () => { route(table, request, reply) })) reply.send(new PipelineFullError(maxWaiting))
  }
  fastify.all('/', handler)
  fastify.all('/*', handler)
}

/** One request's match: check its Host and target, pick the route, rewrite its prefix, and hand it to the pool. */
function route (table: RouteTable<ProxyRoute>, request: FastifyRequest, reply: FastifyReply): void {
  const { authority, target: received, match } = matchRoute(table, request.raw)
  if (authority === undefined) {
    reply.send(new BadRequestHostError())
    return
  }
  if (request.raw.url === '*' && request.method === 'OPTIONS') {
    // `OPTIONS *` asks about the server, not a resource: the balancer answers it rather than let it become
    // `OPTIONS /` on the way.
    reply.code(204).header('allow', 'GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS').send()
    return
  }
  if (received === undefined) {
    if (match === undefined) reply.send(new BadRequestTargetError())
    else match.route.target.forwarder.refuse(request, reply, match.route.target.accessLog, new BadRequestTargetError(), match.route.target.tracing)
    return
  }
  if (match === undefined) {
    reply.callNotFound()
    return
  }
  let target = received
  const { rewritePrefix, preserveHost, accessLog, limiter, mirror, tracing, split } = match.route.target
  const forwarder = split === undefined ? match.route.target.forwarder : split.choose(request.headers)
  if (rewritePrefix !== undefined) target = rewrite(rewritePrefix, target.slice(match.prefixEnd))
  const host = preserveHost ? request.headers.host : undefined
  if (limiter === undefined) {
    forwarder.forward(request, reply, target, host, accessLog, tracing)
    // After the primary's, its listeners on the body in place: the copy reads the body as the primary does.
    if (mirror !== undefined) mirror.copy(request, target, host)
    return
  }
  // Counted once matched (a 404 never counts), and answered 429 before any backend is chosen.
  limiter(request, reply).then(() => {
    forwarder.forward(request, reply, target, host, accessLog, tracing)
    if (mirror !== undefined) mirror.copy(request, target, host)
  }, (error: FastifyError) => {
    if (error.statusCode === 429) forwarder.pool.shed.rate_limited++
    forwarder.refuse(request, reply, accessLog, error, tracing)
  })
}

/** `rewritePrefix` in place of the matched prefix: `/` and `/users?x=1` give `/users?x=1`, `/v2` and `?x=1` `/v2?x=1`. */
function rewrite (rewritePrefix: string, rest: string): string {
  const target = rewritePrefix.replace(/\/+$/, '') + rest
  return target.charCodeAt(0) === 47 /* '/' */ ? target : '/' + target
}

/**
 * Every answer the balancer makes itself: our FST_GOLOAD_* errors, as Fastify would serialise them but without
 * its error log with a stack (the failure was logged in one line where it happened, naming the backend).
 * A response body that failed before any byte of it reached the client becomes a clean 502 (504 for a stall):
 * the backend's headers (Cache-Control, Set-Cookie) never go out on our error. A gRPC call gets its gRPC status.
 */
function answerError (this: FastifyInstance, error: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const exchange = (reply.raw as Response)[kExchange]
  if (exchange?.responded === true && !isOurs(error)) {
    for (const name of reply.raw.getHeaderNames()) reply.raw.removeHeader(name)
    for (const name of Object.keys(reply.getHeaders())) reply.removeHeader(name)
    error = (error as { code?: string }).code === 'UND_ERR_BODY_TIMEOUT' ? new GatewayTimeoutError() : new BadGatewayError()
  }
  if (!isOurs(error)) {
    reply.send(error)
    return
  }
  const statusCode = error.statusCode!
  if (exchange !== undefined) exchange.code = error.code
  if (isGrpc(request.headers)) {
    answerGrpc(reply, statusCode, error.code, error.message)
    return
  }
  reply.code(statusCode).send({ statusCode, code: error.code, error: STATUS_CODES[statusCode], message: error.message })
}

function isOurs (error: FastifyError): boolean {
  return typeof error.code === 'string' && error.code.startsWith('FST_GOLOAD_')
}
