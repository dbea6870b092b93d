import type { FastifyInstance } from 'fastify'

/** Why this process should not be sent traffic now, or undefined while it should; asked at each probe. */
export type HealthCheck = () => string | undefined

/**
 * What the admin's probes ask. `live` (GET /healthz) fails while a listener does not accept or once a shutdown has
 * begun; `ready` (GET /readyz) fails then too, and is where conditions of readiness alone go. Neither looks at
 * the backends: every replica of the balancer shares them (see the README's Operating goload, health).
 */
export interface Health {
  live: HealthCheck
  ready: HealthCheck
}

/**
 * GET /healthz and GET /readyz: 200 `{ "status": "ok" }`, or 503 `{ "status": "unavailable", "reason" }`. No token:
 * a Docker HEALTHCHECK or a kubelet has none, and the answer says nothing a probe could not see by connecting.
 */
export function healthRoutes (app: FastifyInstance, { live, ready }: Health): void {
  for (const [path, check] of [['/healthz', live], ['/readyz', ready]] as const) {
    app.get(path, async (request, reply) => {
      const reason = check()
      reply.header('cache-control', 'no-store')
      if (reason === undefined) return { status: 'ok' }
      return await reply.code(503).send({ status: 'unavailable', reason })
    })
  }
}
