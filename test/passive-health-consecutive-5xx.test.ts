// Passive health's consecutive5xx, ported from Envoy's outlier_detection_impl_test BasicFlow5xxViaHttpCodes:
// with consecutive_5xx 5, a host answering 500, then 200, then four 500s is not ejected (the 200 reset the run);
// the fifth 500 in a row ejects it, and once the ejection time has passed it is back and takes traffic again.
// Two backends, strategy 'round-robin', so traffic has somewhere to go; the scripted backend plays its answers in
// the order it receives requests, whichever requests those are.
import type http from 'node:http'
import t from 'tap'
import { request, type Answer } from './helpers/client.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

/** Answers with the statuses of `script`, one per request received, then 200; the body names the backend. */
function scripted (id: string, script: number[]) {
  let next = 0
  return (req: http.IncomingMessage, res: http.ServerResponse) => {
    const status = script[next++] ?? 200
    req.resume()
    req.on('end', () => {
      res.statusCode = status
      res.end(`${id} ${status}`)
    })
  }
}

t.test('Envoy BasicFlow5xxViaHttpCodes: 500, 200, 4×500 keep it in; the 5th 500 in a row ejects; it comes back', async (t) => {
  const flaky = await startBackend(t, scripted('flaky', [500, 200, 500, 500, 500, 500, 500]))
  const steady = await startBackend(t, scripted('steady', []))
  const ejectFor = 2000
  const { app, url } = await startBalancer(t, {
    backends: [{ url: flaky.url, id: 'flaky' }, { url: steady.url, id: 'steady' }],
    strategy: 'round-robin',
    passiveHealth: { consecutive5xx: 5, ejectFor }
  })
  const flakyStats = () => app.goload.stats().backends[0]
  const flakyAnswers: Answer[] = []
  /** Sends requests until the flaky backend has received `n` of them. */
  async function until (n: number) {
    for (let i = 0; i < 20 && flaky.received < n; i++) {
      const answer = await request(url)
      if (answer.body.startsWith('flaky')) flakyAnswers.push(answer)
      else t.equal(answer.status, 200, 'the steady backend answers 200')
    }
    t.equal(flaky.received, n, `the flaky backend received ${n} requests`)
  }

  await until(6)
  t.same(flakyAnswers.map((a) => a.status), [500, 200, 500, 500, 500, 500], 'the 5xx answers reach the client')
  t.equal(flakyStats().ejectedUntil, null, 'four 500s in a row after a 200: still in')

  await until(7)
  t.equal(flakyAnswers[6].status, 500, 'the fifth 500 in a row is passed on too')
  const ejectedUntil = flakyStats().ejectedUntil
  t.not(ejectedUntil, null, 'and ejects the backend')
  t.equal(flakyStats().failed, 0, 'a 5xx answer is served, not failed')
  t.equal(flakyStats().served, 7)

  // While it is out, the other backend takes everything (checked only if the ejection has not already run out).
  const during: Answer[] = []
  for (let i = 0; i < 4; i++) during.push(await request(url))
  if (flakyStats().ejectedUntil === ejectedUntil) {
    t.equal(flaky.received, 7, 'no request reaches an ejected backend')
    t.ok(during.every((a) => a.body === 'steady 200'))
  }

  await waitFor(() => flakyStats().ejectedUntil === null, 'the ejection to run out')
  // Timers run on the monotonic clock and Date.now() on the wall clock: allow them a few ms apart.
  t.ok(Date.now() >= ejectedUntil! - 50, 'not before its time')
  await until(8)
  t.equal(flakyAnswers[7]?.status, 200, 'back in, it takes traffic again')
  t.equal(flakyAnswers[7]?.body, 'flaky 200')
  t.equal(flakyStats().ejectedUntil, null)

  await settled(app)
  t.equal(flakyStats().failed, 0)
})

t.test('any answer below 500 resets the run: 4×500, 404, 4×500 does not eject', async (t) => {
  const flaky = await startBackend(t, scripted('flaky', [500, 500, 500, 500, 404, 500, 500, 500, 500]))
  const steady = await startBackend(t, scripted('steady', []))
  const { app, url } = await startBalancer(t, {
    backends: [{ url: flaky.url, id: 'flaky' }, { url: steady.url, id: 'steady' }],
    strategy: 'round-robin',
    passiveHealth: { consecutive5xx: 5, ejectFor: 60_000 }
  })
  for (let i = 0; i < 40 && flaky.received < 9; i++) await request(url)
  t.equal(flaky.received, 9)
  t.equal(app.goload.stats().backends[0].ejectedUntil, null, 'never five 5xx in a row')
  for (let i = 0; i < 40 && flaky.received < 10; i++) await request(url)
  t.equal(flaky.received, 10, 'still taking traffic')
  await settled(app)
})

t.test('consecutive5xx: 0 (the default) never ejects on answers', async (t) => {
  const flaky = await startBackend(t, scripted('flaky', new Array(10).fill(503)))
  const steady = await startBackend(t, scripted('steady', []))
  const { app, url } = await startBalancer(t, {
    backends: [{ url: flaky.url, id: 'flaky' }, { url: steady.url, id: 'steady' }],
    strategy: 'round-robin'
  })
  for (let i = 0; i < 40 && flaky.received < 10; i++) await request(url)
  t.equal(flaky.received, 10)
  t.equal(app.goload.stats().backends[0].ejectedUntil, null)
  await settled(app)
})

t.test('a connection reset counts in the run of 5xx (Envoy counts locally seen failures as 5xx): 500, 500, reset ejects', async (t) => {
  const seen = { requests: 0 }
  const flaky = await startBackend(t, (req, res) => {
    seen.requests++
    req.resume()
    // The third request: the connection is cut before any answer.
    if (seen.requests === 3) req.socket.destroy()
    else req.on('end', () => { res.statusCode = 500; res.end('flaky 500') })
  })
  const steady = await startBackend(t, scripted('steady', []))
  const { app, url } = await startBalancer(t, {
    backends: [{ url: flaky.url, id: 'flaky' }, { url: steady.url, id: 'steady' }],
    strategy: 'round-robin',
    // maxFails high: one reset alone would not eject; only the run of three does.
    passiveHealth: { consecutive5xx: 3, maxFails: 100, ejectFor: 60_000 }
  })
  const flakyStats = () => app.goload.stats().backends[0]
  const answers: Answer[] = []
  for (let i = 0; i < 20 && seen.requests < 3; i++) answers.push(await request(url))
  t.equal(seen.requests, 3)
  t.ok(answers.every((a) => a.status === 200 || a.body === 'flaky 500'), 'the reset GET was retried on the steady backend, not failed')
  t.equal(flakyStats().failed, 1, 'the reset counts as a failure')
  t.not(flakyStats().ejectedUntil, null, 'two 500s and a reset in a row eject it')
  await settled(app)
})
