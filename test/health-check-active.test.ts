import type http from 'node:http'
import net from 'node:net'
import t from 'tap'
import type { Test } from 'tap'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer, waitFor, type Backend } from './helpers/servers.js'

interface Probed {
  backend: Backend
  /** What GET /health answers; the test changes it. */
  healthStatus: number
  /** GETs of /health received so far. */
  probes: number
  /** Every other request received so far: proxied traffic. */
  traffic: number
  /** Leave probes unanswered while true. */
  hangProbes: boolean
  /** Requests for /hang, never answered by the backend. */
  held: http.ServerResponse[]
}

/** A backend answering `healthStatus` on /health, nothing on /hang, and "Hello from <id>" on any other path. */
async function probedBackend (t: Test, id: string, healthStatus = 200): Promise<Probed> {
  const probed: Probed = { backend: undefined as unknown as Backend, healthStatus, probes: 0, traffic: 0, hangProbes: false, held: [] }
  probed.backend = await startBackend(t, (req, res) => {
    req.resume()
    if (req.url === '/health') {
      probed.probes++
      if (probed.hangProbes) return
      res.writeHead(probed.healthStatus, probed.healthStatus >= 300 && probed.healthStatus < 400 ? { location: '/' } : {})
      res.end()
      return
    }
    probed.traffic++
    if (req.url === '/hang') {
      probed.held.push(res)
      return
    }
    req.on('end', () => { res.end(`Hello from ${id}`) })
  })
  return probed
}

const healthCheck = { path: '/health', interval: 100, unhealthyAfter: 2, healthyAfter: 2 }

/** Resolves once `probed` has answered `count` more probes than it had when called. */
function moreProbes (probed: Probed, count: number): Promise<void> {
  const target = probed.probes + count
  return waitFor(() => probed.probes >= target, `${count} more probes`)
}

function healthyOf (app: Parameters<typeof settled>[0], url: string): boolean {
  return app.goload.stats().backends.find((b) => b.url === url)!.healthy
}

t.test('a backend failing /health goes unhealthy and gets no traffic, then comes back once /health passes', async (t) => {
  const a = await probedBackend(t, 'a')
  const b = await probedBackend(t, 'b')
  // Passive health off: only the probes decide here.
  const { app, url } = await startBalancer(t, { backends: [a.backend.url, b.backend.url], healthCheck, passiveHealth: false })

  await moreProbes(a, 2)
  t.ok(healthyOf(app, a.backend.url), 'healthy while /health answers 200')
  for (let i = 0; i < 6; i++) t.equal((await request(url)).status, 200)
  t.ok(a.traffic > 0 && b.traffic > 0, 'both take traffic while healthy')

  a.healthStatus = 500
  const failingFrom = a.probes
  await waitFor(() => !healthyOf(app, a.backend.url), 'a to be marked unhealthy')
  t.ok(a.probes - failingFrom >= 2, `taken out after unhealthyAfter failed probes (${a.probes - failingFrom})`)
  const aBefore = a.traffic
  const bodies = new Set<string>()
  for (let i = 0; i < 20; i++) {
    const answer = await request(url)
    t.equal(answer.status, 200)
    bodies.add(answer.body)
  }
  t.equal(a.traffic, aBefore, 'no request reaches the unhealthy backend')
  t.same([...bodies], ['Hello from b'])
  t.equal(app.goload.stats().backends[0].healthy, false, 'stats report it unhealthy')
  // It keeps being probed, and stays out, while it fails.
  await moreProbes(a, 3)
  t.notOk(healthyOf(app, a.backend.url), 'still unhealthy while /health fails')

  a.healthStatus = 200
  const passingFrom = a.probes
  await waitFor(() => healthyOf(app, a.backend.url), 'a to be healthy again')
  t.ok(a.probes - passingFrom >= 2, `back after healthyAfter passing probes (${a.probes - passingFrom})`)
  const aBack = a.traffic
  for (let i = 0; i < 10; i++) t.equal((await request(url)).status, 200)
  t.ok(a.traffic > aBack, `traffic reaches it again (${a.traffic - aBack} of 10)`)
  await settled(app)
})

t.test('one failure fewer than unhealthyAfter keeps the backend in', async (t) => {
  const a = await probedBackend(t, 'a')
  const b = await probedBackend(t, 'b')
  const { app } = await startBalancer(t, { backends: [a.backend.url, b.backend.url], healthCheck: { ...healthCheck, unhealthyAfter: 3 }, passiveHealth: false })
  await moreProbes(a, 1)
  // Fail exactly two probes in a row (one short of unhealthyAfter), then pass again.
  a.healthStatus = 500
  const failedFrom = a.probes
  await waitFor(() => a.probes >= failedFrom + 2, 'two failed probes')
  a.healthStatus = 200
  t.ok(healthyOf(app, a.backend.url), 'still healthy after fewer failures than unhealthyAfter')
  await moreProbes(a, 3)
  t.ok(healthyOf(app, a.backend.url), 'and a pass resets the run')
  await settled(app)
})

t.test('expectStatus decides what passes', async (t) => {
  const cases: Array<{ expectStatus: string | number | Array<string | number>, pass: number[], fail: number[] }> = [
    { expectStatus: '2xx', pass: [204, 200], fail: [301, 500] },
    { expectStatus: 204, pass: [204], fail: [200, 404] },
    { expectStatus: ['3xx', 200], pass: [302, 200], fail: [204, 503] }
  ]
  for (const { expectStatus, pass, fail } of cases) {
    await t.test(`expectStatus ${JSON.stringify(expectStatus)}`, async (t) => {
      const a = await probedBackend(t, 'a', pass[0])
      const b = await probedBackend(t, 'b')
      const { app } = await startBalancer(t, { backends: [a.backend.url, b.backend.url], healthCheck: { ...healthCheck, expectStatus }, passiveHealth: false })
      for (const status of pass) {
        a.healthStatus = status
        await moreProbes(a, 3)
        t.ok(healthyOf(app, a.backend.url), `${status} passes`)
      }
      for (const status of fail) {
        a.healthStatus = status
        await waitFor(() => !healthyOf(app, a.backend.url), `${status} to fail`)
        t.pass(`${status} fails`)
        a.healthStatus = pass[pass.length - 1]
        await waitFor(() => healthyOf(app, a.backend.url), `${pass[pass.length - 1]} to bring it back`)
      }
      await settled(app)
    })
  }
})

t.test('a backend added at run time is probed too', async (t) => {
  const a = await probedBackend(t, 'a')
  const late = await probedBackend(t, 'late', 500)
  const { app } = await startBalancer(t, { backends: [a.backend.url], healthCheck, passiveHealth: false })
  app.goload.add(late.backend.url)
  await waitFor(() => !healthyOf(app, late.backend.url), 'the added backend to fail its probes')
  t.ok(late.probes >= 2)
  await settled(app)
})

t.test('a /health that never answers fails by healthCheck.timeout', async (t) => {
  const a = await probedBackend(t, 'a')
  const b = await probedBackend(t, 'b')
  const { app } = await startBalancer(t, { backends: [a.backend.url, b.backend.url], healthCheck: { ...healthCheck, timeout: 150 }, passiveHealth: false })
  await moreProbes(a, 2)
  t.ok(healthyOf(app, a.backend.url))
  a.hangProbes = true
  await waitFor(() => !healthyOf(app, a.backend.url), 'a to fail by timeout')
  a.hangProbes = false
  await waitFor(() => healthyOf(app, a.backend.url), 'a to pass again')
  t.pass('unhealthy while its probes time out, healthy once they are answered')
  await settled(app)
})

t.test('probes have connections of their own: a backend whose traffic connections are all busy stays healthy', async (t) => {
  // One traffic connection to the backend, held by a proxied request that hangs. Probes sharing it would queue
  // behind it and fail by their timeout, taking a busy backend out of rotation for being in use (as goload did
  // before, and as HAProxy's checks, on connections of their own, do not).
  const a = await probedBackend(t, 'a')
  const { app, port } = await startBalancer(t, {
    backends: [a.backend.url],
    connections: 1,
    closeTimeout: 500,
    healthCheck: { ...healthCheck, timeout: 200 },
    passiveHealth: false
  })
  await moreProbes(a, 2)
  const socket = net.connect(port, '127.0.0.1', () => { socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n') })
  socket.on('error', () => {})
  t.teardown(() => { socket.destroy() })
  await waitFor(() => a.held.length === 1, 'the hanging request to hold the only traffic connection')

  // unhealthyAfter is 2 and the timeout 200 ms: 5 probes answered while the connection is held would have been
  // at least 5 failures on a shared connection.
  await moreProbes(a, 5)
  t.ok(healthyOf(app, a.backend.url), 'probes got through beside the busy connection: still healthy')
  t.equal(a.held.length, 1, 'and the traffic connection was busy all along')
  socket.destroy()
  await settled(app)
})

t.test('probes stop on app.close(): none arrive afterwards', async (t) => {
  const a = await probedBackend(t, 'a')
  const { app } = await startBalancer(t, { backends: [a.backend.url], healthCheck })
  await moreProbes(a, 3)
  await settled(app)

  const started = Date.now()
  await app.close()
  t.ok(Date.now() - started < 5000, 'app.close() resolves')
  // A probe already on the wire when close began still reaches the backend: count from the moment the balancer's
  // connections to it are gone.
  const connections = () => new Promise<number>((resolve, reject) => {
    a.backend.server.getConnections((error, count) => { if (error) reject(error); else resolve(count) })
  })
  let open = await connections()
  for (const deadline = Date.now() + 5000; open > 0; open = await connections()) {
    if (Date.now() > deadline) throw new Error(`the balancer's ${open} connections to the backend still open 5 s after close`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
  const afterClose = a.probes
  // Several intervals without a probe: the timer is gone, not just late.
  await new Promise((resolve) => setTimeout(resolve, healthCheck.interval * 6))
  t.equal(a.probes, afterClose, 'no probe after close')
  t.equal(await connections(), 0, 'and no new connection to the backend')
})
