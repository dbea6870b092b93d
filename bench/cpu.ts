// `npm run bench:cpu`: CPU time per request of goload at a fixed request rate, beside @fastify/http-proxy with one
// upstream (reply-from alone) and, with BASE=<another checkout>, the same goload bench server from that tree, so a
// change to the request path is measured before and after in one run. Rows are loaded in turn, ROUNDS times, every
// other round in reverse order; the CPU is the server process's own (utime + stime from /proc), divided by the
// requests it answered. At a fixed rate this figure moves far less with other work on the machine than req/s does.
// Env: RATE (requests/s, default 3000), CONNECTIONS (default 32), DURATION (s per row and round, default 6),
// ROUNDS (default 3), WARMUP (s of load before the first round, default 3), BASE (a checkout with node_modules).
import { fork, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { cpuSeconds, installCleanup, rootDir, runAutocannon } from './harness.js'

const rate = Number(process.env.RATE ?? 3000)
const connections = Number(process.env.CONNECTIONS ?? 32)
const duration = Number(process.env.DURATION ?? 6)
const rounds = Number(process.env.ROUNDS ?? 3)
const warmup = Number(process.env.WARMUP ?? 3)
const base = process.env.BASE

interface Server { name: string, child: ChildProcess, url: string, urls: string[] }

const children: ChildProcess[] = []

function start (name: string, tree: string, script: string, args: string[]): Promise<Server> {
  const child = fork(join(tree, 'bench', 'servers', script), args, { cwd: tree, execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  children.push(child)
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => { reject(new Error(`${name} exited with ${code}`)) })
    child.on('message', (message: { type: string, ports?: number[] }) => {
      if (message.type !== 'ready') return
      const urls = message.ports!.map((port) => `http://127.0.0.1:${port}`)
      resolve({ name, child, url: urls[0], urls })
    })
  })
}

async function load (url: string, seconds: number): Promise<{ requests: number, p50: number, p99: number, errors: number }> {
  const result = await runAutocannon(url + '/', connections, seconds, rate)
  return { ...result, errors: Object.values(result.errors).reduce((sum, count) => sum + count, 0) }
}

installCleanup()
const backends = await start('backends', rootDir, 'backends.ts', [JSON.stringify([{ id: '1' }, { id: '2' }, { id: '3' }])])
const urls = backends.urls
const servers: Server[] = [
  await start('http-proxy single', rootDir, 'http-proxy-single.ts', ['0', urls[0]]),
  await start('goload (this tree)', rootDir, 'goload.ts', ['0', 'least-busy', ...urls])
]
if (base !== undefined) servers.push(await start(`goload (${base})`, base, 'goload.ts', ['0', 'least-busy', ...urls]))

console.log(`${rate} req/s, ${connections} connections, ${duration} s per row, ${rounds} rounds; backends ${urls.join(' ')}`)
for (const server of servers) await load(server.url, warmup)
const totals = new Map(servers.map((server) => [server.name, { cpu: 0, requests: 0, p99: [] as number[], perRound: [] as number[], errors: 0 }]))
for (let round = 0; round < rounds; round++) {
  const order = round % 2 === 0 ? servers : [...servers].reverse()
  for (const server of order) {
    const before = cpuSeconds(server.child.pid!)
    const result = await load(server.url, duration)
    const cpu = cpuSeconds(server.child.pid!) - before
    const total = totals.get(server.name)!
    total.cpu += cpu
    total.requests += result.requests
    total.errors += result.errors
    total.p99.push(result.p99)
    total.perRound.push(cpu / result.requests * 1e6)
    console.log(`round ${round + 1}  ${server.name.padEnd(40)} ${(cpu / result.requests * 1e6).toFixed(1).padStart(7)} µs/request  p50 ${result.p50} ms  p99 ${result.p99} ms`)
  }
}
// A round disturbed by other work on the machine moves the total; the median of the rounds is the steadier figure.
console.log('\n| server | CPU per request (all rounds) | median of rounds | ÷ http-proxy single (median) | p99 per round | errors |\n|---|---:|---:|---:|---|---:|')
const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const middle = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
const reference = median(totals.get('http-proxy single')!.perRound)
for (const [name, total] of totals) {
  const perRequest = total.cpu / total.requests * 1e6
  const typical = median(total.perRound)
  console.log(`| ${name} | ${perRequest.toFixed(1)} µs | ${typical.toFixed(1)} µs | ${(typical / reference).toFixed(2)}× | ${total.p99.join(' / ')} ms | ${total.errors} |`)
}
for (const child of children) child.kill('SIGTERM')
