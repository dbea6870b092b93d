// The balancer under test: fastify-goload on Fastify, as a user would set it up, plus GET /__stats (the pool's
// stats, so the bench can read how many requests each backend served).
// node --import tsx bench/servers/goload.ts <port> <strategy> <backend URL>...
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import goload, { type Strategy } from '../../lib/index.js'
import { backlog, onStop, portArg, ready } from './child.js'

const [port, strategy, ...backends] = process.argv.slice(2)
const app = Fastify({ logger: false })
onStop(() => app.close())
await app.register(goload, { backends, strategy: strategy as Strategy })
// A static route: Fastify prefers it to the proxy's wildcard, so it is answered here, never forwarded.
app.get('/__stats', async () => app.goload.stats())
await app.listen({ port: portArg(port), host: '127.0.0.1', backlog })
ready([(app.server.address() as AddressInfo).port])
