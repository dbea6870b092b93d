import http from 'node:http'
import t from 'tap'
import { request } from './helpers/client.js'
import { hello, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

const slowStart = 2000

// Kept-alive connections, opened by the first batch: later batches reach the balancer without connecting first,
// so a batch of 40 is routed within a few ms even on a loaded machine.
const agent = new http.Agent({ keepAlive: true, maxSockets: 40 })
t.teardown(() => { agent.destroy() })

/** Sends `count` GETs, `concurrency` at a time, and returns how many each body came back. */
async function spread (url: string, count: number, concurrency = 8): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  let next = 0
  const client = async (): Promise<void> => {
    while (next < count) {
      next++
      const answer = await request(url, { agent })
      if (answer.status !== 200) throw new Error(`expected 200, got ${answer.status}: ${answer.body}`)
      counts.set(answer.body, (counts.get(answer.body) ?? 0) + 1)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, client))
  return counts
}

t.test('slowStart: a backend added at run time starts with a small share and ramps up to its full one', async (t) => {
  const old = await startBackend(t, hello('old'))
  const fresh = await startBackend(t, hello('new'))
  // Round-robin gives turns by the effective weight alone, whatever the load, so the share is deterministic.
  const { app, url } = await startBalancer(t, { backends: [old.url], strategy: 'round-robin', slowStart })
  // Established: it has served for a while (and the 40 client connections are open).
  t.equal((await spread(url, 40, 40)).get('Hello from old'), 40)

  app.goload.add(fresh.url)
  const added = Date.now()
  // All 40 sent at once: round-robin picks at acquire time, so they are all chosen within the first ramp steps.
  const early = await spread(url, 40, 40)
  const earlyElapsed = Date.now() - added
  const earlyNew = early.get('Hello from new') ?? 0
  t.comment(`first 40 requests after add (${earlyElapsed} ms): new ${earlyNew}, old ${early.get('Hello from old') ?? 0}`)
  t.ok(earlyNew >= 1, 'the new backend takes traffic at once')
  t.ok(earlyNew < 10, `but well under its half: ${earlyNew} of 40 (a tenth of its weight at first gives about 4)`)

  // The ramp takes slowStart ms; wait that long and a margin, with a real timer (bounded by slowStart + margin).
  const rampedAt = added + slowStart + 300
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, rampedAt - Date.now())))
  const later = await spread(url, 100)
  const laterNew = later.get('Hello from new') ?? 0
  t.comment(`100 requests after the ramp: new ${laterNew}, old ${later.get('Hello from old') ?? 0}`)
  t.ok(laterNew >= 40 && laterNew <= 60, `its full share, about half: ${laterNew} of 100`)
  await settled(app)
})

t.test('slowStart: a backend that comes back from failed health checks ramps up again', async (t) => {
  const old = await startBackend(t, hello('old'))
  let healthStatus = 200
  const back = await startBackend(t, (req, res) => {
    req.resume()
    if (req.url === '/health') {
      res.statusCode = healthStatus
      res.end()
    } else {
      req.on('end', () => { res.end('Hello from back') })
    }
  })
  const { app, url } = await startBalancer(t, {
    backends: [old.url, back.url],
    strategy: 'round-robin',
    slowStart,
    passiveHealth: false,
    healthCheck: { path: '/health', interval: 50, unhealthyAfter: 1, healthyAfter: 1 }
  })
  const healthy = () => app.goload.stats().backends[1].healthy
  const before = await spread(url, 40, 40)
  t.ok((before.get('Hello from back') ?? 0) >= 15, 'configured from the start, it has its full share at once')

  healthStatus = 500
  await waitFor(() => !healthy(), 'the backend to fail its health checks')
  healthStatus = 200
  await waitFor(healthy, 'the backend to pass again')
  const early = await spread(url, 40, 40)
  const earlyBack = early.get('Hello from back') ?? 0
  t.comment(`first 40 requests after it came back: ${earlyBack}`)
  t.ok(earlyBack >= 1 && earlyBack < 10, `a small share while it ramps up: ${earlyBack} of 40`)
  await settled(app)
})
