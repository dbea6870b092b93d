// `npm run bench:memory`: what idle clients cost a balancer in resident memory, goload beside nginx and
// @fastify/http-proxy (Node's floor). For each: RSS
// (the process and its children, from /proc) before and after CONNECTIONS keep-alive client connections, each having
// had one request answered and then left idle; then, after closing them, before and after WEBSOCKETS open WebSockets
// tunnelled to an echo backend. The figures are the differences, scaled to 10,000 connections and 1,000 WebSockets.
// The Node servers run with --expose-gc and collect their garbage before each reading, so a collection that happens
// to fall between the two readings of one row does not hide what the clients added. V8 keeps the pages a collection
// frees and reuses them before RSS grows: read the difference as a floor (without the collections it was a ceiling).
// Env: CONNECTIONS (default 10000), WEBSOCKETS (default 1000), SETTLE ms to wait before reading RSS (default 1000).
// Needs a file-descriptor limit (`ulimit -n`) above CONNECTIONS in this process and in the balancer.
import { spawnSync } from 'node:child_process'
import net from 'node:net'
import { cpus } from 'node:os'
import WebSocket from 'ws'
import { codeVersion, freePort, Group, have, installCleanup, rssBytes, sleep, startNginxBalancer } from './harness.js'

const connections = Number(process.env.CONNECTIONS ?? 10_000)
const websockets = Number(process.env.WEBSOCKETS ?? 1000)
const settle = Number(process.env.SETTLE ?? 1000)
const batch = 200

const limit = Number(spawnSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).stdout.trim())
if (Number.isFinite(limit) && limit < connections + 1000) {
  console.error(`ulimit -n is ${limit}: CONNECTIONS=${connections} needs at least ${connections + 1000} (raise it, or lower CONNECTIONS)`)
  process.exit(2)
}

/** A connection that has had one request answered (so the server holds it as an idle keep-alive one). */
function idleConnection (port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1')
    socket.setTimeout(10_000, () => { socket.destroy(new Error('no answer within 10 s')) })
    socket.once('connect', () => { socket.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n') })
    // The echo backend's whole answer is one small packet: its first chunk is the response.
    socket.once('data', (chunk: Buffer) => {
      socket.setTimeout(0)
      if (chunk.toString('latin1', 0, 12) !== 'HTTP/1.1 200') reject(new Error(`answered ${chunk.toString('latin1', 0, 40)}`))
      else resolve(socket)
    })
    socket.once('error', reject)
  })
}

function openWebSocket (port: number): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate: false })
    socket.once('open', () => { resolve(socket) })
    socket.once('error', reject)
  })
}

async function inBatches<T> (count: number, open: () => Promise<T>): Promise<T[]> {
  const opened: T[] = []
  for (let start = 0; start < count; start += batch) {
    opened.push(...await Promise.all(Array.from({ length: Math.min(batch, count - start) }, open)))
  }
  return opened
}

async function rssAfterSettling (pid: number, collect?: () => Promise<void>): Promise<number> {
  await collect?.()
  await sleep(settle)
  return rssBytes(pid)
}

const mib = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

interface Balancer { name: string, start: (group: Group, echo: string) => Promise<{ port: number, pid: number, collect?: () => Promise<void> }> }

const balancers: Balancer[] = [
  ...(have('nginx')
    ? [{
        name: 'nginx least_conn (1 worker)',
        async start (group: Group, echo: string) {
          const port = await freePort()
          const nginx = await startNginxBalancer(group, 'nginx-lb-memory', [{ port, backends: [echo], policy: 'least_conn', websocket: true }], connections + 2 * websockets + 1000)
          return { port, pid: nginx.pid! }
        }
      }]
    : []),
  {
    // Node's own cost per connection, with no balancing: what a Node proxy starts from.
    name: '@fastify/http-proxy, one upstream',
    async start (group, echo) {
      const proxy = await group.node('http-proxy-single.ts', ['0', echo, '--websocket'], { label: 'http-proxy-memory', nodeOptions: ['--expose-gc'] })
      return { port: proxy.ports[0], pid: proxy.child.pid!, collect: () => proxy.collectGarbage() }
    }
  },
  {
    name: 'goload plugin',
    async start (group, echo) {
      const goload = await group.node('goload.ts', ['0', 'least-busy', echo], { label: 'goload-memory', nodeOptions: ['--expose-gc'] })
      return { port: goload.ports[0], pid: goload.child.pid!, collect: () => goload.collectGarbage() }
    }
  }
]

/**
 * RSS of a balancer started afresh for this measurement (memory a first measurement touched and freed would
 * otherwise be reused by the second), before and after `open` opens `count` clients.
 */
async function growth<T> (balancer: Balancer, count: number, open: (port: number) => Promise<T>, close: (client: T) => void): Promise<{ rest: number, grown: number }> {
  const group = new Group()
  try {
    const echo = await group.node('ws-echo.ts', [])
    const { port, pid, collect } = await balancer.start(group, echo.url)
    // A few requests first, so the request path (and the upstream connections) exist before the baseline.
    for (const socket of await inBatches(100, () => idleConnection(port))) socket.destroy()
    const rest = await rssAfterSettling(pid, collect)
    const clients = await inBatches(count, () => open(port))
    const grown = await rssAfterSettling(pid, collect) - rest
    for (const client of clients) close(client)
    return { rest, grown }
  } finally {
    await group.close()
  }
}

installCleanup()
console.log(`# fastify-goload bench:memory: ${new Date().toISOString()}, ${codeVersion().text}`)
console.log(`${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores; node ${process.version}; ${connections} idle keep-alive connections, ` +
  `${websockets} open WebSockets, each measured on a balancer started afresh; RSS of the balancer's processes, ${settle} ms after the last one opened\n`)
console.log('| balancer | RSS at rest | + idle connections | per 10,000 idle keep-alive connections | + WebSockets | per 1,000 open WebSockets |')
console.log('|---|---:|---:|---:|---:|---:|')
for (const balancer of balancers) {
  const idle = await growth(balancer, connections, idleConnection, (socket) => { socket.destroy() })
  const tunnels = await growth(balancer, websockets, openWebSocket, (socket) => { socket.terminate() })
  console.log(`| ${balancer.name} | ${mib(idle.rest)} | ${mib(idle.grown)} | ${mib(idle.grown * 10_000 / connections)} | ` +
    `${mib(tunnels.grown)} | ${mib(tunnels.grown * 1000 / websockets)} |`)
}
