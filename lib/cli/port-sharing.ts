import cluster from 'node:cluster'

/**
 * How the workers of `--workers N` share a port. 'reusePort': each worker listens on it itself with SO_REUSEPORT and
 * the kernel spreads new connections over their sockets, so no connection passes through the primary (Node 22.12+,
 * on Linux and FreeBSD). 'cluster': node:cluster's primary listens alone and hands each connection to a worker in
 * turn, every accept going through it: what Node has below 22.12, where listen ignores reusePort.
 */
export type PortSharing = 'reusePort' | 'cluster'

export function portSharing (version = process.versions.node, platform = process.platform): PortSharing {
  const [major, minor] = version.split('.').map(Number)
  const hasReusePort = major > 22 || (major === 22 && minor >= 12)
  return hasReusePort && (platform === 'linux' || platform === 'freebsd') ? 'reusePort' : 'cluster'
}

/**
 * What the primary of `--workers` uses: portSharing(), unless GOLOAD_PORT_SHARING=cluster asks for node:cluster's
 * sharing (another program on the port with SO_REUSEPORT would otherwise be given some of its connections; and to
 * compare the two). reusePort cannot be asked for where Node lacks it.
 */
export function chosenSharing (env: NodeJS.ProcessEnv = process.env): PortSharing {
  return env[sharingVariable] === 'cluster' ? 'cluster' : portSharing()
}

// The primary chooses once and tells each worker it forks: the two must agree, or workers on one port would fail.
export const sharingVariable = 'GOLOAD_PORT_SHARING'

/**
 * The listen options of a worker's listener on `port`. Port 0 is shared through the cluster in either case: with
 * sockets of their own, the workers would each be given a different port.
 */
export function workerListenOptions (port: number, env: NodeJS.ProcessEnv = process.env, isWorker = cluster.isWorker): { reusePort?: true, exclusive?: true } {
  return isWorker && env[sharingVariable] === 'reusePort' && port !== 0 ? { reusePort: true, exclusive: true } : {}
}
