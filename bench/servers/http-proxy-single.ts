// Peer: @fastify/http-proxy to one upstream, the cost of reply-from alone with no balancing.
// node --import tsx bench/servers/http-proxy-single.ts <port> <upstream URL> [--websocket]
// --websocket: the plugin's `websocket: true`, so it tunnels WebSockets too (bench:memory).
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import proxy from '@fastify/http-proxy'
import { backlog, onStop, portArg, ready } from './child.js'

const [port, upstream, flag] = process.argv.slice(2)
const app = Fastify({ logger: false })
onStop(() => app.close())
await app.register(proxy, { upstream, websocket: flag === '--websocket' })
await app.listen({ port: portArg(port), host: '127.0.0.1', backlog })
ready([(app.server.address() as AddressInfo).port])
