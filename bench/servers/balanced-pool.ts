// Peer: @fastify/reply-from with `base` as an array, so undici's BalancedPool picks the upstream.
// node --import tsx bench/servers/balanced-pool.ts <port> <backend URL>...
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import replyFrom from '@fastify/reply-from'
import { backlog, onStop, portArg, ready } from './child.js'

const [port, ...bases] = process.argv.slice(2)
const app = Fastify({ logger: false })
onStop(() => app.close())
await app.register(replyFrom, { base: bases })
app.all('/*', (request, reply) => { reply.from(request.url) })
await app.listen({ port: portArg(port), host: '127.0.0.1', backlog })
ready([(app.server.address() as AddressInfo).port])
