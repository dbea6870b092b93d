import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { SecureVersion } from 'node:tls'
import tls from 'node:tls'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { GoloadFileConfig, ListenerConfig } from '../config/schema.js'
import { normalizeOptions, type BackendConfig } from '../options.js'
import type { PoolEntry, Registry } from '../registry.js'
import type { Worker } from '../pool/pool.js'
import { PoolRuntime } from '../runtime.js'
import { buildApp } from './apps.js'
import type { Split } from '../policy/split.js'
import { acceptProxyProtocol, proxyProtocolOf, type ProxyProtocol } from '../proxy/proxy-protocol.js'
import { keepClientAddresses } from '../proxy/client-address.js'
import { serversOf } from '../config/listener-blocks.js'
import { readCertificates, type ListenerCertificate } from '../tls/certificates.js'
import { CertificateSelector } from '../tls/sni.js'
import type { CertificateManager } from '../tls/acme/manager.js'
import { AcmeService } from '../tls/acme/service.js'
import type { ServedCertificate } from '../tls/served.js'
import { closeListenerServer, createListenerServer, setTimeouts, type ListenerServer } from './servers.js'
import { workerListenOptions } from './port-sharing.js'

/** A listener that could not start, named by its place in the config: `listeners[0]: port 8080 is in use`. */
export class ListenError extends Error {
  readonly code = 'FST_GOLOAD_LISTEN'
}

interface Listener {
  server: ListenerServer
  /** Its part of the config now: a reload may change what a kept server reads from it (h2 offered or not). */
  config: ListenerConfig
  /** The app requests on this port go to now; a reload swaps it. */
  app: FastifyInstance
  /** A TLS listener's certificates now: new handshakes pick from them, a reload swaps them. */
  certificates?: CertificateSelector
  /** What they were made from, to make them again when ACME issues a certificate. */
  tls?: ListenerTls
}

/** A TLS listener's certificates from files, and its ACME block's (after the files: the first file is the default). */
interface ListenerTls {
  files: Array<{ certificate: ListenerCertificate, file: string }>
  acme?: CertificateManager
  minVersion: SecureVersion
}

interface KeptPool {
  runtime: PoolRuntime
  /** Everything but the backends, as given: a pool whose settings change is started anew. */
  settings: string
}

/**
 * What `goload` runs: one long-lived server per listener (see createListenerServer), handing each request to the
 * current app of that listener, and pools that outlive the apps. A reload builds new apps over the kept pools and
 * swaps them in, so connections on kept ports stay open and no count is forgotten: a pool whose settings are
 * unchanged keeps its backends' counts and state, takes the backends added and drains the ones removed.
 */
export class Listeners {
  readonly #listeners = new Map<string, Listener>()
  readonly #pools = new Map<string, KeptPool>()
  /** Servers, apps and pools replaced by a reload, closing once their requests in flight have ended. */
  readonly #retiring = new Set<Promise<void>>()
  /** Each listener's proxyProtocol now, by key: read at each connection, so a reload applies it to the ports it keeps. */
  readonly #proxyProtocols = new Map<string, ProxyProtocol | undefined>()
  #closing = false
  /** Counts the configs applied: a backend's return scheduled by one reload must not outlive the next. */
  #generation = 0
  /** The log of the pools (health, ejections) and of the apps: Fastify's logger, made once. */
  readonly log: FastifyBaseLogger
  /** Certificates ordered from ACME, and the challenges the listeners answer for them. */
  readonly #acme: AcmeService

  constructor (logger: FastifyServerOptions['logger']) {
    this.log = Fastify({ logger }).log
    this.#acme = new AcmeService(this.log, () => { this.#swapAcmeCertificates() })
  }

  /** The port of each listener, in the config's order (the real one where the config says 0). */
  get ports (): number[] {
    return [...this.#listeners.values()].map(({ server }) => (server.address() as AddressInfo).port)
  }

  /** The host:port of each listener whose server does not accept connections now (closed by an error): for /healthz. */
  notAccepting (): string[] {
    return [...this.#listeners.entries()].filter(([, { server }]) => !server.listening).map(([key]) => placeOf(key))
  }

  /** Every certificate the TLS listeners serve now, for the status page and metrics. */
  certificates (): ServedCertificate[] {
    const served: ServedCertificate[] = []
    for (const { server, tls } of this.#listeners.values()) {
      if (tls === undefined) continue
      const port = (server.address() as AddressInfo).port
      const add = (certificate: ListenerCertificate, source: string): void => {
        const name = /DNS:([^,\s]+)/.exec(certificate.x509.subjectAltName ?? '')?.[1] ?? certificate.x509.subject.replace(/\n/g, ', ')
        served.push({ name, source, port, expires: Date.parse(certificate.x509.validTo) / 1000 })
      }
      for (const { certificate, file } of tls.files) add(certificate, file)
      if (tls.acme !== undefined) add(tls.acme.current, tls.acme.current.placeholder ? 'acme placeholder' : `acme ${tls.acme.config.directory}`)
    }
    return served
  }

  /** The pools serving now, for what reads them live (the admin API, metrics): a reload may replace any of them, so ask each time. */
  entries (): PoolEntry[] {
    return [...this.#pools.values()].map(({ runtime }) => ({ name: runtime.config.name, pool: runtime.pool, config: runtime.config, forwarder: runtime.forwarder, sticky: runtime.forwarder.sticky?.counts }))
  }

  /** The split routes serving now (each app's own: a reload makes them anew, at the file's weights). */
  splits (): Split[] {
    return [...this.#listeners.values()].flatMap(({ app }) => (app.goload as Registry | undefined)?.splits ?? [])
  }

  /**
   * Serves `config`: on the first call, starts everything or throws (closing what it started); on a reload, either
   * the whole new config serves or, if a new port cannot be had, the old one goes on and this throws.
   */
  async apply (config: GoloadFileConfig): Promise<void> {
    // Counted only once this config serves: a reload that fails must not cancel what the running one scheduled.
    const generation = this.#generation + 1
    const started: PoolRuntime[] = []
    const apps: FastifyInstance[] = []
    const opened: ListenerServer[] = []
    let retired: PoolRuntime[]
    let syncs: Array<() => void>
    let selectors: Array<CertificateSelector | undefined>
    let tlsOf: Array<ListenerTls | undefined>
    let acme: Awaited<ReturnType<AcmeService['prepare']>> | undefined
    // Blocks on one port are one server, with the routes of them all (loadConfig checked that they agree).
    const servers = serversOf(config.listeners)
    try {
      // Each ACME block is ready to serve from here: its stored certificate, or a placeholder while it orders.
      acme = await this.#acme.prepare(servers.map(({ listener }) => listener.tls?.acme))
      // As loadConfig read them (once per load: a reload is how new certificates come in).
      tlsOf = servers.map(({ listener, index }, i) => tlsConfigOf(listener, index, acme!.managers[i]))
      selectors = tlsOf.map((tls) => tls === undefined ? undefined : selectorOf(tls))
      let runtimes: Map<string, PoolRuntime>
      ({ runtimes, retired, syncs } = await this.#bringPools(config, generation, started))
      for (const { listener } of servers) apps.push(await buildApp(listener, runtimes, this.log, () => this.#closing, config.tracing))
      for (const [i, { listener, index }] of servers.entries()) {
        if (this.#listeners.has(keyOf(listener))) continue
        // Said as it is, rather than as the port in use (by this very process) that listening would report.
        if ([...this.#listeners.keys()].some((key) => placeOf(key) === placeOf(keyOf(listener)))) {
          throw new ListenError(`listeners[${index}]: port ${listener.port} would change what it speaks (plain HTTP/1.1, TLS or h2c): that needs a restart`)
        }
        opened.push(await this.#listen(index, listener, apps[i], selectors[i]))
      }
    } catch (error) {
      // Nothing of the running config was touched: close what was built for the new one.
      await Promise.all([...apps.map((app) => app.close()), ...opened.map(closeListenerServer), ...started.map((runtime) => runtime.close()), acme?.abort()])
      throw error
    }
    acme.commit()
    this.#generation = generation
    for (const sync of syncs) sync()
    for (const runtime of retired) this.#pools.delete(runtime.config.name)
    // Everything needed is there: swap. New requests go to the new apps from here.
    const previous = new Map(this.#listeners)
    const current = new Map<string, Listener>()
    for (const [i, { listener }] of servers.entries()) {
      const key = keyOf(listener)
      const kept = previous.get(key)?.server
      if (kept !== undefined) setTimeouts(kept, listener)
      const certificates = selectors[i]
      // Handshakes from now on: with SNI they ask the selector swapped in below, without it the server's own context.
      if (kept instanceof tls.Server && certificates !== undefined) kept.setSecureContext(certificates.defaults)
      current.set(key, { server: kept ?? opened.shift()!, config: listener, app: apps[i], certificates, tls: tlsOf[i] })
    }
    this.#listeners.clear()
    for (const [key, listener] of current) this.#listeners.set(key, listener)
    this.#proxyProtocols.clear()
    for (const { listener } of servers) this.#proxyProtocols.set(keyOf(listener), proxyProtocolOf(listener))
    for (const runtime of started) this.#pools.set(runtime.config.name, { runtime, settings: settingsOf(config.pools[runtime.config.name]) })
    // What the new config no longer uses goes in the background; close() waits for it.
    for (const [key, { server, app }] of previous) {
      if (!current.has(key)) this.#settle(closeListenerServer(server))
      this.#settle(app.close())
    }
    // A pool retired serves what it has, its queue included, for closeTimeout at most.
    for (const runtime of retired) this.#settle(runtime.retire())
  }

  /** Stops accepting, answers `Connection: close`, lets requests in flight finish within closeTimeout, closes all. */
  async close (): Promise<void> {
    this.#closing = true
    for (const { runtime } of this.#pools.values()) runtime.closing()
    await Promise.all([...this.#listeners.values()].map(async ({ server, app }) => {
      await closeListenerServer(server)
      await app.close()
    }))
    await Promise.all([...[...this.#pools.values()].map(({ runtime }) => runtime.close()), ...this.#retiring, this.#acme.close()])
  }

  // A certificate issued (or renewed): new handshakes get it, connections open go on with theirs.
  #swapAcmeCertificates (): void {
    for (const listener of this.#listeners.values()) {
      if (listener.tls?.acme === undefined) continue
      listener.certificates = selectorOf(listener.tls)
      if (listener.server instanceof tls.Server) listener.server.setSecureContext(listener.certificates.defaults)
    }
  }

  /**
   * The runtime of each pool the config names: kept, or started anew; and, for the swap, the kept pools' backend
   * changes and the pools to retire. Nothing running changes here, in case the new config cannot be served.
   */
  async #bringPools (config: GoloadFileConfig, generation: number, started: PoolRuntime[]): Promise<{ runtimes: Map<string, PoolRuntime>, retired: PoolRuntime[], syncs: Array<() => void> }> {
    const runtimes = new Map<string, PoolRuntime>()
    const retired: PoolRuntime[] = []
    const syncs: Array<() => void> = []
    const { log } = this
    for (const [name, options] of Object.entries(config.pools)) {
      const wanted = normalizeOptions({ ...options, name })
      const kept = this.#pools.get(name)
      if (kept !== undefined && kept.settings === settingsOf(options)) {
        syncs.push(() => { syncBackends(kept.runtime, wanted.backends, () => generation === this.#generation) })
        runtimes.set(name, kept.runtime)
      } else {
        const runtime = await PoolRuntime.start(wanted, log)
        started.push(runtime)
        runtimes.set(name, runtime)
        if (kept !== undefined) retired.push(kept.runtime)
      }
    }
    for (const [name, { runtime }] of this.#pools) {
      if (!runtimes.has(name) && !retired.includes(runtime)) retired.push(runtime)
    }
    return { runtimes, retired, syncs }
  }

  async #listen (index: number, listener: GoloadFileConfig['listeners'][number], app: FastifyInstance, certificates: CertificateSelector | undefined): Promise<ListenerServer> {
    const { port, host } = listener
    const key = keyOf(listener)
    // Until the swap, the app being started; from then on, whichever app is current for this listener.
    const current = (): Partial<Listener> => this.#listeners.get(key) ?? {}
    // HTTP/2 requests too: Fastify routes Node's compatibility request and response as it does HTTP/1.1 ones.
    const handle: http.RequestListener = (request, response) => { (current().app ?? app).routing(request, response) }
    const server = createListenerServer(listener, handle, {
      certificates: certificates === undefined
        ? undefined
        : { defaults: certificates.defaults, select: (servername) => (current().certificates ?? certificates).select(servername) },
      offersH2: () => (current().config ?? listener).http2 !== false,
      // HTTP-01 challenges are answered on every plain listener, before routing and redirectHttps; TLS-ALPN-01 on
      // the TLS listener whose ACME block asks for it.
      acme: this.#acme.challenges,
      alpnChallenges: listener.tls?.acme?.challenge === 'tls-alpn-01'
    })
    // Upgrades too go to the current app: to goload's listener on the app's own server (never listening), told which
    // server the socket is really on, so that an upgrade served as a plain request goes back to this one.
    keepClientAddresses(server)
    server.on('upgrade', (request, socket, head) => { (this.#listeners.get(key)?.app ?? app).server.emit('upgrade', request, socket, head, server) })
    // Last, once the server's own 'connection' listeners are on: it holds each connection back until its header is read.
    const proxyProtocol = proxyProtocolOf(listener)
    const currentProxyProtocol = (): ProxyProtocol | undefined => this.#proxyProtocols.has(key) ? this.#proxyProtocols.get(key) : proxyProtocol
    acceptProxyProtocol(server, currentProxyProtocol, { log: this.log, listener: `${host}:${port}` })
    await new Promise<void>((resolve, reject) => {
      server.once('error', (error: NodeJS.ErrnoException) => {
        reject(new ListenError(error.code === 'EADDRINUSE'
          ? `listeners[${index}]: port ${port} is in use`
          : error.code === 'EACCES' && port < 1024
            ? `listeners[${index}]: cannot listen on ${host}:${port}: ${error.message}: ports below 1024 need root, or the capability CAP_NET_BIND_SERVICE (setcap 'cap_net_bind_service=+ep' $(command -v node), or AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit), or use a port of 1024 or above`
            : `listeners[${index}]: cannot listen on ${host}:${port}: ${error.message}`))
      })
      server.listen({ port, host, ...workerListenOptions(port) }, resolve)
    })
    return server
  }

  // A server, app or pool a reload replaced: its requests in flight finish, then it closes.
  #settle (closing: Promise<unknown>): void {
    const done = closing.then(() => {}, (error: Error) => { this.log.error(`goload: closing after a reload: ${error.message}`) })
      .finally(() => { this.#retiring.delete(done) })
    this.#retiring.add(done)
  }
}

/**
 * Brings a kept pool's backends to the file's: adds those it lacks, drains and removes those it no longer has, and
 * applies a weight, maxPending or tls changed in the file to those it keeps, counts and all. Backends found through
 * DNS are the discovery's (ids `<id>#<address>`): a change to them starts the pool anew (see settingsOf). A backend
 * an earlier reload is still draining, or whose url changed, comes back once it has left (the pool takes no second
 * backend of one id), unless yet another config has come by then (`current`).
 */
function syncBackends (runtime: PoolRuntime, backends: BackendConfig[], current: () => boolean): void {
  const { pool } = runtime
  const listed = backends.filter((backend) => backend.resolve === undefined)
  const discovered = backends.filter((backend) => backend.resolve !== undefined).map((backend) => `${backend.id}#`)
  const wanted = new Set(listed.map((backend) => backend.id))
  const byId = (id: string): Worker | undefined => pool.workers.find((worker) => worker.id === id)
  for (const worker of [...pool.workers]) {
    if (wanted.has(worker.id) || worker.draining || runtime.discovered(worker) || discovered.some((prefix) => worker.id.startsWith(prefix))) continue
    // Drained now, gone once its requests in flight end: nobody waits for that here.
    pool.remove(worker).catch(() => {})
  }
  for (const backend of listed) {
    const found = byId(backend.id)
    if (found === undefined) {
      runtime.add(backend)
    } else if (found.draining || found.url !== backend.url) {
      pool.remove(found).then(() => { if (current() && byId(backend.id) === undefined) runtime.add(backend) }, () => {})
    } else {
      runtime.update(found, backend)
    }
  }
}

/** Everything of a pool but the backends it lists: what, changed, starts the pool anew. DNS discovery is set up once. */
function settingsOf (options: GoloadFileConfig['pools'][string]): string {
  const { backends, ...settings } = options
  return JSON.stringify({ ...settings, discovered: (backends ?? []).filter((backend) => typeof backend === 'object' && backend.resolve !== undefined) })
}

// A listener turned from plain to TLS, or from HTTP/1.1 to h2c (or back), is a new server: the kept one cannot
// change what it speaks. A TLS listener's h2 is chosen at each handshake: its server stays.
function keyOf ({ port, host, tls, http2 }: ListenerConfig): string {
  return `${host}:${port}${tls !== undefined ? ' tls' : http2 === true ? ' h2c' : ''}`
}

/** The host:port of a listener's key. */
function placeOf (key: string): string {
  return key.split(' ')[0]
}

/** A TLS listener's certificates, as loadConfig read and checked them (a config made in code is read here). */
function tlsConfigOf (listener: GoloadFileConfig['listeners'][number], index: number, acme: CertificateManager | undefined): ListenerTls | undefined {
  if (listener.tls === undefined) return undefined
  const files = listener.tls.certificates ?? []
  const { certificates, problems } = readCertificates(files, ['listeners', index, 'tls', 'certificates'])
  if (problems.length > 0) throw new ListenError(problems.map(({ message }) => `listeners[${index}].tls: ${message}`).join('\n'))
  return { files: certificates.map((certificate, i) => ({ certificate, file: files[i].cert })), acme, minVersion: listener.tls.minVersion ?? 'TLSv1.2' }
}

function selectorOf ({ files, acme, minVersion }: ListenerTls): CertificateSelector {
  return new CertificateSelector({ certificates: [...files.map(({ certificate }) => certificate), ...(acme === undefined ? [] : [acme.current])], minVersion })
}
