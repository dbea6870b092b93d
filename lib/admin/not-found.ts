import type { FastifyReply, FastifyRequest } from 'fastify'

/** The admin's routes, for a request that matched none: what to send instead. */
const routes = 'GET /stats, GET /events, GET /metrics, POST /pools/:pool/backends, DELETE /pools/:pool/backends/:backend, POST /pools/:pool/backends/:backend/drain or /undrain, GET /routes, PUT /routes/:route/weights'

/**
 * What the admin answers a request none of its routes takes: goload's shape, naming the routes and how a backend is
 * named in them, rather than Fastify's bare `Route POST:/pools/... not found`.
 */
export function adminRouteNotFound (request: FastifyRequest, reply: FastifyReply): FastifyReply {
  return reply.code(404).send({
    statusCode: 404,
    code: 'FST_GOLOAD_NO_ROUTE',
    error: 'Not Found',
    message: `no admin route ${request.method} ${request.url}: the admin has ${routes}, where :backend is the backend's id or its URL, as is (http://10.0.0.1:3000) or URL-encoded (http%3A%2F%2F10.0.0.1%3A3000)`
  })
}
