import cluster from 'node:cluster'
import { readFileSync } from 'node:fs'
import type { Writable } from 'node:stream'
import type { FastifyServerOptions } from 'fastify'
import { loadConfig } from '../config/load.js'
import type { GoloadFileConfig } from '../config/schema.js'
import { configOfBackends } from './apps.js'
import { parseCommand, usage, type Command, type Source } from './args.js'
import { startListeners } from './listeners.js'
import { runWorkers } from './workers.js'

export interface MainOptions {
  /** Where `${NAME}` in a config file is read from. Default process.env. */
  env?: NodeJS.ProcessEnv
  stdout?: Writable
  stderr?: Writable
  /** Where SIGTERM, SIGINT and SIGHUP are heard. Default process. */
  signals?: NodeJS.EventEmitter
  /** Where the logs go. Default pino's own (stdout). */
  logStream?: Writable
}

const shutdownSignals = ['SIGTERM', 'SIGINT'] as const

/** The goload command: runs what argv asks for and resolves with the exit code. */
export async function main (argv: string[], { env = process.env, stdout = process.stdout, stderr = process.stderr, signals = process, logStream }: MainOptions = {}): Promise<number> {
  const fail = failure(stderr)
  let command: Command
  try {
    command = parseCommand(argv)
  } catch (error) {
    return fail(error)
  }
  if (command.action === 'help') {
    stdout.write(usage)
    return 0
  }
  if (command.action === 'version') {
    stdout.write(`${version()}\n`)
    return 0
  }
  if (command.action === 'check') {
    try {
      await loadConfig(command.config, { env })
    } catch (error) {
      return fail(error)
    }
    stdout.write(`${command.config}: ok\n`)
    return 0
  }

  return await serve(() => configOf(command.source, env), command.workers, { stdout, stderr, signals, logStream })
}

export interface ServeOptions extends Omit<MainOptions, 'env'> {
  /** Called with each listener's port (the real one where the config says 0) once all of them listen. */
  onListening?: (ports: number[]) => void
}

/**
 * Runs a config's listeners until SIGTERM or SIGINT, then closes them gracefully; resolves with the exit code.
 * `load` gives the config (a file read, or flags turned into one); with workers > 1 this process is the primary.
 */
export async function serve (load: () => Promise<GoloadFileConfig>, workers: number, { stdout = process.stdout, stderr = process.stderr, signals = process, logStream, onListening }: ServeOptions = {}): Promise<number> {
  const fail = failure(stderr)
  // The handlers go in before anything asynchronous: a signal during start-up must not kill the process half-built.
  let received: (signal: NodeJS.Signals) => void = () => {}
  const stop = new Promise<NodeJS.Signals>((resolve) => { received = resolve })
  const onShutdown = (signal: NodeJS.Signals): void => { received(signal) }
  let log: { info: (message: string) => void, warn: (message: string) => void } = {
    info: (message) => { stdout.write(`${message}\n`) },
    warn: (message) => { stderr.write(`${message}\n`) }
  }
  // Hot reload is not built yet: say so rather than die, which is what SIGHUP would do without a handler.
  const onHangUp = (): void => { log.warn('goload: SIGHUP received; reloading the config is not supported yet, the running config stays') }
  for (const signal of shutdownSignals) signals.on(signal, onShutdown)
  signals.on('SIGHUP', onHangUp)
  try {
    let config: GoloadFileConfig
    try {
      config = await load()
    } catch (error) {
      return fail(error)
    }
    if (workers > 1 && cluster.isPrimary) return await runWorkers(workers, stop, log.info)

    const logger: FastifyServerOptions['logger'] = { level: config.log?.level ?? 'info', ...(logStream === undefined ? {} : { stream: logStream }) }
    let running
    try {
      running = await startListeners(config, logger)
    } catch (error) {
      return fail(error)
    }
    const [first] = running.apps
    log = first.log
    log.info(`goload listening on port${running.ports.length > 1 ? 's' : ''} ${running.ports.join(', ')}, pid ${process.pid}`)
    onListening?.(running.ports)
    const signal = await stop
    log.info(`goload: ${signal} received, closing: requests in flight may finish`)
    await running.close()
    return 0
  } finally {
    for (const signal of shutdownSignals) signals.off(signal, onShutdown)
    signals.off('SIGHUP', onHangUp)
  }
}

// A config file's problems come one a line, each naming the file; any other failure is one line of ours.
function failure (stderr: Writable): (error: unknown) => number {
  return (error) => {
    const { code, message } = error as { code?: string, message: string }
    stderr.write(code === 'FST_GOLOAD_INVALID_CONFIG' ? `${message}\n` : `goload: ${message.replace(/^fastify-goload: /, '')}\n`)
    return 1
  }
}

async function configOf (source: Source, env: NodeJS.ProcessEnv): Promise<GoloadFileConfig> {
  return 'config' in source ? await loadConfig(source.config, { env }) : configOfBackends(source)
}

function version (): string {
  // lib/cli/ in development, dist/cli/ once built: package.json is two folders up from either.
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}
