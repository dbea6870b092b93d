// `npm run bench:websocket`: 1 MiB WebSocket messages echoed through goload's tunnel, beside a direct connection to
// the echo backend (and nginx when installed). CONNECTIONS clients each send a message, wait for its echo and send
// the next, for DURATION seconds; throughput counts each echoed message once (MiB/s one way).
// Rows are measured in turn, ROUNDS times, every other round in reverse order, and summed: on a machine whose speed
// moves from one minute to the next, each row sees the same minutes.
// Env: DURATION seconds per row and round (default 5), ROUNDS (default 3), CONNECTIONS (default 4), SIZE bytes per
// message (default 1 MiB), WARMUP seconds per row (default 1).
import { cpus } from 'node:os'
import WebSocket from 'ws'
import { codeVersion, cpuSeconds, freePort, Group, have, installCleanup, startNginxBalancer } from './harness.js'

const duration = Number(process.env.DURATION ?? 5)
const connections = Number(process.env.CONNECTIONS ?? 4)
const size = Number(process.env.SIZE ?? 1024 * 1024)
const warmup = Number(process.env.WARMUP ?? 1)
const rounds = Number(process.env.ROUNDS ?? 3)

/** One client: message, echo, next message, until the deadline. Resolves with the echoes received. */
function echoLoop (url: string, payload: Buffer, deadline: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false, maxPayload: 2 * payload.length })
    let echoes = 0
    socket.on('open', () => { socket.send(payload) })
    socket.on('message', (data: Buffer) => {
      if (data.length !== payload.length) {
        socket.terminate()
        reject(new Error(`echo of ${data.length} bytes, sent ${payload.length}`))
        return
      }
      echoes++
      if (Date.now() < deadline) socket.send(payload)
      else socket.close()
    })
    socket.on('close', () => { resolve(echoes) })
    socket.on('error', reject)
  })
}

async function measure (url: string, seconds: number): Promise<{ messages: number, seconds: number }> {
  const payload = Buffer.alloc(size, 'x')
  const started = Date.now()
  const counts = await Promise.all(Array.from({ length: connections }, () => echoLoop(url, payload, started + seconds * 1000)))
  return { messages: counts.reduce((sum, count) => sum + count, 0), seconds: (Date.now() - started) / 1000 }
}

installCleanup()
const group = new Group()
try {
  const echo = await group.node('ws-echo.ts', [])
  const goload = await group.node('goload.ts', ['0', 'least-busy', echo.url], { label: 'goload-websocket' })
  const rows: Array<{ name: string, url: string, pid?: number }> = [
    { name: 'direct to the echo backend', url: `ws://127.0.0.1:${echo.ports[0]}/` },
    { name: 'goload plugin (tunnel)', url: `ws://127.0.0.1:${goload.ports[0]}/`, pid: goload.child.pid }
  ]
  if (have('nginx')) {
    const port = await freePort()
    const nginx = await startNginxBalancer(group, 'nginx-lb-websocket', [{ port, backends: [echo.url], policy: 'least_conn', websocket: true }])
    rows.splice(1, 0, { name: 'nginx (proxy_pass, Upgrade)', url: `ws://127.0.0.1:${port}/`, pid: nginx.pid })
  }
  console.log(`# fastify-goload bench:websocket: ${new Date().toISOString()}, ${codeVersion().text}`)
  console.log(`${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores; node ${process.version}; ${connections} clients (ws, in this process), ` +
    `${(size / 1024 / 1024).toFixed(2)} MiB messages echoed, ${rounds} rounds of ${duration} s per row (every other round in reverse order) after ${warmup} s of warm-up\n`)
  const totals = rows.map(() => ({ messages: 0, seconds: 0, cpu: 0, perRound: [] as number[] }))
  for (const row of rows) if (warmup > 0) await measure(row.url, warmup)
  for (let round = 0; round < rounds; round++) {
    const order = rows.map((_, index) => index)
    if (round % 2 === 1) order.reverse()
    for (const index of order) {
      const { pid, url } = rows[index]
      const before = pid === undefined ? 0 : cpuSeconds(pid)
      const result = await measure(url, duration)
      const total = totals[index]
      total.messages += result.messages
      total.seconds += result.seconds
      total.cpu += pid === undefined ? 0 : cpuSeconds(pid) - before
      total.perRound.push((result.messages * size) / 1024 / 1024 / result.seconds)
    }
  }
  console.log('| path | messages echoed | MiB/s (one way) | ÷ direct | MiB/s per round | proxy CPU per MiB echoed |')
  console.log('|---|---:|---:|---:|---|---:|')
  const mibsOf = (index: number) => (totals[index].messages * size) / 1024 / 1024 / totals[index].seconds
  const direct = mibsOf(0)
  rows.forEach((row, index) => {
    const { messages, cpu, perRound } = totals[index]
    const cpuPerMib = row.pid === undefined ? '-' : `${((cpu / (messages * size / 1024 / 1024)) * 1000).toFixed(2)} ms`
    console.log(`| ${row.name} | ${messages} | ${mibsOf(index).toFixed(1)} | ${(mibsOf(index) / direct).toFixed(2)}× | ${perRound.map((mibs) => mibs.toFixed(0)).join(' / ')} | ${cpuPerMib} |`)
  })
} finally {
  await group.close()
}
