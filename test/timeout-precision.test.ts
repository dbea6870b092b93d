// `timeout` is the wait for response headers, on a timer of our own: undici's coarse timers answered a 1000 ms
// timeout after ~1,460 ms and a 300 ms one after ~1,000 ms. The margin here is generous for a loaded machine;
// it still tells a precise timer from undici's.
import t from 'tap'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer } from './helpers/servers.js'

for (const timeout of [300, 1000]) {
  t.test(`timeout: ${timeout} answers 504 about ${timeout} ms after the request was sent`, async (t) => {
    const backend = await startBackend(t, (req) => { req.resume() })
    const { app, url } = await startBalancer(t, { backends: [backend.url], timeout })
    const started = performance.now()
    const answer = await request(url + '/hang')
    const elapsed = performance.now() - started
    t.equal(answer.status, 504)
    t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_GATEWAY_TIMEOUT')
    t.ok(elapsed >= timeout - 5, `not before the timeout (${Math.round(elapsed)} ms)`)
    t.ok(elapsed < timeout + 250, `within 250 ms after it (${Math.round(elapsed)} ms)`)
    await settled(app)
  })
}
