import t from 'tap'
import { request } from './helpers/client.js'
import { capturedLogs } from './helpers/logs.js'
import { deadUrl, settled, startBackend, startBalancer } from './helpers/servers.js'

t.test('connection refused answers 502 FST_GOLOAD_BAD_GATEWAY, logged with the backend', async (t) => {
  const dead = await deadUrl()
  const logs = capturedLogs()
  const { app, url } = await startBalancer(t, { backends: [{ url: dead, id: 'dead-one' }] }, { logger: logs.logger })
  const answer = await request(url + '/x')
  t.equal(answer.status, 502)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_BAD_GATEWAY')
  t.notMatch(answer.body, dead, 'the backend address is not shown to the client')
  const entry = logs.lines.find((line) => line.backend === 'dead-one')
  t.ok(entry, 'a log entry names the backend')
  t.equal(entry?.code, 'ECONNREFUSED')
  t.notOk(entry?.err, 'no stack for an expected upstream failure')
  await settled(app)
  t.equal(app.goload.stats().backends[0].failed, 1)
})

t.test('a connection reset before the response answers 502', async (t) => {
  const backend = await startBackend(t, (req) => { req.socket.destroy() })
  const { app, url } = await startBalancer(t, { backends: [backend.url] })
  const answer = await request(url)
  t.equal(answer.status, 502)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_BAD_GATEWAY')
  await settled(app)
  t.equal(app.goload.stats().backends[0].failed, 1)
})

t.test('no response headers within timeout answers 504 FST_GOLOAD_GATEWAY_TIMEOUT', async (t) => {
  const backend = await startBackend(t, (req) => { req.resume() }) // never answers
  const logs = capturedLogs()
  const { app, url } = await startBalancer(t, { backends: [{ url: backend.url, id: 'hung' }], timeout: 200 }, { logger: logs.logger })
  const started = Date.now()
  const answer = await request(url)
  t.equal(answer.status, 504)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_GATEWAY_TIMEOUT')
  t.ok(Date.now() - started >= 150, 'not before the timeout')
  t.ok(logs.lines.some((line) => line.backend === 'hung'), 'logged with the backend')
  await settled(app)
  t.equal(app.goload.stats().backends[0].failed, 1)
})

t.test('an invalid status line from the backend answers 502', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.writeHead(600)
    res.end('nonsense')
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url] })
  const answer = await request(url)
  t.equal(answer.status, 502)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_BAD_GATEWAY')
  await settled(app)
  const [stats] = app.goload.stats().backends
  t.equal(stats.failed, 1)
  t.equal(stats.served, 0, 'an answer we could not pass on is not counted as served')
})
