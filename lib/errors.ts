import createError from '@fastify/error'

// One flat list, as @fastify/reply-from keeps its own. Every answer the balancer makes itself carries one of these
// codes; messages stay generic because they reach clients, and the backend concerned goes to the log instead.
export const InvalidOptionError = createError('FST_GOLOAD_INVALID_OPTION', 'fastify-goload: %s', 500, TypeError)
export const NoBackendError = createError('FST_GOLOAD_NO_BACKEND', 'No backend available', 503)
export const BadGatewayError = createError('FST_GOLOAD_BAD_GATEWAY', 'Bad gateway: the backend failed', 502)
export const GatewayTimeoutError = createError('FST_GOLOAD_GATEWAY_TIMEOUT', 'Gateway timeout: the backend did not answer in time', 504)
export const UnknownPoolError = createError('FST_GOLOAD_UNKNOWN_POOL', 'fastify-goload: no pool is named %s', 500)
export const UnknownRouteError = createError('FST_GOLOAD_UNKNOWN_ROUTE', 'fastify-goload: no route that splits between pools has the id %s', 500)
export const UnknownBackendError = createError('FST_GOLOAD_UNKNOWN_BACKEND', 'fastify-goload: no backend has the url or id %s', 500)
export const QueueFullError = createError('FST_GOLOAD_QUEUE_FULL', 'Service unavailable: every backend is busy and the queue is full', 503)
export const QueueTimeoutError = createError('FST_GOLOAD_QUEUE_TIMEOUT', 'Service unavailable: no backend became free in time', 503)
export const BadRequestTargetError = createError('FST_GOLOAD_BAD_REQUEST_TARGET', 'Bad request: the path has a dot segment, a control character or an invalid escape', 400)
export const BadRequestHostError = createError('FST_GOLOAD_BAD_HOST', 'Bad request: Host must be sent once, as a host name or address with an optional port', 400)
export const ClientTimeoutError = createError('FST_GOLOAD_CLIENT_TIMEOUT', 'Request timeout: the request body came too slowly', 408)
export const RateLimitedError = createError('FST_GOLOAD_RATE_LIMITED', 'Too many requests: rate limit exceeded, retry in %s', 429)
export const UnauthorizedError = createError('FST_GOLOAD_UNAUTHORIZED', 'Unauthorized: send the admin token as Authorization: Bearer <token>', 401)
export const MisdirectedRequestError = createError('FST_GOLOAD_MISDIRECTED_REQUEST', 'Misdirected request: without a token, the admin answers only a Host naming this machine (localhost, 127.x.x.x, [::1]), not %s', 421)
export const CrossOriginError = createError('FST_GOLOAD_CROSS_ORIGIN', 'Forbidden: the admin takes actions only from its own origin, not from %s', 403)
export const UnsupportedMediaTypeError = createError('FST_GOLOAD_UNSUPPORTED_MEDIA_TYPE', 'Unsupported media type: an action takes an application/json body or none, not %s', 415)
export const NoRouteError = createError('FST_GOLOAD_NO_ROUTE', 'Not found: no route on this listener takes this path for this host', 404)
export const NoRouteForHostError = createError('FST_GOLOAD_NO_ROUTE', 'Misdirected request: no route on this listener serves this host', 421)
export const CircuitOpenError = createError('FST_GOLOAD_CIRCUIT_OPEN', 'Service unavailable: the pool\'s backends are failing and its circuit is open', 503)
