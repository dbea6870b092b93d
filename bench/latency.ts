// `npm run bench:latency`: latency below saturation, the table an operator reads. On the fast pool, autocannon first
// finds nginx least_conn's saturation rate, then loads nginx, @fastify/http-proxy (one upstream) and goload at 25%, 50%
// and 75% of it (`overallRate`), and prints p50 / p99, the rate reached and each balancer's CPU per request.
// Env: DURATION seconds per cell (default 4), CONNECTIONS (default 64), WARMUP seconds per Node server (default 3),
// LEVELS (default 25,50,75: percents of nginx's saturation rate). Needs nginx (the reference rate is nginx's).
import { cpus } from 'node:os'
import {
  codeVersion, cpuSeconds, formatErrors, freePort, Group, have, installCleanup, runAutocannon, startNginxBackends, startNginxBalancer, type LoadResult
} from './harness.js'

const duration = Number(process.env.DURATION ?? 4)
const connections = Number(process.env.CONNECTIONS ?? 64)
const warmup = Number(process.env.WARMUP ?? 3)
const levels = (process.env.LEVELS ?? '25,50,75').split(',').map(Number)
if (!have('nginx')) {
  console.error('bench:latency needs nginx (apt-get install -y nginx): its saturation rate is the reference')
  process.exit(2)
}

installCleanup()
const group = new Group()
try {
  const backends = await startNginxBackends(group, 'nginx-backends-latency', 3)
  const port = await freePort()
  const nginx = await startNginxBalancer(group, 'nginx-lb-latency', [{ port, backends, policy: 'least_conn' }])
  const [single, goload] = await Promise.all([
    group.node('http-proxy-single.ts', ['0', backends[0]]),
    group.node('goload.ts', ['0', 'least-busy', ...backends], { label: 'goload-latency' })
  ])
  const rows = [
    { name: 'nginx least_conn', url: `http://127.0.0.1:${port}/`, pid: nginx.pid! },
    { name: 'http-proxy single (1 backend)', url: single.url + '/', pid: single.child.pid! },
    { name: 'goload least-busy', url: goload.url + '/', pid: goload.child.pid! }
  ]
  for (const row of rows.slice(1)) await runAutocannon(row.url, connections, warmup)
  const saturation = await runAutocannon(rows[0].url, connections, duration)

  console.log(`# fastify-goload bench:latency: ${new Date().toISOString()}, ${codeVersion().text}`)
  console.log(`${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores; node ${process.version}; autocannon -c ${connections}, ${duration} s per cell, in this process`)
  console.log(`nginx least_conn saturation (autocannon, no rate): ${saturation.rps.toFixed(0)} req/s, p50 ${saturation.p50} ms, p99 ${saturation.p99} ms\n`)
  console.log('| rate (of nginx saturation) | balancer | req/s reached | p50 | p99 | CPU/req | errors |')
  console.log('|---|---|---:|---:|---:|---:|---:|')
  for (const level of levels) {
    const rate = Math.round((saturation.rps * level) / 100)
    for (const row of rows) {
      const before = cpuSeconds(row.pid)
      const result: LoadResult = await runAutocannon(row.url, connections, duration, rate)
      const cpu = ((cpuSeconds(row.pid) - before) / result.requests) * 1e6
      console.log(`| ${level}% (${rate} req/s) | ${row.name} | ${result.rps.toFixed(0)} | ${result.p50} ms | ${result.p99} ms | ${cpu.toFixed(1)} µs | ${formatErrors(result.errors)} |`)
    }
  }
} finally {
  await group.close()
}
