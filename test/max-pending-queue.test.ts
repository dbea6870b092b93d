// maxPending, ported from nginx-tests upstream_max_conns.t ('single': one server with max_conns=3 and 4 requests in
// parallel, only 3 reach it). nginx answers the 4th with 502 at once; goload, like HAProxy's maxconn, keeps it in
// the pool's queue and sends it as soon as one of the 3 ends. The backend holds each request until the test lets it
// answer, so what is in flight at each moment is decided by the test, not by timing.
import type http from 'node:http'
import t from 'tap'
import { rawRequest, request } from './helpers/client.js'
import { pendingCounts, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

/** A backend that keeps every request waiting until the test answers it: `held` in the order they came. */
async function startHoldingBackend (t: Parameters<typeof startBackend>[0]) {
  const held: Array<{ path: string, res: http.ServerResponse }> = []
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    held.push({ path: req.url ?? '', res })
  })
  return { backend, held }
}

t.test('maxPending: 3 with one backend: 3 at once, the 4th waits in the queue and is served once one ends', async (t) => {
  const { backend, held } = await startHoldingBackend(t)
  const { app, url } = await startBalancer(t, { backends: [backend.url], maxPending: 3 })

  const answers = [1, 2, 3, 4].map((i) => request(`${url}/slow/${i}`))
  await waitFor(() => held.length === 3 && app.goload.stats().queued === 1, '3 requests at the backend and 1 queued')
  t.equal(backend.active, 3, 'the backend has 3 requests')
  t.same(pendingCounts(app), [3], 'the pool counts 3 in flight')
  t.equal(app.goload.stats().queued, 1, 'the 4th waits in the queue')

  held[0].res.end('first')
  await waitFor(() => held.length === 4, 'the queued request to reach the backend')
  t.equal(app.goload.stats().queued, 0, 'the queue is empty again')
  t.equal(backend.active, 3)

  for (const { res } of held.slice(1)) res.end('ok')
  const statuses = (await Promise.all(answers)).map((a) => a.status)
  t.same(statuses, [200, 200, 200, 200], 'all answered 200')
  await settled(app)
  t.equal(backend.received, 4)
  t.equal(backend.maxActive, 3, 'never more than 3 at once')
  t.equal(app.goload.stats().backends[0].served, 4)
  t.equal(app.goload.stats().backends[0].failed, 0)
})

t.test('the queue is first in, first out', async (t) => {
  const { backend, held } = await startHoldingBackend(t)
  const { app, url } = await startBalancer(t, { backends: [backend.url], maxPending: 1 })

  const answers = [request(`${url}/first`)]
  await waitFor(() => held.length === 1, 'the first request at the backend')
  for (const [index, path] of ['/second', '/third', '/fourth'].entries()) {
    answers.push(request(url + path))
    await waitFor(() => app.goload.stats().queued === index + 1, `${path} to be queued`)
  }
  for (let i = 0; i < 4; i++) {
    await waitFor(() => held.length === i + 1, `request ${i + 1} at the backend`)
    t.equal(backend.active, 1, 'one at a time')
    held[i].res.end(held[i].path)
  }
  t.same(held.map((h) => h.path), ['/first', '/second', '/third', '/fourth'], 'sent in the order they came')
  t.same((await Promise.all(answers)).map((a) => a.body), ['/first', '/second', '/third', '/fourth'])
  await settled(app)
  t.equal(backend.maxActive, 1)
})

t.test('many parallel requests to a slow backend with maxPending: 3 never put more than 3 on it', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    setTimeout(() => res.end('slow'), 20)
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url], maxPending: 3 })
  const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => request(`${url}/p/${i}`)))
  t.same(answers.map((a) => a.status), new Array(12).fill(200))
  await settled(app)
  t.equal(backend.received, 12)
  t.ok(backend.maxActive <= 3, `at most 3 at once (saw ${backend.maxActive})`)
  t.equal(app.goload.stats().queued, 0)
})

t.test('a path with a dot segment is refused 400 at once, even with every backend busy: it takes no place in the queue', async (t) => {
  const { backend, held } = await startHoldingBackend(t)
  const { app, url, port } = await startBalancer(t, { backends: [backend.url], maxPending: 1 })

  const first = request(url + '/first')
  await waitFor(() => held.length === 1, 'the first request at the backend')
  const refused = await rawRequest(port, 'GET /a/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.match(refused, /^HTTP\/1\.1 400 /, 'answered 400 without waiting')
  t.match(refused, /FST_GOLOAD_BAD_REQUEST_TARGET/)
  t.equal(app.goload.stats().queued, 0, 'it never queued')
  held[0].res.end('first')
  t.equal((await first).status, 200)
  await settled(app)
  t.equal(backend.received, 1, 'the refused request reached no backend')
  t.equal(app.goload.stats().backends[0].failed, 0)
})
