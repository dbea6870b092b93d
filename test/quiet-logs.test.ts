// What an operator reads: one warn line per backend failure, naming the backend, the code and the cause, without a
// stack; nothing above info for a client that leaves; ejections and returns once each; logLevel honoured.
import net from 'node:net'
import Fastify from 'fastify'
import t from 'tap'
import goload from '../lib/index.js'
import { request } from './helpers/client.js'
import { capturedLogs } from './helpers/logs.js'
import { deadline } from './helpers/raw.js'
import { deadUrl, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

t.test('one 502 writes one warn line, naming the backend, the code and the cause, and no stack anywhere', async (t) => {
  const dead = await deadUrl()
  const logs = capturedLogs('info')
  const { app, url } = await startBalancer(t, { backends: [{ url: dead, id: 'dead-one' }], retries: 0 }, { logger: logs.logger })
  const answer = await request(url + '/x')
  t.equal(answer.status, 502)
  await settled(app)
  const warnings = logs.warnings()
  t.equal(warnings.length, 1, `one warning, got ${JSON.stringify(warnings)}`)
  t.equal(warnings[0].backend, 'dead-one')
  t.equal(warnings[0].code, 'ECONNREFUSED')
  t.type(warnings[0].cause, 'string')
  t.notOk(JSON.stringify(logs.lines).includes('"stack"'), 'no stack in any line')
  t.ok(JSON.stringify(warnings[0]).length < 400, 'a short line')
})

t.test('a client that leaves before the answer is not a warning', async (t) => {
  const backend = await startBackend(t, (req) => { req.resume() })
  const logs = capturedLogs('info')
  const { app, port } = await startBalancer(t, { backends: [backend.url] }, { logger: logs.logger })
  const socket = net.connect(port, '127.0.0.1')
  socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n')
  await waitFor(() => backend.received === 1, 'the backend to get the request')
  socket.destroy()
  await settled(app)
  await waitFor(() => backend.active === 0, 'the upstream request to be aborted')
  t.same(logs.warnings(), [], 'no warning or error')
  t.equal(app.goload.stats().backends[0].failed, 0)
})

t.test('logLevel on the registration applies to the proxied requests, not to the app\'s own routes', async (t) => {
  const dead = await deadUrl()
  const logs = capturedLogs('info')
  const app = Fastify({ logger: logs.logger })
  app.get('/own', async () => 'own')
  await app.register(goload, { prefix: '/api', backends: [dead], retries: 0, logLevel: 'error' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const url = `http://127.0.0.1:${(app.server.address() as net.AddressInfo).port}`
  t.equal((await request(url + '/api/x')).status, 502)
  t.equal((await request(url + '/own')).status, 200)
  t.same(logs.warnings(), [], 'the backend failure is below the route\'s level')
  t.ok(logs.lines.some((line) => line.req?.url === '/own'), 'the app\'s own routes log as before')
  t.notOk(logs.lines.some((line) => line.req?.url === '/api/x'), 'the proxied request logs nothing at info')
})

t.test('an ejection is logged once at warn, its end once at info', async (t) => {
  const dead = await deadUrl()
  const alive = await startBackend(t)
  const logs = capturedLogs('info')
  const { app, url } = await startBalancer(t, {
    backends: [{ url: dead, id: 'dead' }, { url: alive.url, id: 'alive' }],
    passiveHealth: { maxFails: 1, ejectFor: 200 }
  }, { logger: logs.logger, disableRequestLogging: true })
  t.equal((await request(url + '/')).status, 200, 'retried on the live backend')
  await waitFor(() => logs.lines.some((line) => line.msg === 'goload: backend back in rotation'), 'the return to be logged', 5000)
  const ejected = logs.lines.filter((line) => line.msg === 'goload: backend ejected')
  const back = logs.lines.filter((line) => line.msg === 'goload: backend back in rotation')
  t.equal(ejected.length, 1)
  t.equal(ejected[0].level, 40)
  t.equal(ejected[0].backend, 'dead')
  t.equal(back.length, 1)
  t.equal(back[0].level, 30)
  t.equal(back[0].backend, 'dead')
  await settled(app)
})

t.test('a response that stalls after its headers: the client is cut, the backend counted as failed and named', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-length': '100' })
    res.write('x'.repeat(10))
    // and nothing more
  })
  const logs = capturedLogs('info')
  const { app, port } = await startBalancer(t, { backends: [{ url: backend.url, id: 'staller' }], timeout: 300 }, { logger: logs.logger })
  const socket = net.connect(port, '127.0.0.1')
  socket.write('GET /stall HTTP/1.1\r\nHost: x\r\n\r\n')
  let received = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { received += chunk })
  await deadline(new Promise((resolve) => socket.on('close', resolve)), 10_000, 'the balancer to cut the connection')
  t.match(received, /^HTTP\/1\.1 200 /, 'the status line had gone out')
  t.ok(received.endsWith('x'.repeat(10)), 'then the connection was cut after the 10 bytes')
  await settled(app)
  t.equal(app.goload.stats().backends[0].failed, 1)
  const named = logs.warnings().filter((line) => line.backend === 'staller')
  t.equal(named.length, 1, 'one warning names the backend')
  t.equal(named[0]?.code, 'UND_ERR_BODY_TIMEOUT')
  t.equal(logs.warnings().length, 1, 'and no other warning (Fastify\'s own, with a stack)')
})
