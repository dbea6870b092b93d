import { isIPv6 } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { KubernetesDiscoveryConfig } from '../options.js'
import type { Pool, Worker } from '../pool/pool.js'
import { SliceWatch, type EndpointSlice, type SlicePort } from './endpoint-slices.js'
import { credentialsOf, type KubernetesCredentials } from './kubernetes-credentials.js'

/** An endpoint the slices list, as the pool sees it. */
interface Endpoint {
  url: string
  /** In rotation; else (not ready, or serving while terminating) drained until it goes. */
  ready: boolean
}

/**
 * Kubernetes discovery: the endpoints of a Service's EndpointSlices are backends of the pool, each named after its
 * pod (targetRef.name). Ready endpoints (an unset `ready` is ready) take traffic; an endpoint not ready, or serving
 * while terminating, is drained: its requests in flight finish and it takes no new ones, as Envoy does; one that
 * leaves every slice is removed once drained. While the API server cannot be reached the last known set stays.
 */
export class KubernetesDiscovery {
  readonly #pool: Pool
  readonly #log: FastifyBaseLogger
  readonly #config: KubernetesDiscoveryConfig
  readonly #maxPending: number
  readonly #watch: SliceWatch
  readonly #slices = new Map<string, EndpointSlice>()
  /** The workers this discovery added, by id: only these does it drain and remove. */
  readonly #workers = new Map<string, Worker>()
  /** Workers it drained (not ready): only these does it take back into rotation, not one the admin drained. */
  readonly #drained = new Set<Worker>()
  readonly #removing = new Set<Worker>()
  /** The last warning about the slices, so it is given once. */
  #warned = ''
  #stopped: Promise<void> | undefined
  readonly #unwatch: () => void

  constructor (pool: Pool, log: FastifyBaseLogger, config: KubernetesDiscoveryConfig, maxPending: number, credentials: KubernetesCredentials = credentialsOf(config)) {
    this.#pool = pool
    this.#log = log.child({ service: `${credentials.namespace}/${config.service}` })
    this.#config = config
    this.#maxPending = maxPending
    this.#watch = new SliceWatch(credentials, config, {
      listed: (slices) => {
        this.#slices.clear()
        for (const slice of slices) this.#slices.set(slice.metadata.name, slice)
        this.#apply()
      },
      changed: (type, slice) => {
        if (type === 'DELETED') this.#slices.delete(slice.metadata.name)
        else this.#slices.set(slice.metadata.name, slice)
        this.#apply()
      },
      failed: (error) => {
        this.#log.warn({ err: error, backends: this.#workers.size }, 'goload: Kubernetes API unreachable or refusing, keeping the backends known until it answers again')
      },
      reachable: () => { this.#log.info('goload: Kubernetes API reachable again') }
    })
    // One of its backends removed by someone else (the admin API, remove()): the discovery forgets it, so the pod's
    // next change in the slices adds it again, rather than never.
    this.#unwatch = pool.watch((worker) => {
      if (this.#workers.get(worker.id) === worker && !this.#removing.has(worker) && !pool.workers.includes(worker)) {
        this.#workers.delete(worker.id)
        this.#drained.delete(worker)
      }
    })
  }

  /** Resolves once the first list has answered (or failed: the pool then starts empty and fills when it answers). */
  async start (): Promise<void> {
    await this.#watch.start()
  }

  /** Stops watching; the backends found stay in the pool (a retiring pool removes them itself). */
  stop (): Promise<void> {
    this.#unwatch()
    this.#stopped ??= this.#watch.stop()
    return this.#stopped
  }

  /** This worker is the discovery's, not one the config or add() gave. */
  owns (worker: Worker): boolean {
    return this.#workers.get(worker.id) === worker
  }

  /** Brings the pool to the slices: adds, drains, takes back and removes, by what changed since. */
  #apply (): void {
    if (this.#stopped !== undefined) return
    const wanted = this.#endpoints()
    for (const [id, endpoint] of wanted) {
      const worker = this.#workers.get(id)
      if (worker === undefined) {
        if (endpoint.ready) this.#add(id, endpoint)
        continue
      }
      // Its pod came back at another address (a StatefulSet's pod keeps its name): the old one goes first.
      if (worker.url !== endpoint.url || this.#removing.has(worker)) continue
      if (endpoint.ready && this.#drained.delete(worker)) {
        this.#pool.setDraining(worker, false)
        this.#log.info({ backend: id }, 'goload: discovered backend ready again')
      } else if (!endpoint.ready && !worker.draining) {
        this.#drained.add(worker)
        this.#pool.setDraining(worker, true)
        this.#log.info({ backend: id }, 'goload: discovered backend not ready or terminating, draining it')
      }
    }
    for (const [id, worker] of this.#workers) {
      if (this.#removing.has(worker) || wanted.get(id)?.url === worker.url) continue
      this.#removing.add(worker)
      this.#log.info({ backend: id }, 'goload: backend gone from the EndpointSlices, removing it once drained')
      this.#pool.remove(worker).finally(() => {
        this.#removing.delete(worker)
        this.#drained.delete(worker)
        this.#workers.delete(id)
        // It may be listed again by now (its pod back at a new address).
        this.#apply()
      }).catch(() => {})
    }
  }

  #add (id: string, endpoint: Endpoint): void {
    if (this.#pool.workers.some((worker) => worker.id === id)) {
      this.#warnOnce(`goload: a backend of the pool is already called ${id}: the endpoint of that name is left out`)
      return
    }
    const worker = this.#pool.add({ id, url: endpoint.url, weight: 1, maxPending: this.#maxPending })
    this.#workers.set(id, worker)
    this.#log.info({ backend: id, url: endpoint.url }, 'goload: discovered backend added')
  }

  /**
   * Every endpoint of every slice by its id: the pod's name, or the address when it has no pod. The first address
   * only, as the API says consumers may use; FQDN slices are not addresses to connect to. A pod listed twice (a
   * dual-stack Service has an IPv4 and an IPv6 slice) is `name#address` the second time, slices taken by name.
   */
  #endpoints (): Map<string, Endpoint> {
    const endpoints = new Map<string, Endpoint>()
    let portless = 0
    const slices = [...this.#slices.values()].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name))
    for (const slice of slices) {
      if (slice.addressType === 'FQDN' || (slice.endpoints ?? []).length === 0) continue
      const port = this.#portOf(slice.ports ?? [])
      if (port === undefined) {
        portless++
        continue
      }
      for (const endpoint of slice.endpoints ?? []) {
        const address = endpoint.addresses?.[0]
        if (address === undefined) continue
        const name = endpoint.targetRef?.name ?? address
        const id = endpoints.has(name) ? `${name}#${address}` : name
        const host = isIPv6(address) ? `[${address}]` : address
        // ready: an unset condition means ready (traefik#12389 read it as not ready).
        endpoints.set(id, { url: `http://${host}:${port}`, ready: endpoint.conditions?.ready !== false })
      }
    }
    if (portless > 0) {
      const { port } = this.#config
      this.#warnOnce(`goload: ${portless} EndpointSlice(s) of the Service list no port ${port === undefined ? 'alone (give discovery.kubernetes.port)' : JSON.stringify(port)}: their endpoints are left out`)
    }
    return endpoints
  }

  /** The port to connect to: the one named (or numbered) in the config, else the only TCP port of the slice. */
  #portOf (ports: SlicePort[]): number | undefined {
    const tcp = ports.filter((port) => (port.protocol ?? 'TCP') === 'TCP' && typeof port.port === 'number')
    const { port } = this.#config
    if (port === undefined) return tcp.length === 1 ? tcp[0].port! : undefined
    if (typeof port === 'number') return tcp.some((each) => each.port === port) ? port : undefined
    return tcp.find((each) => (each.name ?? '') === port)?.port ?? undefined
  }

  #warnOnce (message: string): void {
    if (message === this.#warned) return
    this.#warned = message
    this.#log.warn(message)
  }
}
