// No connection within the connect timeout (the `connectTimeout` option, on goload's own timer): the backend
// cannot have seen the request, so it answers 504 FST_GOLOAD_GATEWAY_TIMEOUT when no other backend is left, and is
// retried on another backend whatever the method (a POST too, without retryNonIdempotent).
// The backend is a blackhole on 127.0.0.1 (see startBlackhole): a listening socket whose full accept queue drops
// every SYN, so the connection attempt hangs until undici gives up, as with a host that is down.
import t from 'tap'
import { request } from './helpers/client.js'
import { echo, settled, startBackend, startBalancer, startBlackhole } from './helpers/servers.js'

// undici's own default, and goload's, is 10 s.
const connectTimeout = 300

t.test('no connection within connectTimeout answers 504 FST_GOLOAD_GATEWAY_TIMEOUT', async (t) => {
  const blackhole = await startBlackhole(t)
  const { app, url } = await startBalancer(t, { backends: [{ url: blackhole, id: 'blackhole' }], connectTimeout, passiveHealth: false })

  const started = Date.now()
  const answer = await request(url + '/x')
  const elapsed = Date.now() - started
  t.equal(answer.status, 504)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_GATEWAY_TIMEOUT')
  t.ok(elapsed >= connectTimeout - 50, `not before the connect timeout (${elapsed} ms)`)
  // On a native timer (undici's own ticks about every 500 ms, so 300 ms took some 1000 ms): generous for a loaded
  // 2-core machine, where a timer can fire late by hundreds of ms; how close it comes is the bench's to say.
  t.ok(elapsed < connectTimeout + 1500, `answered soon after the connect timeout, not left hanging (${elapsed} ms)`)
  await settled(app)
  const [stats] = app.goload.stats().backends
  t.equal(stats.failed, 1, 'a failure of the backend')
  t.equal(stats.served, 0)
})

t.test('a POST that got no connection within connectTimeout is sent to another backend: it was not sent', async (t) => {
  const blackhole = await startBlackhole(t)
  const bodies: string[] = []
  const live = await startBackend(t, echo(bodies))
  // On a fresh pool the first backend given goes first; passive health off, so no ejection gets in the way.
  const { app, url } = await startBalancer(t, {
    backends: [{ url: blackhole, id: 'blackhole' }, { url: live.url, id: 'live' }],
    connectTimeout,
    passiveHealth: false
  })

  const answer = await request(url + '/orders', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'one order' })
  t.equal(answer.status, 200, 'answered by the other backend')
  t.equal(answer.body, 'POST one order', 'with the whole body')
  t.same(bodies, ['one order'], 'sent once, to the live backend')
  await settled(app)
  const [blackholeStats, liveStats] = app.goload.stats().backends
  t.equal(blackholeStats.failed, 1, 'the blackhole was tried first')
  t.equal(blackholeStats.retried, 1, 'and the request went on from it')
  t.equal(liveStats.served, 1)
})
