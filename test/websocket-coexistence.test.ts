// An app with its own WebSocket routes (@fastify/websocket) and goload proxying /api: goload takes the upgrades its
// routes match and hands every other one to @fastify/websocket's listener, so each upgrade is handled once.
import fastifyWebsocket from '@fastify/websocket'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import goload from '../lib/index.js'
import t from 'tap'
import type { Test } from 'tap'
import { connect, ResponseReader } from './helpers/raw.js'
import { pendingCounts, settled, startBalancer, type Balancer } from './helpers/servers.js'
import { nextMessage, openWs, startWsBackend } from './helpers/ws.js'

async function ownChat (app: FastifyInstance): Promise<void> {
  app.get('/chat', { websocket: true }, (socket) => {
    socket.on('message', (data) => { socket.send(`app ${data.toString()}`) })
  })
  app.get('/plain', async () => 'plain route')
}

async function check (t: Test, balancer: Balancer, backendSockets: () => number): Promise<void> {
  const chat = await openWs(t, balancer.url + '/chat')
  chat.send('hi')
  t.equal((await nextMessage(chat)).data.toString(), 'app hi', "the app's own WebSocket route answers")
  t.same(pendingCounts(balancer.app), [0], 'and goload counted nothing for it')

  const api = await openWs(t, balancer.url + '/api/feed')
  api.send('hi')
  t.equal((await nextMessage(api)).data.toString(), 'hi', 'goload tunnels /api to the backend')
  t.same(pendingCounts(balancer.app), [1])
  t.equal(backendSockets(), 1)

  // An upgrade neither takes: @fastify/websocket's listener has it, as it would without goload.
  const socket = await connect(t, balancer.port)
  const reader = new ResponseReader(socket)
  socket.write('GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  t.equal((await reader.next(5000)).status, 404)

  api.close()
  chat.close()
  await settled(balancer.app)
}

t.test('@fastify/websocket registered before goload', async (t) => {
  const backend = await startWsBackend(t, 'a')
  const balancer = await startBalancer(t, { backends: [backend.url], prefix: '/api' }, {}, async (app) => {
    await app.register(fastifyWebsocket)
    await app.register(ownChat)
  })
  await check(t, balancer, () => backend.sockets.length)
})

t.test('@fastify/websocket registered after goload', async (t) => {
  const backend = await startWsBackend(t, 'a')
  const app = Fastify()
  await app.register(goload, { backends: [backend.url], prefix: '/api' })
  await app.register(fastifyWebsocket)
  await app.register(ownChat)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  await check(t, { app, port, url: `http://127.0.0.1:${port}` }, () => backend.sockets.length)
})
