// Peer: the least-busy balancer a user would write by hand on reply-from: a linear scan of in-flight counts,
// decremented when the response closes (as in shared/anchors/peers/naive-least.mjs).
// node --import tsx bench/servers/naive-least.ts <port> <backend URL>...
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import replyFrom from '@fastify/reply-from'
import { backlog, onStop, portArg, ready } from './child.js'

const [port, ...bases] = process.argv.slice(2)
const pool = bases.map((url) => ({ url, pending: 0 }))
const app = Fastify({ logger: false })
onStop(() => app.close())
await app.register(replyFrom, {})
app.all('/*', (request, reply) => {
  let worker = pool[0]
  for (const candidate of pool) if (candidate.pending < worker.pending) worker = candidate
  worker.pending++
  reply.raw.once('close', () => { worker.pending-- })
  reply.from(worker.url + request.url)
})
await app.listen({ port: portArg(port), host: '127.0.0.1', backlog })
ready([(app.server.address() as AddressInfo).port])
