// GET /events (lib/admin/events.ts): a snapshot at connect, one every 500 ms, one at once on a state change (an
// ejection, a drain), each made once for every client; a client that stops reading is cut; close() ends the streams.
import net from 'node:net'
import Fastify from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import { startAdmin } from '../lib/admin/server.js'
import type { PoolConfig } from '../lib/options.js'
import { Pool } from '../lib/pool/pool.js'
import { openEvents, poolsOf, startAdminOf } from './helpers/admin.js'
import { request } from './helpers/client.js'
import { capturedLogs } from './helpers/logs.js'
import { deadline } from './helpers/raw.js'
import { deadUrl, hello, startBackend, startBalancer, waitFor } from './helpers/servers.js'

t.test('a snapshot at connect, then one about every 500 ms, in the SSE format', async (t) => {
  const a = await startBackend(t, hello('a'))
  const balancer = await startBalancer(t, { name: 'web', backends: [a.url] })
  const admin = await startAdminOf(t, balancer)
  const stream = await openEvents(t, admin.url)
  t.equal(stream.response.statusCode, 200)
  t.equal(stream.response.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(stream.response.headers['cache-control'], 'no-cache')
  const first = await stream.first()
  t.match(first, { pid: process.pid, pools: [{ name: 'web', next: a.url, backends: [{ id: a.url, state: 'up' }] }] })
  await stream.next()
  await stream.next()
  const [, second, third] = stream.snapshots
  t.ok(third.at - second.at >= 300 && third.at - second.at <= 1500, `${third.at - second.at} ms apart`)
})

t.test('an ejected backend (passive health, a dead backend) shows as ejected within a second', async (t) => {
  const a = await startBackend(t, hello('a'))
  const dead = await deadUrl()
  const balancer = await startBalancer(t, { name: 'web', backends: [{ url: dead, id: 'dead' }, a.url], passiveHealth: { maxFails: 1, ejectFor: 60_000 }, retries: 1 })
  const admin = await startAdminOf(t, balancer)
  const stream = await openEvents(t, admin.url)
  await stream.first()
  const ejected = stream.next((snapshot) => snapshot.pools[0].backends[0].state === 'ejected', 1000)
  // The first request goes to `dead` (listed first), fails, is retried at a.
  const sent = Date.now()
  t.equal((await request(balancer.url + '/')).status, 200)
  const snapshot = await ejected
  t.ok(Date.now() - sent < 1000, `${Date.now() - sent} ms after the request`)
  t.match(snapshot.pools[0], { next: a.url, backends: [{ id: 'dead', healthy: true, failed: 1, state: 'ejected' }, { id: a.url, state: 'up' }] })
  t.type(snapshot.pools[0].backends[0].ejectedUntil, 'number')
})

t.test('a drain through the API shows at once, and a burst of changes makes one snapshot, not one each', async (t) => {
  const a = await startBackend(t, hello('a'))
  const b = await startBackend(t, hello('b'))
  const balancer = await startBalancer(t, { name: 'web', backends: [{ url: a.url, id: 'a' }, { url: b.url, id: 'b' }] })
  const admin = await startAdminOf(t, balancer)
  const stream = await openEvents(t, admin.url)
  await stream.first()
  const drained = stream.next((snapshot) => snapshot.pools[0].backends[0].draining, 1000)
  t.equal((await request(admin.url + '/pools/web/backends/a/drain', { method: 'POST' })).status, 200)
  t.match(await drained, { pools: [{ next: 'b', backends: [{ id: 'a', state: 'draining' }, { id: 'b', state: 'up' }] }] })

  // Right after a tick, three changes at once: one snapshot before the next tick shows them all.
  const tick = await stream.next()
  balancer.app.goload.undrain('a')
  balancer.app.goload.drain('b')
  balancer.app.goload.undrain('b')
  const change = await stream.next()
  t.ok(change.at - tick.at < 400, `${change.at - tick.at} ms after the tick: sent for the change`)
  t.match(change.pools[0].backends, [{ state: 'up' }, { state: 'up' }])
  const next = await stream.next()
  t.ok(next.at - tick.at >= 400, 'the next one is the tick\'s: one snapshot for the three changes')
})

t.test('a pool\'s circuit opening shows at once, with its seconds left', async (t) => {
  const failing = await startBackend(t, (req, res) => { req.resume(); res.statusCode = 500; res.end() })
  const balancer = await startBalancer(t, { name: 'web', backends: [failing.url], passiveHealth: false, circuitBreaker: { minRequests: 1, openFor: 60_000 } })
  const admin = await startAdminOf(t, balancer)
  const stream = await openEvents(t, admin.url)
  t.match(await stream.first(), { pools: [{ circuit: { state: 'closed', retryAfter: null } }] })
  const tick = await stream.next()
  t.equal((await request(balancer.url + '/')).status, 500, 'one failure of one opens it')
  const change = await stream.next()
  t.ok(change.at - tick.at < 400, `${change.at - tick.at} ms after the tick: sent for the change`)
  t.match(change.pools[0], { circuit: { state: 'open', retryAfter: 60, transitions: { open: 1 } }, retryBudget: null })
})

t.test('latency p50/p99 and requests/s after some traffic; slow start as a percent', async (t) => {
  const slow = await startBackend(t, (req, res) => { req.resume(); setTimeout(() => res.end('slow'), 15) })
  const balancer = await startBalancer(t, { name: 'web', backends: [slow.url], slowStart: 60_000 })
  const admin = await startAdminOf(t, balancer)
  for (let i = 0; i < 20; i++) t.equal((await request(balancer.url + '/')).status, 200)
  const stream = await openEvents(t, admin.url)
  const { pools: [pool] } = await stream.first()
  const { latency } = pool.backends[0]
  t.ok(latency.p50 !== null && latency.p50 >= 10 && latency.p50 <= 50, `p50 ${latency.p50} ms`)
  t.ok(latency.p99 !== null && latency.p99 >= latency.p50! && latency.p99 <= 100, `p99 ${latency.p99} ms`)
  t.ok(pool.p99 !== null && pool.p99 >= 10)
  t.equal(pool.requests, 20)
  t.ok(pool.rate > 0, `rate ${pool.rate}/s`)

  const c = await startBackend(t, hello('c'))
  const added = stream.next((snapshot) => snapshot.pools[0].backends.length === 2, 1000)
  t.equal((await request(admin.url + '/pools/web/backends', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: c.url, weight: 2 }) })).status, 201)
  t.match((await added).pools[0].backends[1], { url: c.url, weight: 2, state: 'slow-start', slowStart: 10 })
})

/**
 * An admin over a pool whose snapshots are about `megabytes` MB (1: a client that does not read fills its socket in a
 * few of them; 6: the first alone overfills it), and such a client: `rest()` reads what its socket still holds until
 * the server's end of it.
 */
async function stuckOnBigSnapshots (t: Test, { megabytes = 1, streamMaxAge }: { megabytes?: number, streamMaxAge?: number } = {}) {
  const pool = new Pool({ strategy: 'least-busy', slowStart: 0, maxEjectedPercent: 100, queue: { max: 0, timeout: 1000 }, ewmaDecay: 10_000 },
    Array.from({ length: megabytes * 10 }, (_, i) => ({ id: `${i}-${'x'.repeat(100_000)}`, url: `http://b${i}.test:80`, weight: 1, maxPending: Infinity })))
  const logs = capturedLogs('info')
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, source: () => [{ name: 'big', pool, config: {} as PoolConfig }], log: Fastify({ logger: logs.logger }).log, streamMaxAge })
  t.teardown(() => admin.close())
  const stuck = net.connect(admin.port, '127.0.0.1')
  stuck.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  stuck.pause()
  t.teardown(() => stuck.destroy())
  const rest = async (): Promise<string> => {
    let received = ''
    stuck.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
    stuck.resume()
    await deadline(new Promise((resolve) => stuck.once('close', resolve)), 30_000, 'the cut stream to close')
    return received
  }
  return { admin, logs, rest }
}

t.test('a client that does not read is cut, while one that reads goes on', async (t) => {
  const { admin, logs, rest } = await stuckOnBigSnapshots(t)
  const reader = await openEvents(t, admin.url)
  await waitFor(() => logs.warnings().length > 0, 'the stuck client to be cut', 15_000)
  t.match(logs.warnings()[0].msg, /^goload admin: cut an event stream to 127\.0\.0\.1 that stopped reading$/)
  // A reader more than `patience` snapshots behind (a machine too loaded to read 2 MB a second) is cut as well: say so
  // here, rather than wait for the stuck one's end below.
  t.equal(reader.response.destroyed, false, 'the one cut is not the reader')
  // Once it reads again, what the socket held runs out, and the stream ends without its last chunk: it was cut.
  const received = await rest()
  t.notOk(received.endsWith('0\r\n\r\n'), 'not ended properly')
  t.ok(received.length < 30 * 1_000_000, `${received.length} bytes held at most`)
  await reader.next()
  t.equal(reader.response.destroyed, false, 'the reader is still connected')
  t.equal(logs.warnings().length, 1)
})

t.test('a stream whose time is up while its socket is full is cut a tick later: its end cannot get through', async (t) => {
  // Its first snapshot is more than the socket takes: it is still being written when the stream's time is up.
  const { logs, rest } = await stuckOnBigSnapshots(t, { megabytes: 6, streamMaxAge: 1 })
  await waitFor(() => logs.warnings().length > 0, 'the stuck client to be cut', 5000)
  t.match(logs.warnings()[0].msg, /^goload admin: cut an event stream to 127\.0\.0\.1 that stopped reading$/)
  const received = await rest()
  t.notMatch(received, /event: reconnect/, 'its last event was never sent')
  t.notOk(received.endsWith('0\r\n\r\n'), 'not ended properly')
  t.equal(logs.warnings().length, 1)
})

t.test('a stream ends after streamMaxAge with event: reconnect, and one whose client stopped reading ends too, however small its snapshots', async (t) => {
  const balancer = await startBalancer(t, { name: 'web', backends: ['http://127.0.0.1:1'] })
  const admin = await startAdminOf(t, balancer, { streamMaxAge: 1000 })
  // Small snapshots never fill a socket that is not read: only the stream's age can end it.
  const stuck = net.connect(admin.port, '127.0.0.1')
  t.teardown(() => stuck.destroy())
  stuck.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  stuck.pause()
  const opened = Date.now()
  const reader = await openEvents(t, admin.url)
  await reader.first()
  await deadline(reader.ended, 5000, 'the reading stream to end')
  const age = Date.now() - opened
  t.ok(age >= 900 && age < 3000, `ended ${age} ms after it opened`)
  t.same(reader.others, [{ event: 'reconnect', data: 'this stream has lasted its time: open a new one' }], 'asked to reconnect')
  t.equal(reader.response.complete, true, 'ended properly, not cut')
  t.equal(reader.response.headers.connection, 'close', 'the connection ends with it')
  t.ok(reader.snapshots.length >= 2, `${reader.snapshots.length} snapshots before`)

  // The one not reading was ended by then: what it finds once it reads is the whole stream, up to its end.
  let received = ''
  stuck.setEncoding('latin1').on('data', (chunk: string) => { received += chunk })
  stuck.resume()
  await deadline(new Promise((resolve) => stuck.once('close', resolve)), 1000, 'the stuck stream to be over')
  t.match(received, /event: reconnect\ndata: this stream has lasted its time: open a new one\n\n\r\n0\r\n\r\n$/)
  t.equal((await openEvents(t, admin.url)).response.statusCode, 200, 'a new stream opens')
})

t.test('close() ends the streams, stops the timer and lets go of the pools: nothing reads them afterwards', async (t) => {
  const balancer = await startBalancer(t, { name: 'web', backends: ['http://127.0.0.1:1'] })
  // Each tick and each change's snapshot reads the source: counting its calls shows whether the admin still works.
  const counted = (count: { calls: number }) => () => { count.calls++; return poolsOf(balancer)() }
  const closed = { calls: 0 }
  const control = { calls: 0 }
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, source: counted(closed), log: Fastify({ logger: false }).log })
  await startAdminOf(t, balancer, { source: counted(control) })
  const stream = await openEvents(t, admin.url)
  await stream.first()
  await stream.next()
  await admin.close()
  await deadline(stream.ended, 1000, 'the stream to end')
  t.equal(stream.response.complete, true, 'ended properly')
  const after = closed.calls
  // A change, then two of the other admin's ticks: time for the closed one to have ticked and published, had it not stopped.
  balancer.app.goload.drain('http://127.0.0.1:1')
  const ticks = control.calls
  await waitFor(() => control.calls >= ticks + 4, 'two ticks of the other admin')
  t.equal(closed.calls, after, 'the closed admin read nothing more')
  t.equal(stream.snapshots.length, 2)
})
