import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import goload, { type GoloadOptions } from '../../lib/index.js'
import { deadline } from './raw.js'

export type Handler = (request: http.IncomingMessage, response: http.ServerResponse) => void

export interface Backend {
  url: string
  server: http.Server
  /** Requests this backend has received. */
  received: number
  /** Requests it is handling right now, and the most it ever handled at once. */
  active: number
  maxActive: number
}

/** Answers "Hello from <id>" unless given its own handler. */
export function hello (id: string): Handler {
  return (request, response) => {
    request.resume()
    request.on('end', () => { response.end(`Hello from ${id}`) })
  }
}

/** A real backend listening on 127.0.0.1, closed when the test ends. */
export async function startBackend (t: Test, handler: Handler = hello('?')): Promise<Backend> {
  const backend: Backend = { url: '', server: http.createServer(), received: 0, active: 0, maxActive: 0 }
  backend.server.on('request', (request, response) => {
    backend.received++
    backend.active++
    backend.maxActive = Math.max(backend.maxActive, backend.active)
    response.once('close', () => { backend.active-- })
    handler(request, response)
  })
  await new Promise<void>((resolve) => backend.server.listen(0, '127.0.0.1', resolve))
  backend.url = `http://127.0.0.1:${(backend.server.address() as AddressInfo).port}`
  t.teardown(() => closeServer(backend.server))
  return backend
}

export async function closeServer (server: http.Server): Promise<void> {
  server.closeAllConnections()
  await deadline(new Promise((resolve) => server.close(resolve)), 5000, 'a backend to close')
}

/** A URL nothing listens on: a port that was just free. */
export async function deadUrl (): Promise<string> {
  const server = http.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return `http://127.0.0.1:${port}`
}

export interface Balancer {
  app: FastifyInstance
  url: string
  port: number
}

/** A Fastify app with goload registered, listening on 127.0.0.1, closed when the test ends. */
export async function startBalancer (t: Test, options: GoloadOptions, fastifyOptions: FastifyServerOptions = {}, setup?: (app: FastifyInstance) => void | Promise<void>): Promise<Balancer> {
  const app = Fastify(fastifyOptions)
  await setup?.(app)
  await app.register(goload, options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  return { app, url: `http://127.0.0.1:${port}`, port }
}

/** Resolves once condition() holds, checking on every turn of the event loop; fails after `ms`. */
export async function waitFor (condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

/** Every pending count of every pool back at zero: each request released, none twice. */
export async function settled (app: FastifyInstance): Promise<void> {
  const idle = () => app.goload.names().every((name) => app.goload.pool(name).stats().backends.every((b) => b.pending === 0))
  await waitFor(idle, 'every pending count to return to 0')
}

export function pendingCounts (app: FastifyInstance): number[] {
  return app.goload.stats().backends.map((b) => b.pending)
}
