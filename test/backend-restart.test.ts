import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { closeServer, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

// From the issue: a backend killed under load and started again on the same port. While it is down, GETs must
// not see a 5xx as long as another backend is up (retried elsewhere, then ejected), and once it is back the
// active health check must bring it back within about one interval (ejectFor is far longer, so nothing else can).

const interval = 200

t.test('a backend killed mid-load and restarted on the same port: no 5xx for GETs, back within one health interval', async (t) => {
  // Traffic (not probes) each backend received, and when the restarted one got its first request.
  const traffic = { a: 0, b: 0 }
  let aTrafficAt = 0
  let aProbes = 0
  let aFirstProbeAfterRestartAt = 0
  let restarted = false

  // Answers after a few ms, so that requests are in flight at the backend when it is killed.
  const handler = (id: 'a' | 'b'): (req: http.IncomingMessage, res: http.ServerResponse) => void => (req, res) => {
    req.resume()
    if (req.url === '/health') {
      if (id === 'a') {
        aProbes++
        if (restarted && aFirstProbeAfterRestartAt === 0) aFirstProbeAfterRestartAt = Date.now()
      }
      res.end('ok')
      return
    }
    traffic[id]++
    if (id === 'a' && aTrafficAt === 0 && restarted) aTrafficAt = Date.now()
    setTimeout(() => { res.end(`Hello from ${id}`) }, 3)
  }
  const a = await startBackend(t, handler('a'))
  const b = await startBackend(t, handler('b'))
  const aPort = (a.server.address() as AddressInfo).port

  const { app, url } = await startBalancer(t, {
    backends: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }],
    retries: 1,
    // Ejected long enough that only a passing probe can end it within the test.
    passiveHealth: { maxFails: 3, window: 10_000, ejectFor: 120_000 },
    healthCheck: { path: '/health', interval, healthyAfter: 1, unhealthyAfter: 2 }
  })
  const stat = (id: string) => app.goload.stats().backends.find((backend) => backend.id === id)!

  // Load: 4 clients sending GETs one after another until told to stop, at most maxRequests in all.
  const statuses = new Map<number, number>()
  const errors: string[] = []
  let sent = 0
  const control = { stop: false }
  const maxRequests = 20_000
  const client = async (): Promise<void> => {
    while (!control.stop && sent < maxRequests) {
      sent++
      try {
        const answer = await request(`${url}/item?n=${sent}`)
        statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1)
        if (answer.status >= 500) errors.push(`${answer.status} ${answer.body}`)
      } catch (error) {
        errors.push(String(error))
      }
    }
  }
  const load = Promise.all([client(), client(), client(), client()])
  t.teardown(() => { control.stop = true })

  try {
    await waitFor(() => traffic.a >= 20 && traffic.b >= 20, 'both backends to take traffic')

    // Kill a: the listening socket and every connection, including requests it is working on.
    const inFlightAtKill = a.active
    await closeServer(a.server)
    t.comment(`killed a with ${inFlightAtKill} requests in flight`)

    // Down: passive health ejects it from the failures, the probes mark it unhealthy.
    await waitFor(() => stat('a').ejectedUntil !== null, 'a to be ejected')
    await waitFor(() => !stat('a').healthy, 'a to fail its health checks')
    const ejectedUntil = stat('a').ejectedUntil!
    const bDuringOutage = traffic.b
    await waitFor(() => traffic.b >= bDuringOutage + 100, 'b to serve more requests while a is down')
    t.ok(stat('a').failed > 0, `failures counted at a (${stat('a').failed})`)
    t.ok(stat('a').retried > 0, `and retried elsewhere (${stat('a').retried})`)

    // Restart a on the same port.
    const probesBeforeRestart = aProbes
    restarted = true
    await deadline(new Promise<void>((resolve, reject) => {
      a.server.once('error', reject)
      a.server.listen(aPort, '127.0.0.1', () => { a.server.off('error', reject); resolve() })
    }), 5000, 'a to listen again')
    const restartedAt = Date.now()

    await waitFor(() => aTrafficAt !== 0, 'a to receive traffic again')
    const back = aTrafficAt - restartedAt
    t.comment(`first probe ${aFirstProbeAfterRestartAt - restartedAt} ms and first request ${back} ms after the restart`)
    t.ok(aProbes > probesBeforeRestart, 'probed after the restart')
    // One interval, plus a generous margin for timers on a loaded machine.
    t.ok(back < interval + 800, `traffic within about one health interval (${back} ms)`)
    t.ok(aTrafficAt < ejectedUntil, 'before its ejection would have run out: the passing probe ended it')
    t.equal(stat('a').ejectedUntil, null, 'no longer ejected')
    t.equal(stat('a').healthy, true, 'healthy again')

    const aBack = traffic.a
    await waitFor(() => traffic.a >= aBack + 20, 'a to keep taking traffic')
  } finally {
    control.stop = true
    await load
  }

  t.same(errors, [], 'no 5xx and no connection error for any GET')
  t.same([...statuses.keys()], [200], `every answer was 200 (${sent} requests)`)
  await settled(app)
})
