// Headers that never finish never reach goload: Node's HTTP server holds them. The app's Fastify options cut them:
// `connectionTimeout` (an idle socket) and `requestTimeout` (the whole request), as the README's Security section says.
import t from 'tap'
import { connect, deadline } from './helpers/raw.js'
import { startBackend, startBalancer } from './helpers/servers.js'

t.test('a client whose headers stall is cut by Fastify\'s connectionTimeout, and no backend hears of it', async (t) => {
  const backend = await startBackend(t)
  const { app, port } = await startBalancer(t, { backends: [backend.url] }, { connectionTimeout: 300 })
  const socket = await connect(t, port)
  const started = performance.now()
  socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ')
  await deadline(new Promise((resolve) => socket.on('close', resolve)), 5000, 'the stalled connection to be cut')
  t.ok(performance.now() - started >= 250, 'not before connectionTimeout')
  t.equal(backend.received, 0)
  t.same(app.goload.stats().backends.map((b) => b.pending), [0])
})
