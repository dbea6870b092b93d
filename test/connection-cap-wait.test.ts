// With a `connections` cap, a request may wait inside undici for a free connection. That wait counts in `timeout`,
// so no request waits without bound behind slow ones: it is answered 504 like any other that gets no headers.
import t from 'tap'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

t.test('connections: 1 held by a slow request: the next one is answered 504 after timeout, not held without bound', async (t) => {
  // The first request streams its answer a byte every 50 ms: its connection stays busy, and it never times out.
  const held: Array<() => void> = []
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.writeHead(200)
    const ticker = setInterval(() => res.write('.'), 50)
    held.push(() => { clearInterval(ticker); res.end('done') })
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url], connections: 1, timeout: 500 })
  const first = request(url + '/first')
  await waitFor(() => held.length === 1, 'the first request at the backend')
  const started = performance.now()
  const second = await request(url + '/second')
  const elapsed = performance.now() - started
  t.equal(second.status, 504)
  t.equal(JSON.parse(second.body).code, 'FST_GOLOAD_GATEWAY_TIMEOUT')
  t.ok(elapsed < 3000, `answered within seconds (${Math.round(elapsed)} ms)`)
  t.equal(backend.received, 1, 'the second never reached the backend: it waited for the connection')
  held[0]()
  t.equal((await first).status, 200, 'the first, busy all along, ends well')
  await settled(app)
})
