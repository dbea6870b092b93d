import type { FastifyBaseLogger } from 'fastify'
import { ChallengeBoard } from './challenges.js'
import { CertificateManager, type AcmeConfig } from './manager.js'
import { openStorage, type AcmeStorage } from './storage.js'

/**
 * Every ACME block of the running config, for the listeners: one CertificateManager per distinct block (two
 * listeners with the same block share it), the storages they use, and the challenges to answer. A reload keeps
 * a block that did not change, certificate, timers and all.
 */
export class AcmeService {
  readonly challenges = new ChallengeBoard()
  readonly #managers = new Map<string, CertificateManager>()
  readonly #storages = new Map<string, AcmeStorage>()
  readonly #log: FastifyBaseLogger
  readonly #changed: () => void

  /** `changed` is called when a certificate is issued or taken from the storage: the listeners swap it in. */
  constructor (log: FastifyBaseLogger, changed: () => void) {
    this.#log = log
    this.#changed = changed
  }

  /**
   * The managers for `blocks` (one per listener, undefined where it has none), each ready to serve. `commit` makes
   * them the running ones and stops those no longer used; `abort` stops the ones started here.
   */
  async prepare (blocks: Array<AcmeConfig | undefined>): Promise<{ managers: Array<CertificateManager | undefined>, commit: () => void, abort: () => Promise<void> }> {
    const started = new Map<string, CertificateManager>()
    const abort = async (): Promise<void> => {
      for (const manager of started.values()) manager.close()
      await this.#closeUnused()
    }
    const managers: Array<CertificateManager | undefined> = []
    try {
      for (const block of blocks) {
        if (block === undefined) {
          managers.push(undefined)
          continue
        }
        const key = JSON.stringify(block)
        let manager = this.#managers.get(key) ?? started.get(key)
        if (manager === undefined) {
          manager = new CertificateManager(block, this.#storage(block.storage), this.challenges, this.#log, this.#changed)
          started.set(key, manager)
          await manager.load()
        }
        managers.push(manager)
      }
    } catch (error) {
      await abort()
      throw error
    }
    const commit = (): void => {
      const wanted = new Set(managers)
      for (const [key, manager] of this.#managers) {
        if (!wanted.has(manager)) {
          manager.close()
          this.#managers.delete(key)
        }
      }
      // Only once the listeners serve: a config that fails to start orders nothing.
      for (const [key, manager] of started) {
        this.#managers.set(key, manager)
        manager.begin()
      }
      this.#closeUnused().catch(() => {})
    }
    return { managers, commit, abort }
  }

  async close (): Promise<void> {
    for (const manager of this.#managers.values()) manager.close()
    this.#managers.clear()
    await this.#closeUnused()
  }

  #storage (location: string): AcmeStorage {
    let storage = this.#storages.get(location)
    if (storage === undefined) {
      storage = openStorage(location)
      this.#storages.set(location, storage)
      this.challenges.storages.add(storage)
    }
    return storage
  }

  // A storage is closed once no running manager uses it (Redis connections, most of all).
  async #closeUnused (): Promise<void> {
    const used = new Set([...this.#managers.values()].map((manager) => manager.config.storage))
    for (const [location, storage] of this.#storages) {
      if (used.has(location)) continue
      this.#storages.delete(location)
      this.challenges.storages.delete(storage)
      await storage.close()
    }
  }
}
