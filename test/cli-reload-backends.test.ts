// A reload keeps a pool whose settings are unchanged, and brings its backends to what the file says, each kept one
// with its counts: DNS-discovered backends stay the discovery's, and a backend's weight, maxPending and tls apply
// in place. main() runs in this process; the pools are read through the admin's /stats.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { TLSSocket } from 'node:tls'
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import type { Test } from 'tap'
import type { Snapshot } from '../lib/admin/snapshot.js'
import { request } from './helpers/client.js'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { startBackend, waitFor } from './helpers/servers.js'
import { startTlsBackend, TestPki } from './helpers/tls.js'

/** goload on a JSON config of one listener and one pool `web` with these options, its admin on a port of its own. */
async function start (t: Test, pool: Record<string, unknown>) {
  const [port, adminPort] = [await freePort(), await freePort()]
  const text = (options: Record<string, unknown>) => JSON.stringify({
    listeners: [{ port, host: '127.0.0.1', routes: [{ pool: 'web' }] }],
    pools: { web: options },
    admin: { port: adminPort }
  })
  const file = await configFile(t, text(pool), 'goload.json')
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  let reloads = 0
  return {
    url: `http://127.0.0.1:${port}`,
    stats: async () => (JSON.parse((await request(`http://127.0.0.1:${adminPort}/stats`)).body) as Snapshot).pools[0],
    /** Writes the pool's new options and reloads. */
    reload: async (options: Record<string, unknown>) => {
      await writeFile(file, text(options))
      run.signals.emit('SIGHUP', 'SIGHUP')
      reloads++
      await waitFor(() => (run.logs().match(/config reloaded|reload failed/g) ?? []).length >= reloads, `reload ${reloads}`)
      t.notMatch(run.logs(), /reload failed/)
    }
  }
}

/** A backend that holds requests to /slow until let go (`held`), and answers others at once with its name. */
async function holding (t: Test, name: string) {
  const held: Array<() => void> = []
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    if (req.url === '/slow') held.push(() => res.end(name))
    else res.end(name)
  })
  return { url: backend.url, held }
}

t.test('a SIGHUP, the file unchanged, leaves DNS-discovered backends alone', async (t) => {
  const backend = await startBackend(t, (req, res) => { req.resume(); res.end('via localhost') })
  const pool = { backends: [{ url: `http://localhost:${new URL(backend.url).port}`, id: 'api', resolve: { interval: 60000 } }] }
  const goload = await start(t, pool)
  const before = await goload.stats()
  t.ok(before.backends.some((b) => b.id === 'api#127.0.0.1'), 'localhost resolved to 127.0.0.1')
  await goload.reload(pool)
  await goload.reload(pool)
  const after = await goload.stats()
  t.same(after.backends.map((b) => [b.id, b.draining]), before.backends.map((b) => [b.id, false]), 'the same backends, none draining, no bare hostname added')
  t.equal((await request(goload.url + '/')).body, 'via localhost')
})

t.test('a backend\'s weight changed in the file applies at once, its requests in flight still counted', async (t) => {
  const [a, b] = [await holding(t, 'a'), await holding(t, 'b')]
  const goload = await start(t, { backends: [a.url, b.url] })
  const slowA = request(goload.url + '/slow')
  const slowB = request(goload.url + '/slow')
  await waitFor(() => a.held.length === 1 && b.held.length === 1, 'a request held at each')
  await goload.reload({ backends: [a.url, { url: b.url, weight: 3 }] })
  t.same((await goload.stats()).backends.map((backend) => [backend.weight, backend.pending]), [[1, 1], [3, 1]])
  // One in flight each: 1/1 at a against 1/3 at b, so b takes every next one. At equal weights they would alternate.
  for (let i = 0; i < 4; i++) t.equal((await request(goload.url + '/')).body, 'b')
  a.held[0]()
  b.held[0]()
  t.equal((await slowA).status, 200)
  t.equal((await slowB).status, 200)
})

t.test('a backend\'s maxPending raised in the file serves the queue at once', async (t) => {
  const a = await holding(t, 'a')
  const goload = await start(t, { backends: [{ url: a.url, maxPending: 1 }] })
  const first = request(goload.url + '/slow')
  await waitFor(() => a.held.length === 1, 'the first request at a')
  const second = request(goload.url + '/slow')
  for (let i = 0; (await goload.stats()).queued === 0; i++) if (i === 1000) throw new Error('the second request never queued')
  await goload.reload({ backends: [{ url: a.url, maxPending: 2 }] })
  await waitFor(() => a.held.length === 2, 'the queued request to reach a', 3000)
  t.equal((await goload.stats()).queued, 0)
  for (const release of a.held) release()
  t.same([(await first).status, (await second).status], [200, 200])
})

t.test('a backend\'s tls changed in the file connects anew: a client certificate added is sent from the next request', async (t) => {
  const pki = new TestPki()
  t.teardown(() => { pki.close() })
  const ca = pki.ca('goload test CA')
  const server = pki.server(ca, { ip: ['127.0.0.1'] })
  const client = pki.client(ca, 'goload-client')
  // Asks for a client certificate without requiring one, and says whose it got on this connection.
  const backend = await startTlsBackend(t, { ...server, ca: ca.cert, requestCert: true, rejectUnauthorized: false }, (req: IncomingMessage, res: ServerResponse) => {
    req.resume()
    const subject = (req.socket as TLSSocket).getPeerCertificate().subject
    res.end(subject === undefined ? 'anonymous' : subject.CN)
  })
  const goload = await start(t, { backends: [{ url: backend.url, tls: { ca: ca.cert } }] })
  t.equal((await request(goload.url + '/')).body, 'anonymous')
  await goload.reload({ backends: [{ url: backend.url, tls: { ca: ca.cert, cert: client.cert, key: client.key } }] })
  t.equal((await request(goload.url + '/')).body, 'goload-client', 'over a new connection, with the certificate')
  await goload.reload({ backends: [{ url: backend.url, tls: { ca: ca.cert } }] })
  t.equal((await request(goload.url + '/')).body, 'anonymous', 'and back')
})
