// `timeout` is the wait for response headers, on a timer of our own: undici's coarse timers answered a 1000 ms
// timeout after ~1,460 ms and a 300 ms one after ~1,000 ms. The balancer runs in this process, so a plain timer of
// the same length started beside the request is as late as a loaded machine makes every timer here; the answer may be
// later than that timer only by the deadline sweep's step (a tenth of the timeout, at most 100 ms) and a margin (300 ms: a suite at 6 jobs on 2 cores made one 237 ms late),
// which still tells a precise timer from undici's.
import t from 'tap'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer } from './helpers/servers.js'

for (const timeout of [300, 1000]) {
  t.test(`timeout: ${timeout} answers 504 about ${timeout} ms after the request was sent`, async (t) => {
    const backend = await startBackend(t, (req) => { req.resume() })
    const { app, url } = await startBalancer(t, { backends: [backend.url], timeout })
    const started = performance.now()
    const reference = new Promise<number>((resolve) => { setTimeout(() => { resolve(performance.now() - started) }, timeout) })
    const answer = await request(url + '/hang')
    const elapsed = performance.now() - started
    const allowed = await reference + Math.min(100, timeout / 10) + 300
    t.equal(answer.status, 504)
    t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_GATEWAY_TIMEOUT')
    t.ok(elapsed >= timeout - 5, `not before the timeout (${Math.round(elapsed)} ms)`)
    t.ok(elapsed < allowed, `no later than a timer of ${timeout} ms in this process, give or take the sweep's step and 300 ms (${Math.round(elapsed)} ms, allowed ${Math.round(allowed)} ms)`)
    await settled(app)
  })
}
