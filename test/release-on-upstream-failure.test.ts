import t from 'tap'
import { rawRequest, request } from './helpers/client.js'
import { deadUrl, pendingCounts, settled, startBackend, startBalancer } from './helpers/servers.js'

t.test('refused, reset and timed-out exchanges each release exactly once', async (t) => {
  const dead = await deadUrl()
  const reset = await startBackend(t, (req) => { req.socket.destroy() })
  const hung = await startBackend(t, (req) => { req.resume() })
  const { app: refusedApp, url: refusedUrl } = await startBalancer(t, { backends: [dead] })
  const { app: resetApp, url: resetUrl } = await startBalancer(t, { backends: [reset.url] })
  const { app: hungApp, url: hungUrl } = await startBalancer(t, { backends: [hung.url], timeout: 100 })

  const answers = await Promise.all([
    ...Array.from({ length: 5 }, () => request(refusedUrl)),
    ...Array.from({ length: 5 }, () => request(resetUrl)),
    ...Array.from({ length: 5 }, () => request(hungUrl))
  ])
  t.same(answers.map((a) => a.status), [...new Array(10).fill(502), ...new Array(5).fill(504)])
  for (const app of [refusedApp, resetApp, hungApp]) {
    await settled(app)
    t.same(pendingCounts(app), [0])
    t.equal(app.goload.stats().backends[0].failed, 5)
  }
})

t.test('a backend reset in the middle of its response releases once; the client sees the cut', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-length': '100000' })
    res.write(Buffer.alloc(1000), () => { res.socket?.destroy() })
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url] })
  await t.rejects(request(url), 'the truncated response errors at the client')
  await settled(app)
  t.same(pendingCounts(app), [0])
})

t.test('a body timeout in the middle of the response releases once', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-length': '100000' })
    res.write(Buffer.alloc(1000)) // then stalls
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url], timeout: 100 })
  await t.rejects(request(url), 'the stalled response is cut at the client')
  await settled(app)
  t.same(pendingCounts(app), [0])
})

t.test('a request path reply-from refuses (dot segments) is answered and released', async (t) => {
  const backend = await startBackend(t)
  const { app, port } = await startBalancer(t, { backends: [backend.url] })
  const answer = await rawRequest(port, 'GET /a/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.match(answer, /^HTTP\/1\.1 400 /)
  t.equal(backend.received, 0, 'nothing reached the backend')
  await settled(app)
  t.same(pendingCounts(app), [0])
})
