import { Agent, type Dispatcher } from 'undici'

/**
 * undici's Agent, which keeps one connection pool per origin, made by its `factory` with the settings of that
 * moment, for as long as the pool has connections. `renew(origin)` replaces an origin's pool whose settings changed
 * (a reload gave its backend other tls): new requests go to a pool made now, the requests already on the old one
 * finish there, and its idle connections close as they time out.
 */
export class RenewableAgent extends Agent {
  readonly #options: Agent.Options
  readonly #renewed = new Map<string, Dispatcher>()

  constructor (options: Agent.Options) {
    super(options)
    this.#options = options
  }

  renew (origin: string): void {
    const previous = this.#renewed.get(origin)
    this.#renewed.set(origin, this.#options.factory!(origin, this.#options))
    previous?.close().catch(() => {})
  }

  dispatch (options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const renewed = this.#renewed.size === 0 ? undefined : this.#renewed.get(String(options.origin))
    return renewed === undefined ? super.dispatch(options, handler) : renewed.dispatch(options, handler)
  }

  // DispatcherBase's promise forms call these again with a callback, and its close() ends with a destroy().
  close (callback: () => void): void
  close (): Promise<void>
  close (callback?: () => void): Promise<void> | void {
    if (callback === undefined) return super.close()
    // The renewed pools' requests finish first: the destroy() that ends super.close() must find nothing to cut.
    Promise.all([...this.#renewed.values()].map(async (pool) => { await pool.close() })).finally(() => { super.close(callback) }).catch(() => {})
  }

  destroy (error: Error | null, callback: () => void): void
  destroy (callback: () => void): void
  destroy (error: Error | null): Promise<void>
  destroy (): Promise<void>
  destroy (error?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const reason = typeof error === 'function' ? null : error ?? null
    const done = typeof error === 'function' ? error : callback
    if (done === undefined) return super.destroy(reason)
    for (const pool of this.#renewed.values()) pool.destroy(reason).catch(() => {})
    super.destroy(reason, done)
  }
}
