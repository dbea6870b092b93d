import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import type { EndpointSlice, SliceEndpoint } from '../../lib/discovery/endpoint-slices.js'
import type { KeyPair } from './tls.js'
import { closeServer } from './servers.js'

/** An endpoint of a test slice: a pod at an address, with the conditions the API would give (unset when left out). */
export interface TestEndpoint {
  pod: string
  address: string
  ready?: boolean
  serving?: boolean
  terminating?: boolean
  /** No conditions object at all. */
  bare?: boolean
}

/** A discovery.k8s.io/v1 EndpointSlice of `service`, its one TCP port named `http`. */
export function endpointSlice (name: string, service: string, port: number, endpoints: TestEndpoint[]): EndpointSlice {
  const slice: EndpointSlice & { apiVersion: string, kind: string, metadata: { labels: Record<string, string> } } = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, labels: { 'kubernetes.io/service-name': service } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port, protocol: 'TCP' }],
    endpoints: endpoints.map(({ pod, address, ready, serving, terminating, bare }): SliceEndpoint => ({
      addresses: [address],
      ...(bare === true ? {} : { conditions: { ready, serving, terminating } }),
      targetRef: { kind: 'Pod', name: pod }
    }))
  }
  return slice
}

export interface Pods {
  /** The port every pod listens on, as a Service's pods do. */
  port: number
  /** Pod name → its address; each pod answers its own name. */
  address: Record<string, string>
  /** Requests to /hold wait here, by pod, until released. */
  held: Map<string, () => void>
}

/** Real backends, one per pod, each on its own loopback address (127.0.0.0/8 is all loopback) and the same port. */
export async function startPods (t: Test, names: string[]): Promise<Pods> {
  const pods: Pods = { port: 0, address: {}, held: new Map() }
  for (const [index, name] of names.entries()) {
    const address = `127.0.0.${index + 1}`
    const server = http.createServer((req, res) => {
      req.resume()
      if (req.url === '/hold') pods.held.set(name, () => res.end(`${name}, held`))
      else res.end(name)
    })
    await new Promise<void>((resolve) => server.listen(pods.port, address, resolve))
    pods.port = (server.address() as AddressInfo).port
    pods.address[name] = address
    t.teardown(() => closeServer(server))
  }
  return pods
}

export function endpoints (pods: Pods, conditions: Record<string, Omit<TestEndpoint, 'pod' | 'address'>>): TestEndpoint[] {
  return Object.entries(conditions).map(([pod, condition]) => ({ pod, address: pods.address[pod], ...condition }))
}

interface Watcher {
  response: http.ServerResponse
  version: number
}

/**
 * A fake Kubernetes API server: real HTTP (or HTTPS), EndpointSlice list with paging (`pageSize` items an answer,
 * whatever `limit` asks) and watch as a chunked stream of JSON lines from a resourceVersion, events kept so a watch
 * resumes; a bearer token checked on every request. `expire()` makes every version so far too old (410 Gone);
 * `down()` drops every connection until `up()`.
 */
export class FakeApiServer {
  readonly server: http.Server
  origin = ''
  token: string
  pageSize = 500
  /** Answer a watch from an expired version with HTTP 410, rather than 200 and an ERROR event. */
  goneAsStatus = false
  readonly lists: string[] = []
  readonly watches: string[] = []
  /** Authorization headers received, in order. */
  readonly authorizations: string[] = []
  /** Requests answered 401 (a wrong or old token). */
  unauthorized = 0
  /** Requests dropped while down. */
  dropped = 0
  readonly #slices = new Map<string, EndpointSlice>()
  readonly #events: Array<{ version: number, line: string }> = []
  readonly #watchers = new Set<Watcher>()
  #version = 1
  #oldest = 0
  #down = false

  constructor (token: string, tls?: KeyPair) {
    this.token = token
    this.server = tls === undefined ? http.createServer() : https.createServer(tls)
    this.server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => { this.#answer(request, response) })
  }

  static async start (t: Test, token: string, tls?: KeyPair): Promise<FakeApiServer> {
    const api = new FakeApiServer(token, tls)
    await new Promise<void>((resolve) => api.server.listen(0, '127.0.0.1', resolve))
    api.origin = `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${(api.server.address() as AddressInfo).port}`
    t.teardown(async () => {
      for (const watcher of api.#watchers) watcher.response.destroy()
      await closeServer(api.server)
    })
    return api
  }

  /** Adds or replaces a slice, telling the open watches. */
  put (slice: EndpointSlice): void {
    const type = this.#slices.has(slice.metadata.name) ? 'MODIFIED' : 'ADDED'
    this.#record(type, slice)
    this.#slices.set(slice.metadata.name, slice)
  }

  delete (name: string): void {
    const slice = this.#slices.get(name)
    if (slice === undefined) throw new Error(`no slice ${name}`)
    this.#slices.delete(name)
    this.#record('DELETED', slice)
  }

  /** Changes the slices without an event: only a new list can see it. */
  replaceQuietly (slices: EndpointSlice[]): void {
    this.#slices.clear()
    for (const slice of slices) this.#slices.set(slice.metadata.name, slice)
    this.#version++
  }

  /**
   * Compacts history: every version so far is too old to watch from. Open watches get an ERROR 410 event, unless
   * `tell` is false: then only the next watch learns it, from its 410 status (goneAsStatus) or event.
   */
  expire (tell = true): void {
    this.#oldest = ++this.#version
    this.#events.length = 0
    if (!tell) return
    for (const watcher of this.#watchers) {
      this.#watchers.delete(watcher)
      this.#gone(watcher.response)
    }
  }

  /** Ends every open watch, as the API server does at a watch's timeout. */
  endWatches (): void {
    for (const watcher of this.#watchers) {
      this.#watchers.delete(watcher)
      watcher.response.end()
    }
  }

  down (): void {
    this.#down = true
    for (const watcher of this.#watchers) watcher.response.destroy()
  }

  up (): void {
    this.#down = false
  }

  /** The resourceVersion of the latest change. */
  get version (): number {
    return this.#version
  }

  get openWatches (): number {
    return this.#watchers.size
  }

  #record (type: string, slice: EndpointSlice): void {
    const version = ++this.#version
    const object = { ...slice, metadata: { ...slice.metadata, resourceVersion: String(version) } }
    const line = JSON.stringify({ type, object }) + '\n'
    this.#events.push({ version, line })
    for (const watcher of this.#watchers) watcher.response.write(line)
  }

  #gone (response: http.ServerResponse): void {
    response.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 } }) + '\n')
  }

  #answer (request: http.IncomingMessage, response: http.ServerResponse): void {
    if (this.#down) {
      this.dropped++
      request.socket.destroy()
      return
    }
    this.authorizations.push(request.headers.authorization ?? '')
    const url = new URL(request.url!, 'http://api')
    const json = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
    }
    if (request.headers.authorization !== `Bearer ${this.token}`) {
      this.unauthorized++
      json(401, { kind: 'Status', status: 'Failure', message: 'Unauthorized', reason: 'Unauthorized', code: 401 })
      return
    }
    const match = /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/.exec(url.pathname)
    const selector = /^kubernetes\.io\/service-name=(.+)$/.exec(url.searchParams.get('labelSelector') ?? '')
    if (request.method !== 'GET' || match === null || selector === null) {
      json(404, { kind: 'Status', status: 'Failure', message: `not here: ${request.url!}`, code: 404 })
      return
    }
    const service = selector[1]
    const ours = (slice: EndpointSlice & { metadata: { labels?: Record<string, string> } }) => slice.metadata.labels?.['kubernetes.io/service-name'] === service
    if (url.searchParams.get('watch') !== 'true') {
      this.lists.push(request.url!)
      const all = [...this.#slices.values()].filter(ours)
      const from = Number(url.searchParams.get('continue') ?? 0)
      const page = all.slice(from, from + this.pageSize)
      const more = from + this.pageSize < all.length
      json(200, { kind: 'EndpointSliceList', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(this.#version), ...(more ? { continue: String(from + this.pageSize) } : {}) }, items: page })
      return
    }
    this.watches.push(request.url!)
    const version = Number(url.searchParams.get('resourceVersion'))
    if (version < this.#oldest) {
      if (this.goneAsStatus) json(410, { kind: 'Status', status: 'Failure', message: 'too old resource version', reason: 'Expired', code: 410 })
      else {
        response.writeHead(200, { 'content-type': 'application/json' })
        this.#gone(response)
      }
      return
    }
    response.writeHead(200, { 'content-type': 'application/json' })
    response.flushHeaders()
    const watcher: Watcher = { response, version }
    this.#watchers.add(watcher)
    response.once('close', () => { this.#watchers.delete(watcher) })
    for (const event of this.#events) {
      if (event.version > version && ours(JSON.parse(event.line).object)) response.write(event.line)
    }
  }
}
