import cluster from 'node:cluster'
import { readFileSync } from 'node:fs'
import type { Writable } from 'node:stream'
import type { FastifyServerOptions } from 'fastify'
import { stringify as stringifyYaml } from 'yaml'
import { loadConfig } from '../config/load.js'
import { redactConfig } from '../config/redact.js'
import type { GoloadFileConfig } from '../config/schema.js'
import { configOfBackends } from './apps.js'
import { exposureProblem, tokenProblem } from '../admin/auth.js'
import type { Health } from '../admin/health.js'
import { startAdmin, type Admin } from '../admin/server.js'
import { createCliMetrics, type CliMetrics } from '../metrics/cli.js'
import { parseCommand, usage, UsageError, type Command } from './args.js'
import { Listeners } from './listeners.js'
import { PidFile } from './pid-file.js'
import { isFirstWorker, runWorkers, workerReady, type RespawnPolicy } from './workers.js'
import { warnUnreachable } from '../health/reachability.js'
import { loggerOptions } from './log-output.js'
import { describeChanges } from './config-changes.js'

export interface MainOptions {
  /** Where `${NAME}` in a config file is read from. Default process.env. */
  env?: NodeJS.ProcessEnv
  stdout?: Writable
  stderr?: Writable
  /** Where SIGTERM, SIGINT and SIGHUP are heard. Default process. */
  signals?: NodeJS.EventEmitter
  /** Where the logs go. Default pino's own (stdout). */
  logStream?: Writable
  /** A pino transport for the logs, in place of logStream: the example prints them through pino-pretty. */
  logTransport?: { target: string, options?: Record<string, unknown> }
  /** With --workers: how a worker that dies after it has served is started again. Default defaultRespawn. */
  respawn?: RespawnPolicy
  /** ms each backend has to resolve and accept a connection in the look taken at start and on reload. Default 1000. */
  reachTimeout?: number
}

const shutdownSignals = ['SIGTERM', 'SIGINT'] as const

type ServeCommand = Extract<Command, { action: 'serve' }>

/** The goload command: runs what argv asks for and resolves with the exit code. */
export async function main (argv: string[], { env = process.env, stdout = process.stdout, stderr = process.stderr, signals = process, logStream, logTransport, respawn, reachTimeout }: MainOptions = {}): Promise<number> {
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
  if (command.action === 'check' || command.action === 'print') {
    let config: GoloadFileConfig
    try {
      config = await loadConfig(command.config, { env, warn: warning(stderr) })
    } catch (error) {
      return fail(error)
    }
    stdout.write(command.action === 'check' ? `${command.config}: ok\n` : stringifyYaml(redactConfig(config)))
    return 0
  }

  return await serve(() => configOf(command, env, warning(stderr)), command.workers, { stdout, stderr, signals, logStream, logTransport, respawn, reachTimeout, pidFile: command.pidFile })
}

export interface ServeOptions extends Omit<MainOptions, 'env'> {
  /**
   * Called with each listener's port (the real one where the config says 0) once all of them listen, the admin
   * listener's URL if there is one, and the process's metrics (what the admin listener's /metrics answers with).
   */
  onListening?: (ports: number[], admin: string | undefined, metrics: CliMetrics) => void
  /** `--pid-file`: where goload's pid is written once it listens (the primary's, with workers), removed at exit. */
  pidFile?: string
}

/**
 * Runs a config's listeners until SIGTERM or SIGINT, then closes them gracefully; resolves with the exit code.
 * `load` gives the config (a file read, or flags turned into one); with workers > 1 this process is the primary.
 */
export async function serve (load: () => Promise<GoloadFileConfig>, workers: number, { stdout = process.stdout, stderr = process.stderr, signals = process, logStream, logTransport, respawn, reachTimeout, onListening, pidFile: pidPath }: ServeOptions = {}): Promise<number> {
  const fail = failure(stderr)
  // Workers run the same command line: the file is the primary's, the process to signal.
  const pidFile = pidPath === undefined || cluster.isWorker ? undefined : new PidFile(pidPath)
  // The handlers go in before anything asynchronous: a signal during start-up must not kill the process half-built.
  let received: (signal: NodeJS.Signals) => void = () => {}
  const stop = new Promise<NodeJS.Signals>((resolve) => { received = resolve })
  let shuttingDown = false
  const onShutdown = (signal: NodeJS.Signals): void => {
    shuttingDown = true
    received(signal)
  }
  let log: { info: (message: string) => void, error: (message: string) => void } = {
    info: (message) => { stdout.write(`${message}\n`) },
    error: (message) => { stderr.write(`${message}\n`) }
  }
  // Reloads run one after another. The handler is there from the start, since without one SIGHUP kills the process;
  // one that comes during start-up changes nothing: the file was just read.
  let reload = async (): Promise<void> => {}
  let reloading = Promise.resolve()
  const onHangUp = (): void => {
    // A reload now would open listeners and start pools that the shutdown under way never closes.
    if (shuttingDown) {
      log.info('goload: SIGHUP received while shutting down: not reloading')
      return
    }
    log.info('goload: SIGHUP received, reloading the config')
    reloading = reloading.then(async () => { await reload() })
  }
  for (const signal of shutdownSignals) signals.on(signal, onShutdown)
  signals.on('SIGHUP', onHangUp)
  try {
    let config: GoloadFileConfig
    try {
      pidFile?.check()
      config = await load()
    } catch (error) {
      return fail(error)
    }
    if (workers > 1 && cluster.isPrimary) {
      // Each worker reads the file again itself.
      reload = async () => { for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGHUP') }
      if (pidFile !== undefined) onceWorkersReady(workers, () => { writePidFile(pidFile, (message) => { log.error(message) }) })
      for (const name of stickyWithoutSecret(config)) {
        log.info(`goload: pools.${name}.sticky has no secret: each worker draws its own, so a client stays on its backend only while its connection stays on one worker; give sticky.secret`)
      }
      return await runWorkers(workers, stop, log.info, respawn)
    }

    let output
    try {
      output = logTransport === undefined ? await loggerOptions({ format: config.log?.format, accessFormat: config.accessLog?.format, buffer: config.accessLog?.buffer, flush: config.accessLog?.flush, shared: cluster.isWorker }, logStream) : { transport: logTransport }
    } catch (error) {
      return fail(error)
    }
    const logger: FastifyServerOptions['logger'] = { level: config.log?.level ?? 'info', ...output }
    const listeners = new Listeners(logger)
    try {
      await listeners.apply(config)
    } catch (error) {
      return fail(error)
    }
    log = listeners.log
    // Read from the live pools at each scrape; SIGHUP reloads counted below.
    const metrics = createCliMetrics(() => listeners.entries(), () => listeners.certificates(), () => listeners.splits())
    // The admin shows the pools serving now, whatever a reload does to them. With --workers, each worker has its
    // own on the shared port, showing and acting on its own pools (/metrics sums them all).
    let admin: Admin | undefined
    // The config the listeners run now, replaced by each reload that applies: GET /config shows it (with the admin
    // block as started: it changes at a restart only), the reload line says what the next one changes.
    let serving = config
    if (config.admin !== undefined) {
      try {
        admin = await startAdmin({ ...config.admin, source: () => listeners.entries(), splits: () => listeners.splits(), certificates: () => listeners.certificates(), health: healthOf(listeners, () => shuttingDown), metrics: metrics.scrape, config: () => redactConfig({ ...serving, admin: config.admin }), log: listeners.log })
      } catch (error) {
        await listeners.close()
        return fail(error)
      }
    }
    const { ports } = listeners
    log.info(`goload listening on port${ports.length > 1 ? 's' : ''} ${ports.join(', ')}, pid ${process.pid}`)
    // A backend that cannot be reached is said now, not at its first 502. Under --workers, by one of them only.
    let stopReaching = (): void => {}
    const reachBackends = (pools: GoloadFileConfig['pools']): void => {
      stopReaching()
      if (isFirstWorker()) stopReaching = warnUnreachable(pools, (message) => { listeners.log.warn(message) }, reachTimeout)
    }
    reachBackends(config.pools)
    if (pidFile !== undefined) writePidFile(pidFile, (message) => { log.error(message) })
    onListening?.(ports, admin?.url, metrics)
    // The primary respawns a worker that dies once it has served; one that fails before this stops them all.
    if (cluster.isWorker) process.send?.({ type: workerReady })
    // SIGHUP: the same source again. A config that fails (a bad file, a port in use) leaves the running one serving.
    reload = async () => {
      try {
        const next = await load()
        await listeners.apply(next)
        reachBackends(next.pools)
        metrics.reloaded(true)
        // One line, whatever changed: a log reader greps it.
        log.info(`goload: config reloaded (${describeChanges(serving, next)}), listening on port${listeners.ports.length > 1 ? 's' : ''} ${listeners.ports.join(', ')}`)
        serving = next
        // Its port, host and token are read at start only.
        if (JSON.stringify(next.admin) !== JSON.stringify(config.admin)) listeners.log.warn('goload: the admin block changed: it applies once goload restarts')
        // The logger is made once.
        if (JSON.stringify([next.log, next.accessLog]) !== JSON.stringify([config.log, config.accessLog])) listeners.log.warn('goload: log or accessLog changed: they apply once goload restarts')
      } catch (error) {
        metrics.reloaded(false)
        // One line per problem (a config file's each name their file and line).
        const { message, problems } = error as Error & { problems?: string[] }
        for (const problem of problems ?? message.split('\n')) log.error(`goload: reload failed, the running config stays: ${problem.replace(/^fastify-goload: /, '')}`)
      }
    }
    const signal = await stop
    log.info(`goload: ${signal} received, closing: requests in flight may finish`)
    await reloading
    stopReaching()
    // The admin last: its /healthz answers 503 while the listeners drain, rather than nothing at all.
    await listeners.close()
    await admin?.close()
    return 0
  } finally {
    pidFile?.remove()
    for (const signal of shutdownSignals) signals.off(signal, onShutdown)
    signals.off('SIGHUP', onHangUp)
  }
}

/**
 * The admin's probes. Ready is live, no more: a balancer without a backend in rotation still answers (503 with a
 * reason, and in rotation again the moment a backend is), and taking every replica out of a Service because the
 * backends they share are down would turn those answers into refused connections. Envoy's /ready and Traefik's
 * ping do the same.
 */
function healthOf (listeners: Listeners, shuttingDown: () => boolean): Health {
  const live = (): string | undefined => {
    if (shuttingDown()) return 'shutting down'
    const closed = listeners.notAccepting()
    return closed.length === 0 ? undefined : `not accepting connections on ${closed.join(', ')}`
  }
  return { live, ready: live }
}

// Serving already: a pid file that cannot be written (its folder was checked at start) is no reason to stop.
function writePidFile (pidFile: PidFile, logError: (message: string) => void): void {
  try {
    pidFile.write()
  } catch (error) {
    logError(`goload: ${(error as Error).message}`)
  }
}

/** The pools whose sticky cookie has no secret of the file's: random per process, so workers disagree. */
function stickyWithoutSecret (config: GoloadFileConfig): string[] {
  return Object.entries(config.pools).filter(([, pool]) => pool.sticky !== undefined && pool.sticky.secret === undefined).map(([name]) => name)
}

/** Calls `ready` once `count` workers have each said they serve (the primary's pid file means: all of them listen). */
function onceWorkersReady (count: number, ready: () => void): void {
  const serving = new Set<number>()
  const onMessage = (worker: { id: number }, message: { type?: string } | undefined): void => {
    if (message?.type !== workerReady) return
    serving.add(worker.id)
    if (serving.size < count) return
    cluster.off('message', onMessage)
    ready()
  }
  cluster.on('message', onMessage)
}

// A config file's problems come one a line, each naming the file; any other failure is one line of ours.
function failure (stderr: Writable): (error: unknown) => number {
  return (error) => {
    const { code, message } = error as { code?: string, message: string }
    stderr.write(code === 'FST_GOLOAD_INVALID_CONFIG' ? `${message}\n` : `goload: ${message.replace(/^fastify-goload: /, '')}\n`)
    return 1
  }
}

// What is served anyway but should be seen to (an expired certificate): at start, on each reload and by --check.
function warning (stderr: Writable): (message: string) => void {
  return (message) => { stderr.write(`goload: warning: ${message}\n`) }
}

async function configOf ({ source, admin }: ServeCommand, env: NodeJS.ProcessEnv, warn: (message: string) => void): Promise<GoloadFileConfig> {
  const config = 'config' in source ? await loadConfig(source.config, { env, warn }) : configOfBackends(source)
  if (admin === undefined) return config
  // `--admin` stands for the file's admin block; its token is never a flag, where ps would show it.
  const token = env.GOLOAD_ADMIN_TOKEN === '' ? undefined : env.GOLOAD_ADMIN_TOKEN
  const problem = exposureProblem(admin.host, token)
  if (problem !== undefined) throw new UsageError(`--admin ${admin.host}:${admin.port}: ${problem}`)
  const weakToken = token === undefined ? undefined : tokenProblem(token)
  if (weakToken !== undefined) throw new UsageError(`GOLOAD_ADMIN_TOKEN ${weakToken}`)
  return { ...config, admin: { ...admin, ...(token === undefined ? {} : { token }) } }
}

function version (): string {
  // lib/cli/ in development, dist/cli/ once built: package.json is two folders up from either.
  return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
}
