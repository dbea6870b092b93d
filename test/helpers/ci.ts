import { existsSync } from 'node:fs'
import { spawnSync } from 'node:child_process'

/**
 * Whether a CI value means CI: anything but unset, '', '0' or 'false' (any case). CI services set CI=true, but not
 * all: some set 1, or a name; reading only 'true' would quietly turn a missing program into a skip there.
 */
export function isCI (value: string | undefined): boolean {
  return !['', '0', 'false'].includes((value ?? '').trim().toLowerCase())
}

export const underCI = isCI(process.env.CI)

/**
 * An outside program some tests need (redis-server, chromium, docker-compose). Where it is missing, such a test is
 * skipped with the reason, except under CI (.ci/run installs each one), where it must run: there it fails at once,
 * saying what is missing, rather than pass without having run.
 */
export class Program {
  readonly command: string
  readonly installed: boolean
  readonly install: string
  readonly ci: boolean

  constructor (command: string, installed: boolean, install: string, ci = underCI) {
    this.command = command
    this.installed = installed
    this.install = install
    this.ci = ci
  }

  /** For tap's `skip` option: why a test that needs the program cannot run here, or false when it must run. */
  get skip (): string | false {
    return this.installed || this.ci ? false : `${this.command} is not installed (${this.install}); under CI this test fails instead`
  }

  /** Throws, saying what to install, when the program is missing: what a test under CI gets instead of a skip. */
  require (): void {
    if (!this.installed) throw new Error(`${this.command} is not installed, and CI=${JSON.stringify(process.env.CI)} means every test must run: ${this.install} (.ci/run does)`)
  }
}

/** A program on PATH: found when `name ...versionArgs` runs. */
export function programOnPath (name: string, versionArgs: string[], install: string): Program {
  return new Program(name, spawnSync(name, versionArgs).error === undefined, install)
}

/** A program at a path. */
export function programAt (path: string, install: string): Program {
  return new Program(path, existsSync(path), install)
}
