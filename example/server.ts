// `npm run example`: the three backends example/goload.yaml names (127.0.0.1:3001-3003), and the goload command
// serving that file on :8080. Try `curl localhost:8080` a few times.
// The status page and admin API are on 127.0.0.1:9090 (the file's admin block).
// PORT overrides the listener's port, ADMIN_PORT the admin's; BACKEND_PORTS=0 starts the backends on ports the system picks (the tests do
// both, so they never clash with anything already running). Otherwise the file is run as it is written.
import type { AddressInfo } from 'node:net'
import { loadConfig } from '../lib/config/load.js'
import { serve } from '../lib/cli/main.js'
import { startBackend, stopBackend } from './backend.js'

const file = new URL('goload.yaml', import.meta.url).pathname
const config = await loadConfig(file)
const pool = config.pools.hello
const urls = (pool.backends ?? []).map((backend) => new URL(typeof backend === 'string' ? backend : backend.url))

const backends = await Promise.all(urls.map((url, index) => startBackend({
  id: index + 1,
  port: process.env.BACKEND_PORTS === '0' ? 0 : Number(url.port),
  host: url.hostname
})))
pool.backends = (pool.backends ?? []).map((backend, index) => {
  const url = `http://127.0.0.1:${(backends[index].address() as AddressInfo).port}`
  return typeof backend === 'string' ? url : { ...backend, url }
})
if (process.env.PORT !== undefined) config.listeners[0].port = Number(process.env.PORT)
if (process.env.ADMIN_PORT !== undefined) config.admin!.port = Number(process.env.ADMIN_PORT)

// What `goload --config example/goload.yaml` runs, until SIGTERM or Ctrl-C; then the backends stop too.
const code = await serve(async () => config, 1, {
  // Development only: pino-pretty (a devDependency) prints each log line readably, an access line as
  // `INFO: goload: access GET / → 200 in 2.1 ms {"goload":{"pool":"hello","backend":…}}`; goload itself logs JSON.
  logTransport: {
    target: 'pino-pretty',
    options: {
      singleLine: true,
      translateTime: 'HH:MM:ss.l',
      ignore: 'pid,hostname,reqId,req,res,responseTime',
      messageFormat: '{msg}{if req.method} {req.method} {req.url}{end}{if res.statusCode} → {res.statusCode}{end}{if responseTime} in {responseTime} ms{end}'
    }
  },
  // The real port, which differs from the file's when PORT=0; the tests read it from this line.
  onListening: ([port], admin) => {
    console.log(`goload balancing ${backends.length} backends on http://localhost:${port} — try: curl localhost:${port}`)
    console.log(`status page: ${admin} — watch it under load: TARGET=http://localhost:${port} npm run load-test`)
  }
})
await Promise.all(backends.map(stopBackend))
process.exit(code)
