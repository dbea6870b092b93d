import cluster, { type Worker } from 'node:cluster'
import { serveClusterMetrics } from '../metrics/cli.js'
import { chosenSharing, sharingVariable, type PortSharing } from './port-sharing.js'

/** The message a worker sends the primary once every listener of its config (and its admin) is up. */
export const workerReady = 'goload:worker-ready'

/** How the primary starts again a worker that died after it had served. */
export interface RespawnPolicy {
  /** ms before the first new start; doubles with each quick failure in a row, up to maxDelay. */
  firstDelay: number
  maxDelay: number
  /** A worker up this long (from its fork) before it died was no quick failure: the count of them starts again. */
  stable: number
  /** Quick failures in a row, in one place, after which the primary stops every worker and exits 1. */
  maxQuickFailures: number
}

// nginx's master respawns a worker at once; a backoff keeps a worker that dies at every start from spinning. Ten
// quick failures in a row (some 40 s of them) are not going to get better: exit 1 and let the supervisor see it.
export const defaultRespawn: RespawnPolicy = { firstDelay: 100, maxDelay: 10_000, stable: 10_000, maxQuickFailures: 10 }

/** Which of the N places a worker runs in, 0 to N-1, in its environment: a respawned worker takes its place's. */
const placeVariable = 'GOLOAD_WORKER_PLACE'

/** This process is not a worker, or the one in the first place: what is done once, not once per worker (a warning). */
export function isFirstWorker (): boolean {
  return !cluster.isWorker || process.env[placeVariable] === '0'
}

/** One of the N places a worker runs in: whether a worker there has served yet, and how its workers have been failing. */
interface Place {
  index: number
  /** A worker here has reported ready: from then on, one that dies is started again. */
  served: boolean
  quickFailures: number
}

/**
 * The primary of `--workers N`: forks N processes that each run the same command and share its ports (`sharing`),
 * passes the shutdown signal on to them, and settles with 0 once every one has exited cleanly, 1 otherwise. A
 * worker that fails before it serves (a port in use) takes the others down with it: a half-started balancer is no
 * use. One that dies after it has served is forked again after a backoff, logged, while the others go on serving;
 * after policy.maxQuickFailures in a row the primary gives up, stops them all and returns 1. A worker that exits
 * cleanly by itself was told to stop (a signal sent to it alone), and is not replaced.
 * A worker's metrics scrape comes here, and goes back with every worker's metrics summed.
 */
export async function runWorkers (count: number, stop: Promise<NodeJS.Signals>, log: (line: string) => void, policy: RespawnPolicy = defaultRespawn, sharing: PortSharing = chosenSharing()): Promise<number> {
  const live = new Set<Worker>()
  const respawns = new Set<NodeJS.Timeout>()
  let failed = false
  let stopping = false
  let settle = (): void => {}
  const settled = new Promise<void>((resolve) => { settle = resolve })
  const settleWhenNoneLeft = (): void => { if (live.size === 0 && respawns.size === 0) settle() }
  const stopAll = (signal: NodeJS.Signals): void => {
    stopping = true
    for (const timer of respawns) clearTimeout(timer)
    respawns.clear()
    for (const worker of live) if (worker.process.exitCode === null) worker.process.kill(signal)
    settleWhenNoneLeft()
  }

  const start = (place: Place): void => {
    const worker = cluster.fork({ [placeVariable]: String(place.index), [sharingVariable]: sharing })
    const forkedAt = Date.now()
    let ready = false
    live.add(worker)
    worker.on('message', (message: { type?: string } | undefined) => {
      if (message?.type !== workerReady) return
      ready = true
      place.served = true
    })
    worker.once('exit', (code, signal) => {
      live.delete(worker)
      const how = signal ?? `code ${code}`
      if (stopping || (code === 0 && signal === null)) {
        if (code !== 0 || signal !== null) failed = true
        else if (!stopping) log(`worker ${worker.process.pid} exited cleanly (told to stop): not replaced`)
        settleWhenNoneLeft()
        return
      }
      if (!place.served) {
        log(`worker ${worker.process.pid} exited with ${how}: stopping the others`)
        failed = true
        stopAll('SIGTERM')
        return
      }
      place.quickFailures = Date.now() - forkedAt < policy.stable ? place.quickFailures + 1 : 1
      const what = `worker ${worker.process.pid} exited with ${how}${ready ? '' : ' before it was serving'}`
      if (place.quickFailures > policy.maxQuickFailures) {
        log(`${what}: ${policy.maxQuickFailures} quick failures in a row, giving up: stopping the others`)
        failed = true
        stopAll('SIGTERM')
        return
      }
      const delay = Math.min(policy.maxDelay, policy.firstDelay * 2 ** (place.quickFailures - 1))
      log(`${what}: starting another in ${delay} ms`)
      const timer = setTimeout(() => {
        respawns.delete(timer)
        start(place)
      }, delay)
      respawns.add(timer)
    })
  }

  const stopMetrics = serveClusterMetrics()
  for (let i = 0; i < count; i++) start({ index: i, served: false, quickFailures: 0 })
  log(`goload: ${count} worker processes, ${sharing === 'reusePort' ? 'each listening with reusePort' : 'sharing the ports through node:cluster'}`)
  stop.then(stopAll, () => {})
  await settled
  stopMetrics()
  return failed ? 1 : 0
}
