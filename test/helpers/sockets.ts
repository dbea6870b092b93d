import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

/** The inodes of the IPv4 TCP sockets listening on `port` (Linux: /proc/net/tcp, state 0A). */
export function listeningSockets (port: number): Set<string> {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0')
  const inodes = new Set<string>()
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/)
    if (fields[1]?.endsWith(`:${hexPort}`) && fields[3] === '0A') inodes.add(fields[9])
  }
  return inodes
}

/** The inodes of the sockets a process holds open (Linux: /proc/<pid>/fd). */
export function socketsOf (pid: number): Set<string> {
  const inodes = new Set<string>()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (match !== null) inodes.add(match[1])
    } catch {
      // Closed between the listing and the read.
    }
  }
  return inodes
}

/** Which of `pids` hold a socket listening on `port`, each as often as it holds one. */
export function listenersOf (port: number, pids: number[]): number[] {
  const listening = listeningSockets(port)
  return pids.flatMap((pid) => [...socketsOf(pid)].filter((inode) => listening.has(inode)).map(() => pid))
}
