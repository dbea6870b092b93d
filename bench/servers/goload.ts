// The balancer under test: fastify-goload on Fastify, as a user would set it up, plus GET /__stats (the pool's
// stats, so the bench can read how many requests each backend served).
// node --import tsx bench/servers/goload.ts <port> <strategy> [--metrics] <backend URL>...
// --metrics: the plugin's `metrics: true`, and the registry read every second, as a Prometheus scraping at a 1 s
// interval would (in this process, so its cost counts against the balancer's CPU as a real scrape's does).
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import goload, { type Strategy } from '../../lib/index.js'
import { backlog, onStop, portArg, ready } from './child.js'

const [port, strategy, ...rest] = process.argv.slice(2)
const metrics = rest[0] === '--metrics'
const backends = metrics ? rest.slice(1) : rest
const app = Fastify({ logger: false })
onStop(() => app.close())
await app.register(goload, { backends, strategy: strategy as Strategy, metrics })
if (metrics) {
  setInterval(() => { app.goload.metrics!.metrics().catch(() => {}) }, 1000).unref()
}
// A static route: Fastify prefers it to the proxy's wildcard, so it is answered here, never forwarded.
app.get('/__stats', async () => app.goload.stats())
await app.listen({ port: portArg(port), host: '127.0.0.1', backlog })
ready([(app.server.address() as AddressInfo).port])
