import cluster, { type Worker } from 'node:cluster'
import { serveClusterMetrics } from '../metrics/cli.js'

/**
 * The primary of `--workers N`: forks N processes that each run the same command and share its ports (node:cluster),
 * passes the shutdown signal on to them, and settles with 0 once every one has exited cleanly, 1 otherwise. A
 * worker that fails on its own (a port in use) takes the others down with it: a half-started balancer is no use.
 * A worker's metrics scrape comes here, and goes back with every worker's metrics summed.
 */
export async function runWorkers (count: number, stop: Promise<NodeJS.Signals>, log: (line: string) => void): Promise<number> {
  const workers: Worker[] = []
  let failed = false
  let stopping = false
  const stopAll = (signal: NodeJS.Signals): void => {
    stopping = true
    for (const worker of workers) if (worker.exitedAfterDisconnect !== true && worker.process.exitCode === null) worker.process.kill(signal)
  }
  const stopMetrics = serveClusterMetrics()
  const exits = Array.from({ length: count }, () => {
    const worker = cluster.fork()
    workers.push(worker)
    return new Promise<void>((resolve) => {
      worker.once('exit', (code, signal) => {
        if (code !== 0 || signal !== null) {
          if (!stopping) log(`worker ${worker.process.pid} exited with ${signal ?? `code ${code}`}: stopping the others`)
          failed = true
          if (!stopping) stopAll('SIGTERM')
        }
        resolve()
      })
    })
  })
  log(`goload: ${count} worker processes`)
  stop.then(stopAll, () => {})
  await Promise.all(exits)
  stopMetrics()
  return failed ? 1 : 0
}
