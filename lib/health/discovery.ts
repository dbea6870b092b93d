import { isIPv6 } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { BackendConfig } from '../options.js'
import type { Pool, Worker } from '../pool/pool.js'

type Discovered = BackendConfig & { resolve: NonNullable<BackendConfig['resolve']> }

/**
 * DNS discovery for backends configured with `resolve`: each address the hostname resolves to is a backend of its
 * own, with id `<id>#<address>`. Addresses that appear are added; addresses that go are drained and removed, so their
 * requests in flight finish. A failed lookup keeps the addresses already known, as nginx does.
 */
export class Discovery {
  readonly #pool: Pool
  readonly #log: FastifyBaseLogger
  /** The pool's h2c origins (PoolConfig.h2c): the addresses of an h2c:// name join them. */
  readonly #h2c: Set<string>
  readonly #timers: NodeJS.Timeout[] = []
  readonly #removing = new Set<Worker>()
  #stopped = false

  constructor (pool: Pool, log: FastifyBaseLogger, h2c: Set<string>) {
    this.#pool = pool
    this.#log = log
    this.#h2c = h2c
  }

  /** Looks every hostname up once, so the addresses are in the pool when the app is ready, then on its interval. */
  async start (configs: Discovered[]): Promise<void> {
    await Promise.all(configs.map((config) => this.#refresh(config)))
    for (const config of configs) {
      const timer = setInterval(() => { this.#refresh(config).catch(() => {}) }, config.resolve.interval)
      timer.unref()
      this.#timers.push(timer)
    }
  }

  stop (): void {
    this.#stopped = true
    for (const timer of this.#timers) clearInterval(timer)
  }

  async #refresh (config: Discovered): Promise<void> {
    const url = new URL(config.url)
    let addresses: string[]
    try {
      addresses = await config.resolve.lookup(url.hostname)
    } catch (error) {
      this.#log.warn({ backend: config.id, err: error }, 'goload: DNS lookup failed, keeping the addresses known')
      return
    }
    if (this.#stopped) return

    const wanted = new Map(addresses.map((address) => [`${config.id}#${address}`, address]))
    for (const [id, address] of wanted) {
      if (this.#pool.find(id) !== undefined) continue
      const host = isIPv6(address) ? `[${address}]` : address
      const port = url.port === '' ? '' : `:${url.port}`
      if (url.protocol === 'h2c:') this.#h2c.add(`http://${host}${port}`)
      this.#pool.add({ id, url: `${url.protocol}//${host}${port}`, weight: config.weight, maxPending: config.maxPending })
      this.#log.info({ backend: id }, 'goload: discovered backend added')
    }
    for (const worker of [...this.#pool.workers]) {
      if (!worker.id.startsWith(`${config.id}#`) || wanted.has(worker.id) || this.#removing.has(worker)) continue
      this.#removing.add(worker)
      this.#log.info({ backend: worker.id }, 'goload: backend gone from DNS, draining it')
      this.#pool.remove(worker).finally(() => { this.#removing.delete(worker) }).catch(() => {})
    }
  }
}
