// Fail open: when health has taken every backend out, requests still go to them, the least busy first, rather than
// all be refused (Envoy's panic threshold, nginx when every server is marked down).
import type http from 'node:http'
import t from 'tap'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

t.test('every backend unhealthy: requests still go to them, the least busy first', async (t) => {
  const held: http.ServerResponse[] = []
  const served: string[] = []
  // Every backend fails its health check, holds /hold until the test lets it go, and answers anything else.
  const backends = await Promise.all(['a', 'b', 'c'].map((id) => startBackend(t, (req, res) => {
    req.resume()
    if (req.url === '/health') {
      res.statusCode = 503
      res.end()
    } else if (req.url === '/hold') {
      held.push(res)
    } else {
      served.push(id)
      res.end(id)
    }
  })))
  const { app, url } = await startBalancer(t, {
    backends: backends.map((backend, i) => ({ url: backend.url, id: ['a', 'b', 'c'][i] })),
    healthCheck: { path: '/health', interval: 50, unhealthyAfter: 1 }
  })
  t.teardown(() => { for (const res of held) res.end() })
  await waitFor(() => app.goload.stats().backends.every((b) => !b.healthy), 'every backend to fail its health check')

  // Two requests held on two backends: the third backend is the only idle one.
  const holds = [request(url + '/hold'), request(url + '/hold')]
  await waitFor(() => held.length === 2, 'both held requests to reach a backend')
  const pending = () => app.goload.stats().backends.map((b) => b.pending)
  t.same(pending().sort(), [0, 1, 1], 'the two held requests went to two different backends')
  const idle = app.goload.stats().backends.find((b) => b.pending === 0)!.id

  for (let i = 0; i < 4; i++) {
    const answer = await request(url + '/')
    t.equal(answer.status, 200, `request ${i + 1} answered although every backend is unhealthy`)
    t.equal(answer.body, idle, 'by the least busy backend')
    await waitFor(() => pending().reduce((a, b) => a + b, 0) === 2, 'the request to be released')
  }
  t.same(served, [idle, idle, idle, idle])

  for (const res of held) res.end('held')
  for (const answer of await Promise.all(holds)) t.equal(answer.status, 200, 'the held requests are answered')
  await settled(app)
  t.ok(app.goload.stats().backends.every((b) => !b.healthy), 'still unhealthy: the requests went out failing open')
})
