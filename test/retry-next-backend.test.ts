// A port of nginx-tests proxy_next_upstream.t to goload's retries: a request that fails at one backend before any
// answer (here: connection refused) goes on to another one, never back to one it already tried, up to `retries`
// more times; a response timeout (504) is not retried, since the backend may still be working on it.
// Passive health is off unless a test says otherwise, so that ejections do not hide the retries being tested.
import t from 'tap'
import { request } from './helpers/client.js'
import { deadUrl, settled, startBackend, startBalancer } from './helpers/servers.js'

t.test('a GET to a pool with one dead backend always succeeds: the failures are retried on the live one', async (t) => {
  const dead = await deadUrl()
  const live = await startBackend(t)
  const { app, url } = await startBalancer(t, { backends: [{ url: dead, id: 'dead' }, { url: live.url, id: 'live' }], passiveHealth: false })

  const statuses: number[] = []
  for (let i = 0; i < 20; i++) statuses.push((await request(url + '/next')).status)
  t.same(statuses, new Array(20).fill(200), 'every request answered by the live backend')

  await settled(app)
  const [deadStats, liveStats] = app.goload.stats().backends
  t.ok(deadStats.failed > 0, 'the dead backend was tried')
  t.equal(deadStats.retried, deadStats.failed, 'each failure at the dead backend was sent on')
  t.equal(deadStats.served, 0)
  t.equal(liveStats.served, 20, 'the live one served them all')
  t.equal(liveStats.failed, 0)
  t.equal(liveStats.retried, 0)
  t.equal(live.received, 20, 'the live backend saw each request once')
})

t.test('with passive health on, the dead backend is retried until it is ejected, then skipped', async (t) => {
  const dead = await deadUrl()
  const live = await startBackend(t)
  const { app, url } = await startBalancer(t, {
    backends: [{ url: dead, id: 'dead' }, { url: live.url, id: 'live' }],
    passiveHealth: { maxFails: 3, window: 60_000, ejectFor: 60_000 }
  })

  for (let i = 0; i < 20; i++) t.equal((await request(url)).status, 200)

  await settled(app)
  const [deadStats, liveStats] = app.goload.stats().backends
  t.equal(deadStats.failed, 3, 'tried until maxFails')
  t.equal(deadStats.retried, 3, 'every one of those requests went on to the live backend')
  t.not(deadStats.ejectedUntil, null, 'ejected')
  t.equal(liveStats.served, 20)
})

t.test('retries: 0 answers 502 for the requests that hit the dead backend', async (t) => {
  const dead = await deadUrl()
  const live = await startBackend(t)
  const { app, url } = await startBalancer(t, {
    backends: [{ url: dead, id: 'dead' }, { url: live.url, id: 'live' }],
    retries: 0,
    passiveHealth: false
  })

  const answers = []
  for (let i = 0; i < 10; i++) answers.push(await request(url))
  await settled(app)
  const [deadStats, liveStats] = app.goload.stats().backends
  const badGateways = answers.filter((a) => a.status === 502)
  t.ok(badGateways.length > 0, 'some requests hit the dead backend')
  t.ok(badGateways.every((a) => JSON.parse(a.body).code === 'FST_GOLOAD_BAD_GATEWAY'))
  t.equal(badGateways.length, deadStats.failed, 'one 502 for each request that hit the dead backend')
  t.equal(answers.filter((a) => a.status === 200).length, liveStats.served, 'the others were served')
  t.equal(badGateways.length + liveStats.served, 10, 'and nothing else')
  t.equal(deadStats.retried, 0, 'nothing was retried')
  t.equal(live.received, liveStats.served, 'the live backend saw no retried request')
})

t.test('a retry goes to a different backend: 2 dead of 3 fail some requests with retries: 1, none with retries: 2', async (t) => {
  const deadA = await deadUrl()
  const deadB = await deadUrl()

  await t.test('retries: 1', async (t) => {
    const live = await startBackend(t)
    const { app, url } = await startBalancer(t, {
      backends: [{ url: deadA, id: 'deadA' }, { url: deadB, id: 'deadB' }, { url: live.url, id: 'live' }],
      retries: 1,
      passiveHealth: false
    })
    const statuses: number[] = []
    for (let i = 0; i < 12; i++) statuses.push((await request(url)).status)
    await settled(app)
    const [a, b, liveStats] = app.goload.stats().backends
    const failedRequests = statuses.filter((s) => s === 502).length
    t.ok(failedRequests > 0, 'a request that met both dead backends failed')
    t.equal(failedRequests + liveStats.served, 12, 'every other request was served')
    t.equal(a.retried + b.retried, a.failed + b.failed - failedRequests, 'only the last attempt of a failed request is not retried')
  })

  await t.test('retries: 2', async (t) => {
    const live = await startBackend(t)
    const { app, url } = await startBalancer(t, {
      backends: [{ url: deadA, id: 'deadA' }, { url: deadB, id: 'deadB' }, { url: live.url, id: 'live' }],
      retries: 2,
      passiveHealth: false
    })
    const statuses: number[] = []
    for (let i = 0; i < 12; i++) statuses.push((await request(url)).status)
    t.same(statuses, new Array(12).fill(200), 'every request reached the live backend')
    await settled(app)
    const [a, b, liveStats] = app.goload.stats().backends
    t.equal(liveStats.served, 12)
    t.equal(a.retried, a.failed)
    t.equal(b.retried, b.failed)
    t.ok(a.failed > 0 && b.failed > 0, 'some requests went through both dead backends before the live one')
  })

  await t.test('never the same backend twice: 2 dead backends with retries: 5 try each once', async (t) => {
    const { app, url } = await startBalancer(t, {
      backends: [{ url: deadA, id: 'deadA' }, { url: deadB, id: 'deadB' }],
      retries: 5,
      passiveHealth: false
    })
    const answer = await request(url)
    t.equal(answer.status, 502)
    t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_BAD_GATEWAY')
    await settled(app)
    const [a, b] = app.goload.stats().backends
    t.equal(a.failed, 1, 'the first dead backend was tried once')
    t.equal(b.failed, 1, 'the second dead backend was tried once')
    t.equal(a.retried + b.retried, 1, 'one retry, then nowhere left to go')
  })
})

t.test('a response timeout (504) is not retried: the backend received the request once', async (t) => {
  const hung = await startBackend(t, (req) => { req.resume() }) // never answers
  const live = await startBackend(t)
  // On a fresh pool every backend is level, and the first one given goes first.
  const { app, url } = await startBalancer(t, {
    backends: [{ url: hung.url, id: 'hung' }, { url: live.url, id: 'live' }],
    timeout: 300,
    retries: 3,
    passiveHealth: false
  })
  const answer = await request(url + '/slow')
  t.equal(answer.status, 504)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_GATEWAY_TIMEOUT')
  await settled(app)
  const [hungStats, liveStats] = app.goload.stats().backends
  t.equal(hung.received, 1, 'the hung backend received it once')
  t.equal(live.received, 0, 'the other backend never saw it')
  t.equal(hungStats.failed, 1)
  t.equal(hungStats.retried, 0)
  t.equal(liveStats.served, 0)
})
