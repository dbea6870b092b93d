import { randomBytes } from 'node:crypto'
import { link, mkdir, open, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { lockPoll, lockTtl, type AcmeStorage } from './storage.js'

/**
 * ACME state in a folder: keys and certificates readable by goload's user only (files 0600, folders 0700). The lock
 * is a file made with O_EXCL, so `--workers N` processes sharing the folder order once; its time is touched while
 * held, and one untouched for lockTtl is a dead holder's.
 */
export class DirectoryStorage implements AcmeStorage {
  readonly location: string

  constructor (folder: string) {
    this.location = folder
  }

  async read (name: string): Promise<string | undefined> {
    try {
      return await readFile(this.#path(name), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
  }

  // A file is never seen half-written: written aside, then renamed over. Challenges expire with the order instead.
  async write (name: string, value: string): Promise<void> {
    const path = this.#path(name)
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    const aside = `${path}.${randomBytes(6).toString('hex')}.tmp`
    await writeFile(aside, value, { mode: 0o600 })
    await rename(aside, path)
  }

  async remove (name: string): Promise<void> {
    await rm(this.#path(name), { force: true })
  }

  async locked<T>(name: string, task: () => Promise<T>): Promise<T> {
    const path = this.#path(`${name}.lock`)
    await mkdir(dirname(path), { recursive: true, mode: 0o700 })
    for (;;) {
      try {
        await (await open(path, 'wx', 0o600)).close()
        break
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const held = await stat(path).catch(() => undefined)
      if (held !== undefined && Date.now() - held.mtimeMs > lockTtl) await breakStale(path)
      else await sleep(lockPoll)
    }
    const touch = setInterval(() => { const now = new Date(); utimes(path, now, now).catch(() => {}) }, lockTtl / 3).unref()
    try {
      return await task()
    } finally {
      clearInterval(touch)
      await rm(path, { force: true })
    }
  }

  async close (): Promise<void> {}

  #path (name: string): string {
    return join(this.location, ...name.split('/'))
  }
}

/**
 * Removes a lock its holder left (untouched for lockTtl). Two waiters may both find it stale, and the first may have
 * made a new lock by the time the second removes "it": so it is moved aside first, and put back if what was moved
 * turns out to be a live lock.
 */
async function breakStale (path: string): Promise<void> {
  const aside = `${path}.${randomBytes(6).toString('hex')}.stale`
  try {
    await rename(path, aside)
  } catch {
    return
  }
  const moved = await stat(aside)
  if (Date.now() - moved.mtimeMs <= lockTtl) await link(aside, path).catch(() => {})
  await rm(aside, { force: true })
}
