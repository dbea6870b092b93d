import type { FastifyReply } from 'fastify'
import type { RequestTrace } from '../tracing/tracing.js'

/** What goload adds to an access line, under `goload`: undefined fields are left out of the line. */
export interface Access {
  /** The pool's name. */
  pool: string
  /** The backend that answered, or was tried last; none when no backend was chosen. */
  backend: string | undefined
  /** ms from the request written to the backend to its response headers. */
  upstreamTime: number | undefined
  /** Attempts after the first, at other backends. */
  retries: number
  /** Response body bytes written to the client. */
  bytes: number
  /** The FST_GOLOAD_* code of an answer the balancer made itself. */
  code: string | undefined
  /** The response did not reach its end: the client left, or the backend's body failed. */
  aborted?: true
  /** Why goload closed a tunnel: `idle`, no byte either way for tunnelIdleTimeout. */
  closed?: 'idle'
}

/** The message of every access line: the goload command's log output knows them by it (lib/cli/log-output.ts). */
export const accessMessage = 'goload: access'

interface AccessLine {
  req: FastifyReply['request']
  res: { statusCode: number }
  responseTime: number
  goload: Access
  trace_id?: string
  span_id?: string
}

/**
 * Writes one exchange's access line, once it has ended, through the request's logger, with the field names of
 * Fastify's own "request completed" line: `req` (Fastify's serializer: method, url as received, host,
 * remoteAddress, remotePort, never a header), `res.statusCode`, `responseTime` (ms to 0.01, Fastify's own clock).
 * A client that left before any response headers is logged 499, as nginx does; an upgrade, 101 once its tunnel closes.
 * `finished`: the response went out whole. A traced request's line has its `trace_id` and `span_id` (the server span's).
 */
export function logAccess (reply: FastifyReply, access: Access, upgraded: boolean, finished: boolean, trace: RequestTrace | undefined): void {
  const response = reply.raw
  // An upgrade the backend switched: its 101 went out on the socket, past Fastify's reply.
  let statusCode = upgraded ? 101 : response.statusCode
  if (!upgraded && !finished) {
    access.aborted = true
    if (!response.headersSent) statusCode = 499
  }
  if (access.upstreamTime !== undefined) access.upstreamTime = hundredths(access.upstreamTime)
  const line: AccessLine = { req: reply.request, res: { statusCode }, responseTime: hundredths(reply.elapsedTime), goload: access }
  // OpenTelemetry's names for them in a log record, top-level, where log tools look to link a line to its trace.
  if (trace !== undefined) {
    line.trace_id = trace.traceId
    line.span_id = trace.spanId
  }
  reply.request.log.info(line, accessMessage)
}

/** ms to 0.01 ms: a timer's last digits are noise, and a line is read by people too. */
function hundredths (ms: number): number {
  return Math.round(ms * 100) / 100
}
