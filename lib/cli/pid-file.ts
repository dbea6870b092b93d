import { accessSync, constants, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

/** `--pid-file` names a file whose process is still running: another goload, most likely. */
export class PidFileError extends Error {
  readonly code = 'FST_GOLOAD_PID_FILE'
}

/**
 * `--pid-file PATH`: goload's own pid, for `kill -HUP $(cat PATH)`. Signalling the process that started goload
 * (`npx`, `npm exec`) reaches npm's wrapper, not goload.
 */
export class PidFile {
  readonly path: string

  constructor (path: string) {
    this.path = path
  }

  /**
   * Before anything starts: throws if the file names a process that is running now, or if its folder cannot be
   * written. A file left by one that died (a crash, a SIGKILL, a container restarted with the same pid, which is
   * then this process's own) is stale: write() overwrites it.
   */
  check (): void {
    const pid = this.#pidInFile()
    if (pid !== undefined && pid !== process.pid && running(pid)) {
      throw new PidFileError(`--pid-file ${this.path}: process ${pid} named in it is running (another goload?): stop it, or give another file`)
    }
    try {
      accessSync(dirname(this.path), constants.W_OK)
    } catch (error) {
      throw new PidFileError(`--pid-file ${this.path}: cannot write in its folder: ${(error as Error).message}`)
    }
  }

  /**
   * Once every listener listens, so that the file's presence means goload serves. It appears whole (written beside
   * it, then renamed): a reader never sees half a pid.
   */
  write (): void {
    const partial = `${this.path}.${process.pid}.partial`
    try {
      writeFileSync(partial, `${process.pid}\n`)
      renameSync(partial, this.path)
    } catch (error) {
      rmSync(partial, { force: true })
      throw new PidFileError(`--pid-file ${this.path}: cannot write it: ${(error as Error).message}`)
    }
  }

  /** At exit; only while it still names this process: a goload started since with the same file keeps its own. */
  remove (): void {
    if (this.#pidInFile() === process.pid) rmSync(this.path, { force: true })
  }

  #pidInFile (): number | undefined {
    let text: string
    try {
      text = readFileSync(this.path, 'utf8')
    } catch {
      return undefined
    }
    const pid = Number(text.trim())
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined
  }
}

function running (pid: number): boolean {
  try {
    // Signal 0 checks that the process exists without sending anything; EPERM: it exists, owned by another user.
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
