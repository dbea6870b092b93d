// Load shedding, ported from Envoy's circuit_breakers_integration_test: once the pending limit and the queue are
// full, further requests are refused at once (Envoy's 503 with x-envoy-overloaded; here FST_GOLOAD_QUEUE_FULL with
// Retry-After), and a refusal the balancer makes itself is never held against a backend: passive health runs with
// maxFails: 1, so a single failure counted would eject. The same goes for a request that waited too long in the
// queue, and one whose client left while it waited never reaches a backend.
import type http from 'node:http'
import net from 'node:net'
import type { Test } from 'tap'
import t from 'tap'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

/** A backend that keeps every request waiting until the test answers it. */
async function startHoldingBackend (t: Test) {
  const held: http.ServerResponse[] = []
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    held.push(res)
  })
  return { backend, held }
}

const strictHealth = { maxFails: 1, window: 60_000, ejectFor: 60_000 }

t.test('maxPending 1 and a queue of 1: a third request is shed at once with 503 QUEUE_FULL and Retry-After', async (t) => {
  const { backend, held } = await startHoldingBackend(t)
  const { app, url } = await startBalancer(t, {
    backends: [backend.url],
    maxPending: 1,
    queue: { max: 1, timeout: 5000 },
    passiveHealth: strictHealth
  })

  const first = request(url + '/1')
  await waitFor(() => held.length === 1, 'the first request at the backend')
  const second = request(url + '/2')
  await waitFor(() => app.goload.stats().queued === 1, 'the second request to be queued')

  const started = Date.now()
  const shed = await request(url + '/3')
  t.equal(shed.status, 503)
  t.equal(JSON.parse(shed.body).code, 'FST_GOLOAD_QUEUE_FULL')
  t.equal(shed.headers['retry-after'], '5', 'Retry-After: the queue timeout, in seconds')
  t.ok(Date.now() - started < 2500, 'at once, not after waiting for the queue timeout')
  t.equal(backend.received, 1, 'the shed request reached no backend')
  t.equal(app.goload.stats().queued, 1, 'the queued request is still waiting')

  held[0].end('one')
  await waitFor(() => held.length === 2, 'the queued request at the backend')
  held[1].end('two')
  t.same([(await first).status, (await second).status], [200, 200], 'the other two are served')

  await settled(app)
  const [stats] = app.goload.stats().backends
  t.equal(stats.failed, 0, 'shedding is no backend failure')
  t.equal(stats.ejectedUntil, null, 'and ejects nothing')
  t.equal(stats.served, 2)
  t.equal(backend.received, 2)
})

t.test('a request queued longer than queue.timeout gets 503 QUEUE_TIMEOUT with Retry-After, no failure counted', async (t) => {
  const { backend, held } = await startHoldingBackend(t)
  const { app, url } = await startBalancer(t, {
    backends: [backend.url],
    maxPending: 1,
    queue: { max: 10, timeout: 200 },
    passiveHealth: strictHealth
  })

  const first = request(url + '/busy')
  await waitFor(() => held.length === 1, 'the first request at the backend')
  const started = Date.now()
  const waited = await request(url + '/waits')
  t.equal(waited.status, 503)
  t.equal(JSON.parse(waited.body).code, 'FST_GOLOAD_QUEUE_TIMEOUT')
  t.equal(waited.headers['retry-after'], '1', 'Retry-After: at least one second')
  t.ok(Date.now() - started >= 150, 'after waiting for the queue timeout')
  t.equal(app.goload.stats().queued, 0, 'it left the queue')
  t.equal(backend.received, 1, 'it never reached the backend')

  held[0].end('done')
  t.equal((await first).status, 200)
  await settled(app)
  const [stats] = app.goload.stats().backends
  t.equal(stats.failed, 0, 'a queue timeout is no backend failure')
  t.equal(stats.ejectedUntil, null)

  // The backend is free again: a new request goes straight through.
  const next = request(url + '/next')
  await waitFor(() => held.length === 2, 'the next request at the backend')
  held[1].end('next')
  t.equal((await next).status, 200)
  await settled(app)
})

t.test('a queued request whose client disconnects leaves the queue and never reaches the backend', async (t) => {
  const { backend, held } = await startHoldingBackend(t)
  const { app, url, port } = await startBalancer(t, {
    backends: [backend.url],
    maxPending: 1,
    queue: { max: 10, timeout: 60_000 },
    passiveHealth: strictHealth
  })

  const first = request(url + '/busy')
  await waitFor(() => held.length === 1, 'the first request at the backend')
  const socket = net.connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write('GET /gone HTTP/1.1\r\nHost: x\r\n\r\n')
  await waitFor(() => app.goload.stats().queued === 1, 'the second request to be queued')
  socket.destroy()
  await waitFor(() => app.goload.stats().queued === 0, 'the abandoned request to leave the queue')

  held[0].end('done')
  t.equal((await first).status, 200)
  await settled(app)
  // Anything the abandoned request could have been given would have gone out when the first one ended.
  const next = request(url + '/next')
  await waitFor(() => held.length === 2, 'the next request at the backend')
  held[1].end('next')
  t.equal((await next).status, 200)
  await settled(app)
  t.equal(backend.received, 2, 'the abandoned request never reached the backend')
  const [stats] = app.goload.stats().backends
  t.equal(stats.failed, 0)
  t.equal(stats.served, 2)
  t.equal(stats.ejectedUntil, null)
})
