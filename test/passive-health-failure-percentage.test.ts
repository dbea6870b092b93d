// Passive health's failurePercentage (Envoy's outlier detection failure_percentage): a backend whose 5xx and failures
// reach the percentage of its requests within `window`, once it has had minRequests there, is ejected as the other
// rules eject. One bad backend of two, strategy round-robin; its answers alternate 500 and 200, so no run of
// consecutive 5xx would ever eject it.
import type http from 'node:http'
import t from 'tap'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer } from './helpers/servers.js'

/** Answers 500 for each request whose number (from 1) `fails` says, else 200; the body names the backend. */
function failingWhen (id: string, fails: (n: number) => boolean) {
  let n = 0
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const status = fails(++n) ? 500 : 200
    req.resume()
    req.on('end', () => {
      res.statusCode = status
      res.end(`${id} ${status}`)
    })
  }
}

async function twoBackends (t: Parameters<typeof startBackend>[0], fails: (n: number) => boolean, failurePercentage: number) {
  const bad = await startBackend(t, failingWhen('bad', fails))
  const good = await startBackend(t, failingWhen('good', () => false))
  const balancer = await startBalancer(t, {
    backends: [{ url: bad.url, id: 'bad' }, { url: good.url, id: 'good' }],
    strategy: 'round-robin',
    passiveHealth: { failurePercentage, minRequests: 6, ejectFor: 60_000 }
  })
  /** Sends requests until the bad backend has received `n`. */
  const until = async (n: number) => {
    for (let i = 0; i < 40 && bad.received < n; i++) await request(balancer.url)
    t.equal(bad.received, n, `the bad backend received ${n} requests`)
  }
  return { ...balancer, bad, good, until, badStats: () => balancer.app.goload.stats().backends[0] }
}

t.test('half its answers 500: ejected once it has minRequests and a failure brings the share to the percentage', async (t) => {
  const { app, url, bad, until, badStats } = await twoBackends(t, (n) => n % 2 === 1, 50)
  // 500, 200, 500, 200, 500, 200: 3 of 6, but the last was a 200, and only a failure is judged.
  await until(6)
  t.equal(badStats().ejectedUntil, null, 'not on a success')
  await until(7)
  t.not(badStats().ejectedUntil, null, '4 failed of 7 (57%): ejected')
  for (let i = 0; i < 4; i++) t.equal((await request(url)).body, 'good 200', 'the other backend takes everything')
  t.equal(bad.received, 7, 'nothing more reaches the ejected one')
  await settled(app)
})

t.test('below minRequests, or below the percentage, it stays in', async (t) => {
  // 500 every third request: 33%.
  const { app, until, badStats } = await twoBackends(t, (n) => n % 3 === 1, 50)
  await until(12)
  t.equal(badStats().ejectedUntil, null, '4 failed of 12: under 50%')
  await settled(app)

  const early = await twoBackends(t, (n) => n <= 5, 50)
  await early.until(5)
  t.equal(early.badStats().ejectedUntil, null, 'five 500s of five: under minRequests (6)')
  await early.until(6)
  t.equal(early.badStats().ejectedUntil, null, 'the sixth was a 200')
  await settled(early.app)
})

t.test('failurePercentage 0 (the default) and a bad value', async (t) => {
  const { app, until, badStats } = await twoBackends(t, () => true, 0)
  await until(10)
  t.equal(badStats().ejectedUntil, null, 'off: ten 500s in a row eject nothing')
  await settled(app)
  await t.rejects(startBalancer(t, { backends: ['http://127.0.0.1:1'], passiveHealth: { failurePercentage: 101 } }), { code: 'FST_GOLOAD_INVALID_OPTION', message: /passiveHealth\.failurePercentage/ })
})
