import { DirectoryStorage } from './directory-storage.js'
import { RedisStorage } from './redis-storage.js'

/**
 * Where ACME state lives: the account key, each certificate and its key, and the challenges under way (so that an
 * instance other than the one ordering can answer the CA). Names are relative ('account.key', 'challenge/<token>').
 */
export interface AcmeStorage {
  /** What `storage:` says, for logs and the status page. */
  readonly location: string
  read: (name: string) => Promise<string | undefined>
  /** Written whole or not at all; `ttl` (ms) for what is only worth keeping a while (a challenge). */
  write: (name: string, value: string, ttl?: number) => Promise<void>
  remove: (name: string) => Promise<void>
  /**
   * Runs `task` while this instance alone holds `name` among every instance sharing the storage; waits for the lock
   * while another holds it. A lock whose holder died frees itself after a while.
   */
  locked: <T>(name: string, task: () => Promise<T>) => Promise<T>
  close: () => Promise<void>
}

/** `redis://…` (or `rediss://…`) is shared through Redis; anything else is a folder. */
export function openStorage (location: string): AcmeStorage {
  return /^rediss?:\/\//.test(location) ? new RedisStorage(location) : new DirectoryStorage(location)
}

/** How long a lock lasts unless its holder renews it (it does, at a third of this, while it orders). */
export const lockTtl = 30_000
/** How often an instance waiting for a lock tries again. */
export const lockPoll = 200
