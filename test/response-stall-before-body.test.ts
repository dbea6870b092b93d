// A backend that sends its response headers and then nothing: no byte of the body has reached the client, so the
// stall is answered as a clean 504, without the backend's headers, and counted against the backend.
import t from 'tap'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer } from './helpers/servers.js'

t.test('headers, then a body that never comes: 504 FST_GOLOAD_GATEWAY_TIMEOUT with our headers only, failed 1', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-length': '100', 'set-cookie': 's=1', 'cache-control': 'public, max-age=86400' })
    res.flushHeaders()
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url], timeout: 300 })
  const answer = await request(url + '/stall')
  t.equal(answer.status, 504)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_GATEWAY_TIMEOUT')
  t.equal(answer.headers['set-cookie'], undefined)
  t.equal(answer.headers['cache-control'], undefined)
  await settled(app)
  t.equal(app.goload.stats().backends[0].failed, 1)
})
