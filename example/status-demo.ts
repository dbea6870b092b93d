// `npm run status-demo`: the example (example/goload.yaml: three backends, the balancer on :8080, the admin listener
// with the status page on 127.0.0.1:9090) with load running, so the page has something to show: open the address
// it prints and watch the pending bars move and the heap's next pick jump between backends.
// Loopback only and bounded: autocannon for DURATION seconds (default 300), or until Ctrl-C; then everything stops.
// Two backends answer in 5-20 ms and one in 40-120 ms, so least-busy visibly sends the slow one less.
// Env: DURATION (seconds), CONNECTIONS (default 16), PORT (the balancer's, default the file's 8080), ADMIN_PORT,
// BACKEND_PORTS=0 (backends on ports the system picks), GOLOAD_ADMIN_TOKEN (the page then asks for it).
import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import autocannon from 'autocannon'
import { loadConfig } from '../lib/config/load.js'
import { serve } from '../lib/cli/main.js'
import { startBackend, stopBackend, type Delay } from './backend.js'

const duration = Number(process.env.DURATION ?? 300)
const connections = Number(process.env.CONNECTIONS ?? 16)
const delays: Delay[] = [[5, 20], [5, 20], [40, 120]]

const config = await loadConfig(new URL('goload.yaml', import.meta.url).pathname)
const pool = config.pools.hello
const urls = (pool.backends ?? []).map((backend) => new URL(typeof backend === 'string' ? backend : backend.url))
const backends = await Promise.all(urls.map((url, index) => startBackend({
  id: index + 1,
  port: process.env.BACKEND_PORTS === '0' ? 0 : Number(url.port),
  host: url.hostname,
  delay: delays[index % delays.length]
})))
pool.backends = backends.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`)
if (process.env.PORT !== undefined) config.listeners[0].port = Number(process.env.PORT)
if (process.env.ADMIN_PORT !== undefined) config.admin!.port = Number(process.env.ADMIN_PORT)
if (process.env.GOLOAD_ADMIN_TOKEN) config.admin!.token = process.env.GOLOAD_ADMIN_TOKEN
// An access line a request would bury the page's address: warnings only.
config.log = { ...config.log, level: 'warn' }

// Ctrl-C stops the load first, then the balancer (serve() hears it through `signals`), then the backends.
const signals = new EventEmitter()
let load: autocannon.Instance | undefined
let loaded = Promise.resolve()
let stopping = false
const stop = () => {
  stopping = true
  load?.stop()
  signals.emit('SIGTERM', 'SIGTERM')
}
process.once('SIGINT', stop)
process.once('SIGTERM', stop)

const code = await serve(async () => config, 1, {
  signals,
  onListening: ([port], admin) => {
    if (stopping) { signals.emit('SIGTERM', 'SIGTERM'); return } // Ctrl-C came while it started
    console.log(`goload on http://127.0.0.1:${port}, ${backends.length} backends (two fast, one slow)`)
    console.log(`status page: ${admin}/${process.env.GOLOAD_ADMIN_TOKEN ? ' (it asks for GOLOAD_ADMIN_TOKEN)' : ''}`)
    console.log(`load: ${connections} connections for ${duration} s; Ctrl-C stops sooner`)
    loaded = new Promise((resolve) => {
      load = autocannon({ url: `http://127.0.0.1:${port}`, connections, duration }, (error, result) => {
        if (error) console.error(error)
        // After Ctrl-C, the requests it cut short would count as errors: only the total then.
        else if (stopping) console.log(`load stopped after ${result.requests.total} requests`)
        else console.log(`load done: ${result.requests.total} requests, ${result.non2xx} non-2xx, ${result.errors} errors`)
        if (!stopping) stop()
        resolve()
      })
    })
  }
})
await loaded
await Promise.all(backends.map(stopBackend))
process.exit(code)
