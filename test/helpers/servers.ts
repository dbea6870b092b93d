import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { Worker } from 'node:worker_threads'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { Test } from 'tap'
import goload, { type GoloadOptions, type SharedPoolOptions } from '../../lib/index.js'
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

/** Answers 200 with the method and the body it received, and keeps each body in `bodies`. */
export function echo (bodies: string[]): Handler {
  return (request, response) => {
    let body = ''
    request.setEncoding('utf8')
    request.on('data', (chunk: string) => { body += chunk })
    request.on('end', () => {
      bodies.push(body)
      response.end(`${request.method} ${body}`)
    })
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

/** A backend that answers `body` after `ms`; `arrived` resolves once the first request has reached it. */
export async function startSlowBackend (t: Test, ms: number, body: string): Promise<{ url: string, arrived: Promise<void> }> {
  let reached = () => {}
  const arrived = new Promise<void>((resolve) => { reached = resolve })
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    reached()
    setTimeout(() => res.end(body), ms)
  })
  return { url: backend.url, arrived }
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
export async function startBalancer (t: Test, options: GoloadOptions | SharedPoolOptions, fastifyOptions: FastifyServerOptions = {}, setup?: (app: FastifyInstance) => void | Promise<void>): Promise<Balancer> {
  const app = Fastify(fastifyOptions)
  await setup?.(app)
  await app.register(goload, options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  return { app, url: `http://127.0.0.1:${port}`, port }
}

/**
 * Resolves once condition() holds, checking on every turn of the event loop; fails after `ms`. The default is long:
 * it only bounds a test that is failing anyway, and CI runs six files at once on two cores.
 */
export async function waitFor (condition: () => boolean, what: string, ms = 30_000): Promise<void> {
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

/**
 * A URL on 127.0.0.1 where a connection is never made: a listening socket whose accept queue is full and never
 * emptied, so the kernel drops each new SYN and a connect attempt gets no answer until its own timeout. The socket
 * belongs to a worker thread that blocks right after listening (it never accepts), and the queue (backlog 1: two
 * connections on Linux) is filled with held connections until one no longer completes.
 */
export async function startBlackhole (t: Test): Promise<string> {
  const stop = new Int32Array(new SharedArrayBuffer(4))
  const worker = new Worker(`
    const { parentPort, workerData: stop } = require('node:worker_threads')
    const server = require('node:net').createServer()
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      parentPort.postMessage(server.address().port)
      Atomics.wait(stop, 0, 0)
      process.exit(0)
    })`, { eval: true, workerData: stop, execArgv: [] })
  const exited = new Promise((resolve) => worker.once('exit', resolve))
  const fillers: net.Socket[] = []
  t.teardown(async () => {
    Atomics.store(stop, 0, 1)
    Atomics.notify(stop, 0)
    await deadline(exited, 5000, 'the blackhole thread to exit')
    for (const filler of fillers) filler.destroy()
  })
  const port = await deadline(new Promise<number>((resolve) => worker.once('message', resolve)), 5000, 'the blackhole to listen')
  for (let connected = true; connected;) {
    if (fillers.length === 8) throw new Error('the blackhole accept queue did not fill up with 8 connections')
    const filler = net.connect(port, '127.0.0.1').on('error', () => {})
    fillers.push(filler)
    // Each connection completes at once while the queue has room; the first one that does not in 500 ms found it full.
    connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => { resolve(false) }, 500)
      filler.once('connect', () => {
        clearTimeout(timer)
        resolve(true)
      })
    })
  }
  if (fillers.length < 2) throw new Error('no connection to the blackhole completed: it should queue some')
  return `http://127.0.0.1:${port}`
}
