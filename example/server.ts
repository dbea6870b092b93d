// `npm run example`: three backends and the balancer in one process. Try `curl localhost:8080` a few times.
import type { AddressInfo } from 'node:net'
import { startBackend, stopBackend } from './backend.js'
import { startBalancer } from './balancer.js'

// Port 0: the system picks free ports, so the backends never clash with anything already running.
const backends = await Promise.all([1, 2, 3].map((id) => startBackend({ id, port: 0, host: '127.0.0.1' })))
const backendUrls = backends.map((server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`)

const app = await startBalancer({
  backends: backendUrls,
  port: Number(process.env.PORT ?? 8080),
  // Fastify listens on every address 'localhost' resolves to (127.0.0.1 and ::1), so `curl localhost` works
  // whichever of the two curl tries first.
  host: process.env.HOST ?? 'localhost'
})

// The real port, which differs from PORT when PORT=0; the tests read it from this line.
const { port } = app.server.address() as AddressInfo
console.log(`goload balancing ${backends.length} backends on http://localhost:${port} — try: curl localhost:${port}`)

async function shutdown (): Promise<void> {
  // The balancer first, so no request is in flight to a backend that is going away.
  await app.close()
  await Promise.all(backends.map(stopBackend))
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { shutdown().then(() => process.exit(0), (error) => { console.error(error); process.exit(1) }) })
}
