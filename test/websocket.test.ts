// WebSocket through the balancer: the backend's 101 opens a tunnel that carries bytes both ways unread, and the
// open socket is one pending request on its backend, released exactly once whichever side ends it.
import { randomBytes } from 'node:crypto'
import t, { type Test } from 'tap'
import type WebSocket from 'ws'
import { request } from './helpers/client.js'
import { pendingCounts, settled, startBalancer, waitFor } from './helpers/servers.js'
import { closed, nextMessage, openWs, startWsBackend } from './helpers/ws.js'

t.test('messages go both ways, text and binary, 1 MiB too, and a close code passes through', async (t) => {
  const backend = await startWsBackend(t, 'a')
  const balancer = await startBalancer(t, { backends: [backend.url] })
  const ws = await openWs(t, balancer.url + '/chat?room=1')
  t.same(pendingCounts(balancer.app), [1], 'the open socket is one pending request')
  t.equal(balancer.app.goload.stats().backends[0].upgraded, 1, 'stats() shows it as upgraded')

  ws.send('hello')
  const text = await nextMessage(ws)
  t.same({ data: text.data.toString(), isBinary: text.isBinary }, { data: 'hello', isBinary: false })
  const bytes = randomBytes(1024 * 1024)
  ws.send(bytes)
  const binary = await nextMessage(ws)
  t.ok(binary.isBinary, 'binary stays binary')
  t.ok(binary.data.equals(bytes), 'the 1 MiB message came back whole')

  const closing = closed(ws)
  ws.send('close:4000')
  t.same(await closing, { code: 4000, reason: 'bye' }, 'the backend close code and reason reach the client')
  await settled(balancer.app)
  t.equal(balancer.app.goload.stats().backends[0].upgraded, 0)
})

t.test('the backend gets the request target, Host and subprotocol as sent; the client gets its 101 headers', async (t) => {
  const backend = await startWsBackend(t, 'a', (protocols) => protocols.has('chat.v2') ? 'chat.v2' : false)
  let seen: { url?: string, host?: string, forwardedFor?: string } = {}
  backend.wss.on('headers', (headers, req) => {
    headers.push('X-Backend: a')
    seen = { url: req.url, host: req.headers.host, forwardedFor: req.headers['x-forwarded-for'] as string }
  })
  const balancer = await startBalancer(t, { backends: [backend.url], prefix: '/ws', rewritePrefix: '/' })
  const ws = await openWs(t, balancer.url + '/ws/room?x=%2F', ['chat.v1', 'chat.v2'])
  t.equal(ws.protocol, 'chat.v2', 'the subprotocol the backend chose')
  t.same(seen, { url: '/room?x=%2F', host: new URL(backend.url).host, forwardedFor: '127.0.0.1' })
  const upgrade = await new Promise<Record<string, string>>((resolve) => {
    const other = new (ws.constructor as typeof WebSocket)(balancer.url.replace('http', 'ws') + '/ws/x')
    other.on('upgrade', (response) => { other.once('open', () => { other.terminate() }); resolve(response.headers as Record<string, string>) })
  })
  t.equal(upgrade['x-backend'], 'a', 'the 101 headers are the backend\'s')
  t.equal(upgrade.upgrade, 'websocket')
})

/** One backend, a balancer, and a socket open through it: the client, and the backend side's close. */
async function oneSocket (t: Test) {
  const backend = await startWsBackend(t, 'a')
  const balancer = await startBalancer(t, { backends: [backend.url] })
  const client = await openWs(t, balancer.url + '/')
  await waitFor(() => backend.sockets.length === 1, 'the backend to see the socket')
  const backendClosed = new Promise((resolve) => backend.sockets[0].once('close', resolve))
  return { backend, balancer, client, backendClosed }
}

t.test('pending goes back to 0 after a client kill and after a backend kill', async (t) => {
  const { backend, balancer, client, backendClosed } = await oneSocket(t)
  t.same(pendingCounts(balancer.app), [1])
  client.terminate()
  await settled(balancer.app)
  await backendClosed
  t.pass('a killed client released its count and closed the backend side')

  const second = await openWs(t, balancer.url + '/')
  await waitFor(() => backend.sockets.length === 2, 'the backend to see the second socket')
  const clientClosed = closed(second)
  backend.sockets[1].terminate()
  t.equal((await clientClosed).code, 1006, 'the client saw its connection drop')
  await settled(balancer.app)
  t.equal(balancer.app.goload.stats().backends[0].upgraded, 0)
})

t.test('a client that goes half-open (end) releases the count and ends the backend side', async (t) => {
  const { balancer, client, backendClosed } = await oneSocket(t)
  const socket = (client as unknown as { _socket: import('node:net').Socket })._socket
  socket.end()
  await backendClosed
  await settled(balancer.app)
  t.pass('released')
})

t.test('3 sockets on 4 backends land on 3 of them, and the HTTP request goes to the one with no socket', async (t) => {
  const backends = await Promise.all(['a', 'b', 'c', 'd'].map((id) => startWsBackend(t, id)))
  const balancer = await startBalancer(t, { backends: backends.map((b) => b.url) })
  const sockets: WebSocket[] = []
  for (let i = 0; i < 3; i++) sockets.push(await openWs(t, balancer.url + '/'))
  const stats = balancer.app.goload.stats().backends
  t.same(stats.map((b) => b.pending).sort(), [0, 1, 1, 1], 'one socket on each of three backends')
  t.same(stats.map((b) => b.upgraded).sort(), [0, 1, 1, 1])
  const idle = stats.find((b) => b.pending === 0)!
  const idleBackend = backends.find((b) => b.url === idle.url)!
  t.equal(idleBackend.sockets.length, 0)
  const response = await request(balancer.url + '/')
  t.equal(idleBackend.requests, 1, 'the request went to the backend without a socket')
  t.equal(response.status, 200)
})

t.test('close() ends the open sockets once closeTimeout has passed', async (t) => {
  const backend = await startWsBackend(t, 'a')
  const balancer = await startBalancer(t, { backends: [backend.url], closeTimeout: 200 })
  const ws = await openWs(t, balancer.url + '/')
  const clientClosed = closed(ws)
  const started = Date.now()
  await balancer.app.close()
  const elapsed = Date.now() - started
  t.ok(elapsed >= 150 && elapsed < 5000, `close() took ${elapsed} ms: closeTimeout, then the sockets were ended`)
  t.equal((await clientClosed).code, 1006, 'the client connection was ended (no close frame without parsing)')
  await settled(balancer.app)
})

t.test('an open socket is not cut by the server idle timeouts', async (t) => {
  const backend = await startWsBackend(t, 'a')
  const balancer = await startBalancer(t, { backends: [backend.url] }, { connectionTimeout: 200, keepAliveTimeout: 100, requestTimeout: 200 })
  const ws = await openWs(t, balancer.url + '/')
  // Longer than each timeout, and than Node's check of requestTimeout (every connectionsCheckingInterval).
  await new Promise((resolve) => setTimeout(resolve, 1200))
  ws.send('still there')
  t.equal((await nextMessage(ws)).data.toString(), 'still there')
  t.same(pendingCounts(balancer.app), [1])
})
