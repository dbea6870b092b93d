import type { FastifyBaseLogger, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import rateLimit from '@fastify/rate-limit'
import { Redis } from 'ioredis'
import { RateLimitedError } from '../errors.js'
import type { RateLimitConfig } from '../options.js'
import { memoryStore } from './rate-limit-store.js'

/** Counts the request against its route's limit; rejects with FST_GOLOAD_RATE_LIMITED, headers set, when over it. */
export type Limiter = (request: FastifyRequest, reply: FastifyReply) => Promise<void>

// Redis must never slow a request much: past these, a request passes unlimited (skipOnError) rather than wait.
const redisConnectTimeout = 2000
const redisCommandTimeout = 500
const redisRetryCap = 1000

/**
 * One route's limiter, kept by @fastify/rate-limit in a context of its own: the plugin's onRoute hook there sees no
 * route (`global: false` too), so neither the app's routes nor another registration's are limited or counted. The
 * route calls the limiter itself once the route table has matched, so a 404 is never counted. `nameSpace` keys its
 * counts in Redis, where balancers with the same route share them.
 */
export async function startLimiter (fastify: FastifyInstance, config: RateLimitConfig, nameSpace: string): Promise<Limiter> {
  const redis = config.redis === undefined ? undefined : await connectRedis(config.redis, fastify.log)
  if (redis !== undefined) fastify.addHook('onClose', async () => { redis.disconnect() })
  let limiter: Limiter | undefined
  await fastify.register(async function goloadRateLimit (context) {
    await context.register(rateLimit, {
      global: false,
      max: config.max,
      timeWindow: config.timeWindow,
      keyGenerator: config.keyGenerator,
      allowList: config.allowList,
      redis,
      // Ours rather than @fastify/rate-limit's LocalStore: see MemoryStore.
      store: redis === undefined ? memoryStore(config.cache, fastify.log) : undefined,
      nameSpace,
      // Redis down: let requests through, never answer 500 for it.
      skipOnError: true,
      errorResponseBuilder: (_request, { after }) => new RateLimitedError(after)
    })
    limiter = context.rateLimit() as Limiter
  })
  return limiter!
}

/**
 * An ioredis client that never makes a request wait on a Redis that is away: no offline queue and no retry of a
 * command, so it fails at once and the request passes; the connection itself is retried in the background. Waits,
 * bounded, for the first connection, so the limit holds from the first request. One log line when Redis goes away,
 * one when it is back.
 */
async function connectRedis (url: string, log: FastifyBaseLogger): Promise<Redis> {
  const where = `Redis at ${new URL(url).host}`
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: redisConnectTimeout,
    commandTimeout: redisCommandTimeout,
    // A Redis that hangs (stopped, or a dead link that sends no reset) is dropped like one that went away.
    socketTimeout: redisCommandTimeout,
    retryStrategy: (times) => Math.min(times * 100, redisRetryCap)
  })
  let starting = true
  let away = false
  let lastError: Error | undefined
  client.on('error', (error: Error) => {
    lastError = error
    if (starting || away) return
    away = true
    log.warn({ err: error }, `goload: ${where} is unreachable; rate-limited requests pass unlimited until it is back`)
  })
  client.on('ready', () => {
    if (away) log.info(`goload: ${where} is back; rate limits hold again`)
    away = false
  })
  const ready = await new Promise<boolean>((resolve) => {
    const onReady = (): void => {
      clearTimeout(timer)
      resolve(true)
    }
    const timer = setTimeout(() => {
      client.off('ready', onReady)
      resolve(false)
    }, redisConnectTimeout)
    client.once('ready', onReady)
  })
  starting = false
  if (!ready) {
    away = true
    log.warn({ err: lastError }, `goload: ${where} not ready after ${redisConnectTimeout} ms; rate-limited requests pass unlimited until it connects`)
  }
  return client
}
