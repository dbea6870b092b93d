import { STATUS_CODES } from 'node:http'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import replyFrom from '@fastify/reply-from'
import type { Dispatcher } from 'undici'
import { BadGatewayError, GatewayTimeoutError } from '../errors.js'
import { kExchange, type Forwarder, type Response } from './forward.js'

/**
 * The proxy routes of one pool, in their own encapsulated context so that reply.from, the body pass-through, the
 * error handler and the undici agent of one registration never meet another's.
 */
export async function proxyRoutes (fastify: FastifyInstance, { forwarder }: { forwarder: Forwarder }): Promise<void> {
  await fastify.register(replyFrom, { undici: forwarder.agent as unknown as Dispatcher, disableRequestLogging: true })

  // Bodies of any type are streamed to the backend as they arrive, never parsed.
  fastify.removeAllContentTypeParsers()
  fastify.addContentTypeParser('*', (_request, payload, done) => { done(null, payload) })
  fastify.setErrorHandler(answerError)

  const forward = forwarder.forward.bind(forwarder)
  fastify.all('/', forward)
  fastify.all('/*', forward)
}

/**
 * Every answer the balancer makes itself: our FST_GOLOAD_* errors, as Fastify would serialise them but without
 * its error log with a stack (the failure was logged in one line where it happened, naming the backend).
 * A response body that failed before any byte of it reached the client becomes a clean 502 (504 for a stall):
 * the backend's headers (Cache-Control, Set-Cookie) never go out on our error.
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
  reply.code(statusCode).send({ statusCode, code: error.code, error: STATUS_CODES[statusCode], message: error.message })
}

function isOurs (error: FastifyError): boolean {
  return typeof error.code === 'string' && error.code.startsWith('FST_GOLOAD_')
}
