// Upgrades that do not become a tunnel: refused by the backend, failed, timed out, turned off by the route, declined
// (h2c), or not goload's at all. Each takes the normal reply path; none leaves a count behind.
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo, Socket } from 'node:net'
import type { FastifyServerOptions } from 'fastify'
import t, { type Test } from 'tap'
import { WebSocketServer } from 'ws'
import { connect, ResponseReader } from './helpers/raw.js'
import { closeServer, deadUrl, echo, pendingCounts, settled, startBackend, startBalancer, startBlackhole, waitFor } from './helpers/servers.js'
import { TestPki } from './helpers/tls.js'
import { nextMessage, openWs, startWsBackend } from './helpers/ws.js'

const upgradeHead = (path: string, extra = '') =>
  `GET ${path} HTTP/1.1\r\nHost: balancer.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n${extra}\r\n`

/** A raw connection to the balancer that sent a WebSocket upgrade to `path`, and the answer to it. */
async function upgradeAnswer (t: Test, port: number, path = '/') {
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  socket.write(upgradeHead(path))
  return { socket, reader, response: await reader.next(5000) }
}

/** A backend that takes upgrades and never answers them. */
async function startSilent (t: Test): Promise<{ url: string, sockets: Socket[] }> {
  const sockets: Socket[] = []
  const silent = http.createServer()
  silent.on('upgrade', (_request, socket: Socket) => { sockets.push(socket) })
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    return closeServer(silent)
  })
  return { url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}`, sockets }
}

t.test('a backend that refuses the upgrade: its answer, body included, reaches the client, then the connection ends', async (t) => {
  // A plain HTTP server: without an 'upgrade' listener Node hands the request to 'request'.
  const backend = await startBackend(t, (request, response) => {
    response.writeHead(426, { 'content-type': 'text/plain', 'x-why': 'upgrade required elsewhere' })
    response.end('no upgrade here')
  })
  const balancer = await startBalancer(t, { backends: [backend.url] })
  const { reader, response } = await upgradeAnswer(t, balancer.port, '/x')
  t.equal(response.status, 426)
  t.equal(response.body.toString(), 'no upgrade here')
  t.same(response.headers['x-why'], ['upgrade required elsewhere'])
  t.same(response.headers.connection, ['close'])
  await reader.closes(5000)
  await settled(balancer.app)
  t.equal(balancer.app.goload.stats().backends[0].served, 1)
})

t.test('a backend that is down: the upgrade goes to another one', async (t) => {
  const dead = await deadUrl()
  const backend = await startWsBackend(t, 'a')
  const balancer = await startBalancer(t, { backends: [dead, backend.url], strategy: 'round-robin' })
  for (let i = 0; i < 2; i++) {
    const ws = await openWs(t, balancer.url + '/')
    ws.send('hi')
    t.equal((await nextMessage(ws)).data.toString(), 'hi')
  }
  const [down, up] = balancer.app.goload.stats().backends
  t.equal(down.failed + down.retried > 0, true, 'the dead backend was tried and the upgrade retried')
  t.equal(up.upgraded, 2)
  t.same(pendingCounts(balancer.app), [0, 2])
})

t.test('every backend down: 502 FST_GOLOAD_BAD_GATEWAY', async (t) => {
  const balancer = await startBalancer(t, { backends: [await deadUrl(), await deadUrl()] })
  const { reader, response } = await upgradeAnswer(t, balancer.port)
  t.equal(response.status, 502)
  t.match(JSON.parse(response.body.toString()), { code: 'FST_GOLOAD_BAD_GATEWAY' })
  await reader.closes(5000)
  await settled(balancer.app)
})

t.test('timeout bounds the handshake: a backend that never answers it gets 504', async (t) => {
  const silent = await startSilent(t)
  const balancer = await startBalancer(t, { backends: [silent.url], timeout: 200 })
  const { response } = await upgradeAnswer(t, balancer.port)
  t.equal(response.status, 504)
  t.match(JSON.parse(response.body.toString()), { code: 'FST_GOLOAD_GATEWAY_TIMEOUT' })
  t.equal(silent.sockets.length, 1)
  await settled(balancer.app)
})

t.test('a backend that cannot be reached within connectTimeout: 504', async (t) => {
  const balancer = await startBalancer(t, { backends: [await startBlackhole(t)], connectTimeout: 200, retries: 0 })
  t.equal((await upgradeAnswer(t, balancer.port)).response.status, 504)
  await settled(balancer.app)
})

t.test('a client that leaves during the handshake releases its count and stops the attempt', async (t) => {
  const silent = await startSilent(t)
  const balancer = await startBalancer(t, { backends: [silent.url] })
  const socket = await connect(t, balancer.port)
  socket.write(upgradeHead('/'))
  await waitFor(() => silent.sockets.length === 1, 'the upgrade to reach the backend')
  t.same(pendingCounts(balancer.app), [1])
  // The backend's side of a connection we end or destroy: it ends (the server allows half-open).
  const backendClosed = new Promise((resolve) => silent.sockets[0].once('end', resolve))
  socket.destroy()
  await settled(balancer.app)
  await backendClosed
  t.pass('the attempt was stopped')
})

t.test('websocket: false sends the request on without its Upgrade: the backend answers it as a plain request', async (t) => {
  const backend = await startWsBackend(t, 'a')
  let upgrades = 0
  backend.wss.on('headers', () => { upgrades++ })
  const balancer = await startBalancer(t, { backends: [backend.url], websocket: false })
  const { socket, reader, response } = await upgradeAnswer(t, balancer.port, '/x')
  t.equal(response.status, 200)
  t.equal(response.body.toString(), 'Hello from a')
  t.equal(upgrades, 0)
  t.equal(backend.requests, 1)
  // The connection goes on as a plain HTTP/1.1 one.
  socket.write('GET /y HTTP/1.1\r\nHost: balancer.test\r\n\r\n')
  t.equal((await reader.next(5000)).body.toString(), 'Hello from a')
  await settled(balancer.app)
})

t.test('an h2c upgrade offer on a POST is declined: the backend gets the body and its answer comes back', async (t) => {
  const bodies: string[] = []
  const backend = await startBackend(t, echo(bodies))
  const balancer = await startBalancer(t, { backends: [backend.url], prefix: '/api' }, {}, (app) => {
    app.post('/own', async (request) => `own ${String(request.body)}`)
  })
  const socket = await connect(t, balancer.port)
  const reader = new ResponseReader(socket)
  const h2c = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n'
  socket.write(`POST /api/x HTTP/1.1\r\nHost: balancer.test\r\n${h2c}Content-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello`)
  socket.write(' world')
  const proxied = await reader.next(5000)
  t.equal(proxied.status, 200)
  t.equal(proxied.body.toString(), 'POST hello world')
  t.same(bodies, ['hello world'])
  // Chunked, to the app's own route, on the same connection.
  socket.write(`POST /own HTTP/1.1\r\nHost: balancer.test\r\n${h2c}Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n`)
  const own = await reader.next(5000)
  t.equal(own.status, 200)
  t.equal(own.body.toString(), 'own abc')
  await settled(balancer.app)
})

t.test('an upgrade no goload route takes is served as the plain request it is: the app answers it', async (t) => {
  const backend = await startWsBackend(t, 'a')
  const balancer = await startBalancer(t, { backends: [backend.url], prefix: '/api' }, {}, (app) => {
    app.get('/own', async () => 'own route')
  })
  const { socket, reader, response: own } = await upgradeAnswer(t, balancer.port, '/own')
  t.equal(own.status, 200)
  t.equal(own.body.toString(), 'own route')
  socket.write(upgradeHead('/nowhere'))
  t.equal((await reader.next(5000)).status, 404)
  socket.write(upgradeHead('/api/../x'))
  t.equal((await reader.next(5000)).status, 400, 'a dot segment is refused as for any request')
  t.equal(backend.sockets.length, 0)
})

t.test('upgrades to an https backend, through an https balancer; h2c declined on it too', async (t) => {
  const pki = new TestPki()
  const ca = pki.ca('goload ws CA')
  const local = pki.server(ca, { dns: ['localhost'], ip: ['127.0.0.1'] })
  pki.close()
  const server = https.createServer({ ...local }, (request, response) => {
    request.resume()
    request.on('end', () => { response.end('tls hello') })
  })
  const wss = new WebSocketServer({ server })
  wss.on('connection', (socket) => { socket.on('message', (data) => { socket.send(`tls ${data.toString()}`) }) })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const client of wss.clients) client.terminate()
    await closeServer(server as unknown as http.Server)
  })
  const balancer = await startBalancer(t, { backends: [`https://127.0.0.1:${(server.address() as AddressInfo).port}`], tls: { ca: ca.cert } }, { https: { ...local } } as FastifyServerOptions)
  const url = balancer.url.replace('http:', 'https:')
  const { default: WebSocket } = await import('ws')
  const ws = new WebSocket(url.replace('https', 'wss'), { ca: ca.cert })
  t.teardown(() => { ws.terminate() })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send('hi')
  t.equal((await nextMessage(ws as never)).data.toString(), 'tls hi')

  const answer = await new Promise<string>((resolve, reject) => {
    const request = https.request(url + '/p', {
      method: 'POST',
      ca: ca.cert,
      agent: false,
      headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': 'AAMAAABkAAQCAAAAAAIAAAAA', 'content-length': 2 }
    }, (response) => {
      let body = ''
      response.on('data', (chunk) => { body += chunk })
      response.on('end', () => { resolve(body) })
    })
    request.on('error', reject)
    request.end('hi')
  })
  t.equal(answer, 'tls hello')
})
