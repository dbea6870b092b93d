// Passive health's maxFails within window, ported from nginx-tests upstream.t ('failures'), nginx's max_fails and
// fail_timeout. There, two servers with max_fails=3 fail_timeout=10s take 30 requests in turn; the first server drops
// every 3rd connection it gets without an answer. Of the first 9 requests it gets, the 3rd, 6th and 9th fail (each
// one goes on to the other server, proxy_next_upstream error); the failures count although successes come between
// them (the 'failures delay' case of the same file guards against a success resetting the count), so the third one
// takes it out for fail_timeout, and the expected split is "p1: 6, p2: 24". The same here with goload:
// strategy 'round-robin' for nginx's default balancer, a backend that resets every 3rd request, maxFails: 3 in a
// window of 10 s, and an ejection longer than the test.
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import t from 'tap'
import { request } from './helpers/client.js'
import { deadUrl, settled, startBackend, startBalancer } from './helpers/servers.js'

/** A TCP server that accepts each connection and destroys it at once: every request sent to it fails. */
async function startDropper (t: Test): Promise<{ url: string, connections: () => number }> {
  let connections = 0
  const server = net.createServer((socket) => {
    connections++
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => { resolve() })))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections: () => connections }
}

t.test('upstream.t "failures": a backend failing every 3rd request is ejected at its 3rd failure, 6 + 24 served', async (t) => {
  let count = 0
  const flaky = await startBackend(t, (req, res) => {
    if (++count % 3 === 0) {
      req.socket.destroy()
      return
    }
    req.resume()
    req.on('end', () => { res.end('flaky') })
  })
  const steady = await startBackend(t, (req, res) => {
    req.resume()
    req.on('end', () => { res.end('steady') })
  })
  const { app, url } = await startBalancer(t, {
    backends: [{ url: flaky.url, id: 'flaky' }, { url: steady.url, id: 'steady' }],
    strategy: 'round-robin',
    passiveHealth: { maxFails: 3, window: 10_000, ejectFor: 60_000 }
  })

  const bodies: string[] = []
  for (let i = 0; i < 30; i++) {
    const answer = await request(url + '/close')
    t.equal(answer.status, 200, `request ${i + 1} answered`)
    bodies.push(answer.body)
  }
  t.equal(bodies.filter((b) => b === 'flaky').length, 6, 'p1: 6')
  t.equal(bodies.filter((b) => b === 'steady').length, 24, 'p2: 24')

  await settled(app)
  const [flakyStats, steadyStats] = app.goload.stats().backends
  t.equal(flaky.received, 9, 'the flaky backend got 9 requests, then none')
  t.equal(flakyStats.failed, 3, 'the 3rd, 6th and 9th failed')
  t.equal(flakyStats.retried, 3, 'and went on to the other backend')
  t.equal(flakyStats.served, 6)
  t.not(flakyStats.ejectedUntil, null, 'the third failure ejected it')
  t.equal(steadyStats.served, 24)
  t.equal(steadyStats.failed, 0)
  t.equal(steadyStats.ejectedUntil, null)
})

t.test('a dead backend is ejected after maxFails failures and gets no attempt while ejected', async (t) => {
  const dropper = await startDropper(t)
  const live = await startBackend(t)
  const { app, url } = await startBalancer(t, {
    backends: [{ url: dropper.url, id: 'dropper' }, { url: live.url, id: 'live' }],
    passiveHealth: { maxFails: 3, window: 10_000, ejectFor: 60_000 }
  })

  for (let i = 0; i < 50 && app.goload.stats().backends[0].failed < 3; i++) t.equal((await request(url)).status, 200)
  const ejected = app.goload.stats().backends[0]
  t.equal(ejected.failed, 3)
  t.not(ejected.ejectedUntil, null, 'ejected at the third failure')
  t.ok(ejected.ejectedUntil! > Date.now() + 30_000, 'for ejectFor')
  t.equal(dropper.connections(), 3, 'one connection per failed attempt')

  for (let i = 0; i < 20; i++) t.equal((await request(url)).status, 200)
  await settled(app)
  const [dropperStats, liveStats] = app.goload.stats().backends
  t.equal(dropper.connections(), 3, 'no connection attempt while it is ejected')
  t.equal(dropperStats.failed, 3)
  t.equal(dropperStats.ejectedUntil, ejected.ejectedUntil, 'still ejected, until the same time')
  t.equal(liveStats.failed, 0)
  t.equal(live.received, liveStats.served)
})

t.test('fewer than maxFails failures within the window do not eject', async (t) => {
  const dead = await deadUrl()
  const live = await startBackend(t)
  const { app, url } = await startBalancer(t, {
    backends: [{ url: dead, id: 'dead' }, { url: live.url, id: 'live' }],
    retries: 0,
    passiveHealth: { maxFails: 3, window: 10_000, ejectFor: 60_000 }
  })
  for (let i = 0; i < 50 && app.goload.stats().backends[0].failed < 2; i++) await request(url)
  t.equal(app.goload.stats().backends[0].failed, 2)
  await settled(app)
  t.equal(app.goload.stats().backends[0].ejectedUntil, null, 'two failures: still in')
  for (let i = 0; i < 50 && app.goload.stats().backends[0].failed < 3; i++) await request(url)
  t.equal(app.goload.stats().backends[0].failed, 3)
  await settled(app)
  t.not(app.goload.stats().backends[0].ejectedUntil, null, 'the third one ejects')
})

t.test('maxEjectedPercent: 50 with two failing backends ejects only one of them', async (t) => {
  const a = await startDropper(t)
  const b = await startDropper(t)
  const { app, url } = await startBalancer(t, {
    backends: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }],
    passiveHealth: { maxFails: 3, window: 10_000, ejectFor: 60_000, maxEjectedPercent: 50 }
  })

  const ejectedCount = () => app.goload.stats().backends.filter((s) => s.ejectedUntil !== null).length
  for (let i = 0; i < 12; i++) {
    const answer = await request(url)
    t.equal(answer.status, 502, `request ${i + 1}: both backends fail`)
    t.ok(ejectedCount() <= 1, 'never more than one ejected')
  }
  await settled(app)
  const [aStats, bStats] = app.goload.stats().backends
  t.equal(ejectedCount(), 1, 'one backend is ejected')
  const kept = aStats.ejectedUntil === null ? aStats : bStats
  t.ok(kept.failed > 3, 'the other one went on failing past maxFails and was kept in')
  t.equal(kept.ejectedUntil, null)
})
