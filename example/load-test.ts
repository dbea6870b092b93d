// `npm run load-test`: a bounded load test on loopback. Three in-process backends, one of them slow, behind the
// balancer; autocannon drives it for DURATION seconds, then the share each backend served shows the strategy at work.
// Env: DURATION (seconds, default 10), CONNECTIONS (default 32), STRATEGY ('least-busy' default, or 'round-robin').
// TARGET=http://localhost:8080 loads a balancer already running instead (`npm run example`, to watch its status
// page move): loopback only, and no backends of its own.
import type { AddressInfo } from 'node:net'
import autocannon from 'autocannon'
import Fastify from 'fastify'
import goload, { type Strategy } from '../lib/index.js'
import { startBackend, stopBackend, type Delay } from './backend.js'

const duration = Number(process.env.DURATION ?? 10)
const connections = Number(process.env.CONNECTIONS ?? 32)
const strategy = (process.env.STRATEGY || 'least-busy') as Strategy
const target = process.env.TARGET

if (target !== undefined) {
  // A load test, not a load generator: it may only ever send to this machine.
  const { hostname } = new URL(target)
  if (!['localhost', '127.0.0.1', '[::1]'].includes(hostname)) {
    console.error(`TARGET must be on loopback (localhost, 127.0.0.1, [::1]), got ${target}`)
    process.exit(1)
  }
  console.log(`load test: ${connections} connections for ${duration} s against ${target}`)
  const result = await autocannon({ url: target, connections, duration })
  const failed = report(result)
  process.exit(failed ? 1 : 0)
}

// Two fast backends and one 20 times slower: least-busy should send the slow one far less than a third.
const delays: Record<string, Delay> = { 1: [1, 3], 2: [1, 3], 3: [30, 60] }
const ids = Object.keys(delays)

const backends = await Promise.all(ids.map((id) => startBackend({ id, port: 0, host: '127.0.0.1', delay: delays[id] })))
const backendUrls = backends.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
// No logger: a log line per request would cost more than the balancing being measured.
const app = Fastify({ logger: false })
await app.register(goload, { backends: backendUrls, strategy })
await app.listen({ port: 0, host: '127.0.0.1' })
const { port } = app.server.address() as AddressInfo

console.log(`load test: ${strategy}, ${connections} connections for ${duration} s against http://127.0.0.1:${port}`)
const result = await autocannon({ url: `http://127.0.0.1:${port}`, connections, duration })
const failed = report(result)

// The balancer's own count: responses each backend started to send back.
const stats = app.goload.stats().backends
const servedTotal = stats.reduce((sum, backend) => sum + backend.served, 0)
console.log('\nbackend  delay (ms)  served   share')
stats.forEach((backend, index) => {
  const delay = delays[ids[index]]
  const delayText = typeof delay === 'number' ? String(delay) : delay.join('-')
  const share = servedTotal === 0 ? 0 : (100 * backend.served) / servedTotal
  console.log(`${ids[index].padEnd(7)}  ${delayText.padEnd(10)}  ${String(backend.served).padStart(6)}  ${share.toFixed(1).padStart(5)}%`)
})

await app.close()
await Promise.all(backends.map(stopBackend))
process.exit(failed ? 1 : 0)

/** Prints what autocannon saw; true when it saw errors or non-2xx answers. */
function report (result: autocannon.Result): boolean {
  const { latency } = result
  console.log(`req/s      ${result.requests.average.toFixed(1)} (average), ${result.requests.total} requests in total`)
  console.log(`latency    p50 ${latency.p50} ms, p90 ${latency.p90} ms, p99 ${latency.p99} ms, max ${latency.max} ms`)
  console.log(`non-2xx    ${result.non2xx}`)
  console.log(`errors     ${result.errors} (of which timeouts ${result.timeouts})`)
  const failed = result.errors > 0 || result.non2xx > 0
  if (failed) console.error('\nFAILED: autocannon saw errors or non-2xx responses')
  return failed
}
