import { readdirSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { STATUS_CODES } from 'node:http'
import type { AddressInfo } from 'node:net'
import { extname } from 'node:path'
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance } from 'fastify'
import { InvalidOptionError } from '../errors.js'
import { maxParamLength, requestLogging } from '../fastify-options.js'
import type { PoolEntry } from '../registry.js'
import { actions } from './actions.js'
import { bearer, exposureProblem, tokenProblem } from './auth.js'
import { EventStreams } from './events.js'
import { healthRoutes, type Health } from './health.js'
import { actionGuard, ownHost } from './guard.js'
import { adminRouteNotFound } from './not-found.js'
import { Snapshots } from './snapshot.js'
import { splitActions } from './splits.js'
import type { SplitSource } from '../policy/split.js'
import type { CertificateSource } from '../tls/served.js'

export interface AdminOptions {
  host: string
  /** 0 lets the system choose. */
  port: number
  /**
   * Required of every data and action request as `Authorization: Bearer <token>`; required on a non-loopback host.
   * At least 16 characters, no whitespace. Without one, only a Host naming this machine is answered.
   */
  token?: string
  /** The live pools, walked on every use: a reload may replace them. */
  source: () => Iterable<PoolEntry>
  /** The routes that split between pools (weights, requests), walked on every use; without it, none. */
  splits?: SplitSource
  /** The TLS listeners' certificates, shown with their expiry. */
  certificates?: CertificateSource
  /** What GET /healthz and GET /readyz answer; without it, both are 404. */
  health?: Health
  /** Prometheus text for GET /metrics; without it, /metrics is 404. */
  metrics?: () => Promise<{ contentType: string, text: string }>
  /** The config in effect, secrets already hidden, for GET /config; without it, /config is 404. */
  config?: () => unknown
  log: FastifyBaseLogger
  /** ms an event stream lasts before the client is asked to reconnect (5 minutes): what bounds one that stopped reading. */
  streamMaxAge?: number
}

export interface Admin {
  /** http://host:port, with the real port. */
  readonly url: string
  readonly port: number
  close (): Promise<void>
}

// Every error the admin answers has { statusCode, code, error, message }; the pool's own errors say 500 for an
// unknown pool or backend, a coder's mistake in the plugin, but a request's here.
const statusOfCode: Record<string, number> = {
  FST_GOLOAD_UNKNOWN_POOL: 404,
  FST_GOLOAD_UNKNOWN_BACKEND: 404,
  FST_GOLOAD_UNKNOWN_ROUTE: 404,
  FST_GOLOAD_INVALID_OPTION: 400
}

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json'
}

/** The status page's files: lib/admin/page/ in development, dist/admin/page/ once built. */
const pageFolder = new URL('./page/', import.meta.url)

/**
 * The admin listener: the status page, GET /stats and /events (the pools' snapshots), /metrics, and the runtime
 * actions, on a Fastify instance and a port of its own, never the proxied traffic's.
 */
export async function startAdmin (options: AdminOptions): Promise<Admin> {
  const problem = exposureProblem(options.host, options.token)
  if (problem !== undefined) throw new InvalidOptionError(`admin: ${problem}`)
  const weakToken = options.token === undefined ? undefined : tokenProblem(options.token)
  if (weakToken !== undefined) throw new InvalidOptionError(`admin.token ${weakToken}`)
  const app = buildAdmin(options)
  try {
    // Fastify logs the line, once per address (localhost: 127.0.0.1 and ::1).
    await app.listen({ host: options.host, port: options.port, listenTextResolver: (address) => `goload admin on ${address}` })
  } catch (error) {
    await app.close()
    throw new InvalidOptionError(`admin: cannot listen on ${options.host}:${options.port}: ${(error as Error).message}`)
  }
  const { port } = app.server.address() as AddressInfo
  const url = `http://${options.host.includes(':') ? `[${options.host}]` : options.host}:${port}`
  return { url, port, close: () => app.close() }
}

function buildAdmin ({ host, token, source, splits = () => [], certificates, health, metrics, config, log, streamMaxAge }: AdminOptions): FastifyInstance {
  // Backend ids are URLs, %2F-encoded in a path: longer than Fastify's default of 100 characters.
  const app = Fastify({ loggerInstance: log, ...requestLogging(true), ...maxParamLength(2048) })
  const snapshots = new Snapshots(source, certificates, splits)
  const streams = new EventStreams(snapshots, source, log, streamMaxAge)
  // An open event stream is a hijacked reply that close() would wait for forever.
  app.addHook('preClose', (done) => { streams.close(); done() })

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const statusCode = statusOfCode[error.code] ?? error.statusCode ?? 500
    if (statusCode >= 500) request.log.error(error)
    reply.code(statusCode).send({ statusCode, code: error.code, error: STATUS_CODES[statusCode], message: error.message })
  })
  app.setNotFoundHandler(adminRouteNotFound)
  // Before anything else, the page included: a request a page elsewhere made the browser send is refused.
  if (token === undefined) app.addHook('onRequest', ownHost(host))
  app.addHook('onRequest', actionGuard)

  // An action's body is optional: an empty one with Content-Type application/json is no body, not a 400. JSON is the
  // only type read: Fastify's text/plain parser would take a body any page can send as a backend's URL.
  const json = app.getDefaultJsonParser('error', 'error')
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    if (body === '') done(null, undefined)
    else json(request, body as string, done)
  })

  // The page and its files need no token: a browser cannot send one when it opens a page. The page asks for it.
  for (const [path, file] of pageFiles()) {
    app.get(path, async (request, reply) => {
      reply.type(contentTypes[extname(file)] ?? 'application/octet-stream').header('cache-control', 'no-cache')
      return await readFile(new URL(file, pageFolder))
    })
  }

  if (health !== undefined) healthRoutes(app, health)

  app.register(async (data) => {
    if (token !== undefined) data.addHook('onRequest', bearer(token))
    data.get('/stats', async () => snapshots.snapshot())
    data.get('/events', async (request, reply) => { streams.open(reply) })
    if (metrics !== undefined) {
      data.get('/metrics', async (request, reply) => {
        const { contentType, text } = await metrics()
        return reply.type(contentType).send(text)
      })
    }
    if (config !== undefined) data.get('/config', async () => config())
    actions(data, source)
    splitActions(data, splits)
  })
  return app
}

/** The route of each file of the page: / for index.html. */
function pageFiles (): Array<[string, string]> {
  return readdirSync(pageFolder).filter((file) => !file.startsWith('.'))
    .map((file) => [file === 'index.html' ? '/' : `/${file}`, file])
}
