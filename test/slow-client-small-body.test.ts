import t from 'tap'
import { describeRun, sequentialGets, sleep } from './helpers/raw.js'
import { trickledUploads } from './helpers/slow-uploads.js'
import { pendingCounts, settled, waitFor } from './helpers/servers.js'

// A body under bufferBody is read whole before a backend is chosen: a client that sends it slowly holds no
// backend slot and no upstream connection while it does.
const slowClients = 260

t.test('260 clients trickling 1 kB bodies at 1 byte/s hold no backend: pending stays 0, backends see none of them, other GETs are never held behind them', async (t) => {
  // Defaults: bufferBody 65536, clientTimeout 30000, clientMinRate 500.
  const { app, url, uploads, uploadsAtBackends } = await trickledUploads(t, slowClients, 1024)
  // Long enough for a balancer that forwards on arrival to have dispatched every one of them.
  await sleep(1000)
  t.same(pendingCounts(app), [0, 0], 'while the bodies trickle in, pending is 0 on every backend')
  t.equal(uploadsAtBackends(), 0, 'while the bodies trickle in, no backend has received any of them')

  const run = await sequentialGets(url, '/get', { minCount: 100, minMs: 4000 })
  t.same(run.failures, [], `every GET answered 200 while the bodies trickle: ${describeRun(run)}`)
  t.ok(run.latencies.length >= 100, `at least 100 GETs measured: ${describeRun(run)}`)
  // Held behind the trickling bodies, a GET would wait for their clientTimeout (30 s); speed itself is the bench's.
  t.ok(Math.max(...run.latencies) < 5000, `no GET waited anywhere near clientTimeout: ${describeRun(run)}`)

  // The GETs are done: nothing may be in flight, still (wait only for the last GET's release).
  let pending: number[] = []
  await t.resolves(waitFor(() => (pending = pendingCounts(app)).every((count) => count === 0), 'the GETs to be released', 2000),
    'after the GETs, pending is 0 on every backend while the bodies still trickle')
  t.same(pending, [0, 0], 'pending counts after the GETs')
  t.equal(uploadsAtBackends(), 0, 'after 5 s of trickling, still no backend has received any of them')

  uploads.end()
  await settled(app)
  t.same(pendingCounts(app), [0, 0], 'pending is 0 on every backend once they are gone')
  t.equal(uploadsAtBackends(), 0, 'an upload whose client left before its body was whole never reaches a backend')
})
