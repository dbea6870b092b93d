import { spawn, type ChildProcessByStdio } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, type Readable } from 'node:stream'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import { main, type MainOptions } from '../../lib/cli/main.js'
import { deadline, startDeadline } from './raw.js'
import { deadUrl, waitFor } from './servers.js'

export interface MainRun {
  /** main's exit code, once it returns. */
  code: Promise<number>
  /** Where main hears SIGTERM, SIGINT and SIGHUP: emit on it to send one. */
  signals: EventEmitter
  stdout: () => string
  stderr: () => string
  /** The log lines, as pino writes them (JSON). */
  logs: () => string
  /** Resolves once the logs hold a line matching `pattern`. */
  logged: (pattern: RegExp, what: string) => Promise<void>
}

const collect = () => {
  const stream = new PassThrough()
  let text = ''
  stream.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
  return { stream, text: () => text }
}

export { startDeadline }

/** The goload command run in this process (so its coverage counts), with its own signals and streams. */
export function runMain (t: Test, argv: string[], env: NodeJS.ProcessEnv = {}, options: Pick<MainOptions, 'respawn' | 'reachTimeout'> = {}): MainRun {
  const signals = new EventEmitter()
  const [stdout, stderr, logs] = [collect(), collect(), collect()]
  const code = main(argv, { ...options, env, signals, stdout: stdout.stream, stderr: stderr.stream, logStream: logs.stream })
  // A test that fails half-way still stops what it started.
  t.teardown(async () => {
    signals.emit('SIGTERM', 'SIGTERM')
    await deadline(code, 10_000, 'goload to stop at teardown').catch(() => {})
  })
  return {
    code,
    signals,
    stdout: stdout.text,
    stderr: stderr.text,
    logs: logs.text,
    logged: (pattern, what) => waitFor(() => pattern.test(logs.text()), what, startDeadline)
  }
}

/** A port nothing listens on right now: listened on with port 0, then closed. */
export async function freePort (): Promise<number> {
  return Number(new URL(await deadUrl()).port)
}

/** A config file written into a fresh folder removed when the test ends. */
export async function configFile (t: Test, text: string, name = 'goload.yaml'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'goload-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, name)
  await writeFile(file, text)
  return file
}

/** Resolves once something accepts connections on 127.0.0.1:port (for runs whose log level hides the listening line). */
export async function accepting (port: number, ms = startDeadline): Promise<void> {
  const { connect } = await import('node:net')
  const until = Date.now() + ms
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => { socket.destroy(); resolve(true) }).once('error', () => resolve(false))
    })
    if (open) return
    if (Date.now() > until) throw new Error(`nothing accepted connections on port ${port} within ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

export interface GoloadProcess {
  child: ChildProcessByStdio<null, Readable, Readable>
  stdout: string
  stderr: string
  /** The exit code and signal, once it has exited. */
  exited: Promise<[number | null, NodeJS.Signals | null]>
}

/**
 * The command as npm installs it, in a process of its own: package.json's bin, compiled JavaScript (`npm run build`),
 * run by node alone (no tsx, no coverage), this process's node unless given another. Killed when the test ends if it
 * is still running.
 */
export function spawnGoload (t: Test, args: string[], extraEnv: NodeJS.ProcessEnv = {}, node = process.execPath): GoloadProcess {
  const root = fileURLToPath(new URL('../..', import.meta.url))
  const { bin } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { bin: { goload: string } }
  const { NODE_V8_COVERAGE, ...env } = process.env
  const child = spawn(node, [bin.goload, ...args], { cwd: root, env: { ...env, ...extraEnv, _TAPJS_PROCESSINFO_COVERAGE_: '0' }, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const result: GoloadProcess = { child, stdout: '', stderr: '', exited: once(child, 'exit') as GoloadProcess['exited'] }
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { result.stdout += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { result.stderr += chunk })
  return result
}
