import t from 'tap'
import { describeRun, sequentialGets, sleep } from './helpers/raw.js'
import { trickledUploads } from './helpers/slow-uploads.js'
import { settled } from './helpers/servers.js'

// The reproduction: uploads that trickle in must not take every connection to the backends (undici's per-origin
// cap), or everyone else's requests wait behind them.
const slowClients = 260

t.test('260 clients trickling 100 kB uploads at 1 byte/s: other GETs answered 200, never held behind them, pending back to 0 once they go', async (t) => {
  // Defaults: no per-backend connection cap, bufferBody 65536, clientTimeout 30000, clientMinRate 500.
  const { app, url, uploads } = await trickledUploads(t, slowClients, 100000)
  // Let the uploads reach the backends (or the wait for a connection) before measuring.
  await sleep(300)

  const run = await sequentialGets(url, '/get', { minCount: 100, minMs: 4000 })
  t.same(run.failures, [], `every GET answered 200 while the uploads trickle: ${describeRun(run)}`)
  t.ok(run.latencies.length >= 100, `at least 100 GETs measured: ${describeRun(run)}`)
  // Held behind the uploads (no connection left to the backends), a GET would wait for their clientTimeout (30 s);
  // speed itself is the bench's.
  t.ok(Math.max(...run.latencies) < 5000, `no GET waited for a connection the uploads held: ${describeRun(run)}`)

  uploads.end()
  await settled(app)
  t.same(app.goload.stats().backends.map((b) => b.pending), [0, 0], 'pending is 0 on every backend')
})
