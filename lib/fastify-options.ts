import Fastify, { type FastifyRequest, type FastifyServerOptions, type LogController as FastifyLogController } from 'fastify'

// Recent Fastify 5 releases take disableRequestLogging through a LogController, and router options under
// routerOptions, and warn about the top-level options, which older ones know only.
const { LogController } = Fastify as { LogController?: typeof FastifyLogController }

/** Fastify's own pair of log lines per request ("incoming request", "request completed"), off where `disable` says. */
export function requestLogging (disable: boolean | ((request: FastifyRequest) => boolean)): FastifyServerOptions {
  return LogController === undefined
    ? { disableRequestLogging: disable }
    : { logController: new LogController({ disableRequestLogging: disable }) }
}

/** The longest path parameter the router takes (Fastify's default: 100 characters, else 414). */
export function maxParamLength (length: number): FastifyServerOptions {
  return LogController === undefined ? { maxParamLength: length } : { routerOptions: { maxParamLength: length } }
}
