import { randomBytes } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { lockPoll, lockTtl, type AcmeStorage } from './storage.js'

// Only the holder (whose token the lock has) may extend or free it: a lock that expired and was taken by another
// instance meanwhile is that instance's.
const extend = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end"
const release = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

/**
 * ACME state in Redis, shared by every goload using the same server: one account, one certificate per name, and a
 * lock (SET NX PX with a random token, extended while ordering, freed by compare-and-delete) so that one instance
 * orders while the others wait and then read what it stored.
 */
export class RedisStorage implements AcmeStorage {
  readonly location: string
  readonly #redis: Redis
  readonly #prefix = 'goload:acme:'

  constructor (url: string) {
    this.location = url
    // Commands fail at once while Redis is away (the order is retried with backoff) rather than queue unseen.
    this.#redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: true, maxRetriesPerRequest: 1 })
    this.#redis.on('error', () => {})
  }

  async read (name: string): Promise<string | undefined> {
    return (await this.#redis.get(this.#prefix + name)) ?? undefined
  }

  async write (name: string, value: string, ttl?: number): Promise<void> {
    if (ttl === undefined) await this.#redis.set(this.#prefix + name, value)
    else await this.#redis.set(this.#prefix + name, value, 'PX', ttl)
  }

  async remove (name: string): Promise<void> {
    await this.#redis.del(this.#prefix + name)
  }

  async locked<T>(name: string, task: () => Promise<T>): Promise<T> {
    const key = `${this.#prefix}${name}.lock`
    const token = randomBytes(16).toString('hex')
    while (await this.#redis.set(key, token, 'PX', lockTtl, 'NX') === null) await sleep(lockPoll)
    const renew = setInterval(() => { this.#redis.eval(extend, 1, key, token, lockTtl).catch(() => {}) }, lockTtl / 3).unref()
    try {
      return await task()
    } finally {
      clearInterval(renew)
      await this.#redis.eval(release, 1, key, token).catch(() => {})
    }
  }

  async close (): Promise<void> {
    this.#redis.disconnect()
  }
}
