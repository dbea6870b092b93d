// What every bench server does besides serving: tell the parent (bench/run.ts, over the IPC channel of fork) which
// ports it listens on, and stop when asked or when the parent goes away, so no server outlives a run.
// Exiting through process.exit also lets `node --cpu-prof` write its profile.

type Message = { type: 'counts' } | { type: string }

/**
 * The listen backlog of every bench server, Node's and nginx's alike (HAProxy and Caddy already take the system's
 * somaxconn). Node's default of 511 overflows when wrk opens 1,000 connections at once: the kernel drops the
 * handshakes it has no room for, and the requests written on them wait 1-3 s for a SYN-ACK retransmit, which
 * would be measured as the server's latency.
 */
export const backlog = 4096

export function ready (ports: number[]): void {
  // bench/memory.ts starts servers with --expose-gc and has them collect before each RSS reading.
  process.on('message', (message: Message) => {
    if (message.type !== 'gc') return
    (globalThis as { gc?: () => void }).gc?.()
    process.send?.({ type: 'gc' })
  })
  process.send?.({ type: 'ready', ports })
}

export function onStop (close: () => Promise<unknown> | unknown): void {
  let stopping = false
  const stop = (): void => {
    if (stopping) return
    stopping = true
    // A server that does not close in time is left behind by its own exit, never kept running.
    setTimeout(() => process.exit(0), 2000).unref()
    Promise.resolve()
      .then(close)
      .catch(() => {})
      .finally(() => process.exit(0))
  }
  process.once('SIGTERM', stop)
  process.once('SIGINT', stop)
  process.once('disconnect', stop)
}

/** Answers the parent's requests for something this server counts (requests per backend). */
export function onCounts (counts: () => number[]): void {
  process.on('message', (message: Message) => {
    if (message.type === 'counts') process.send?.({ type: 'counts', counts: counts() })
  })
}

/** `node --import tsx bench/servers/x.ts 8080` or port 0 (any free port, reported to the parent). */
export function portArg (value: string | undefined): number {
  const port = Number(value ?? 0)
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`not a port: ${value}`)
  return port
}
