import http from 'node:http'
import { once } from 'node:events'
import { randomBytes } from 'node:crypto'
import { test, type Test } from 'tap'
import goload, { type MirrorOptions } from '../lib/index.js'
import { mirrorCounts, type MirrorCounts } from '../lib/policy/mirror-counts.js'
import type { Registry } from '../lib/registry.js'
import Fastify, { type FastifyInstance } from 'fastify'
import { configFile, freePort, runMain, spawnGoload } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { h2Connect, h2Request } from './helpers/h2-client.js'
import { connect, getOnSocket } from './helpers/raw.js'
import { deadUrl, startBackend, startBalancer, waitFor, type Backend } from './helpers/servers.js'
import { parseExposition, sample } from './helpers/prometheus.js'
import { nextMessage, openWs, startWsBackend } from './helpers/ws.js'

interface Seen { method: string, url: string, headers: http.IncomingHttpHeaders, body: Buffer }

/** A backend that keeps every request it read whole; `answer` decides what it does then (default: 200 "ok <id>"). */
async function recorder (t: Test, id: string, answer?: (response: http.ServerResponse, index: number) => void): Promise<Backend & { seen: Seen[] }> {
  const seen: Seen[] = []
  const backend = await startBackend(t, (request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => { chunks.push(chunk) })
    request.on('end', () => {
      seen.push({ method: request.method!, url: request.url!, headers: request.headers, body: Buffer.concat(chunks) })
      if (answer === undefined) response.end(`ok ${id}`)
      else answer(response, seen.length - 1)
    })
  })
  return Object.assign(backend, { seen })
}

/** Holds each request unanswered until the test ends (its server closes every connection then). */
const hang = (): void => {}

/** A balancer whose /api route (rewritten to /v1) sends to `primary` and mirrors to the pool "next" of `mirrorUrl`. */
async function mirrored (t: Test, primary: string, mirrorUrl: string, mirror: Partial<MirrorOptions> = {}, timeout?: number, server: object = {}): Promise<{ app: FastifyInstance, port: number, url: string, counts: () => MirrorCounts }> {
  const balancer = await startBalancer(t, { backends: [primary], prefix: '/api', rewritePrefix: '/v1', metrics: true, mirror: { pool: 'next', ...mirror } }, server, async (app) => {
    await app.register(goload, { name: 'next', prefix: '/next', backends: [mirrorUrl], retries: 0, passiveHealth: false, timeout })
  })
  const pool = (balancer.app.goload as Registry).entries().find(({ name }) => name === 'next')!.pool
  return { ...balancer, counts: () => mirrorCounts(pool)! }
}

/** One request through a new connection; `body` chunks are written one by one (chunked, unless a length is given). */
async function send (url: string, path: string, { method = 'GET', headers = {}, body }: { method?: string, headers?: http.OutgoingHttpHeaders, body?: Buffer[] } = {}): Promise<{ status: number, text: string }> {
  return await new Promise((resolve, reject) => {
    const request = http.request(`${url}${path}`, { method, headers, agent: false }, (response) => {
      let text = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
      response.on('end', () => { resolve({ status: response.statusCode!, text }) })
    }).on('error', reject)
    for (const chunk of body ?? []) request.write(chunk)
    request.end()
  })
}

const mirrorPending = (app: FastifyInstance): number => app.goload.pool('next').stats().backends[0].pending

test('percent 100: the mirror backend gets the method, target, headers and body the primary gets, streamed bodies byte for byte', async (t) => {
  const primary = await recorder(t, 'primary')
  const mirror = await recorder(t, 'mirror')
  const { url, app, counts } = await mirrored(t, primary.url, mirror.url)

  // 320 KiB in 8 KiB chunks, chunked: past bufferBody, so the primary streams it as it comes.
  const chunks = Array.from({ length: 40 }, () => randomBytes(8192))
  const headers = { 'content-type': 'application/octet-stream', 'x-custom': 'a', connection: 'keep-alive, x-hop', 'x-hop': 'gone' }
  const streamed = await send(url, '/api/items?x=1', { method: 'PUT', headers, body: chunks })
  t.same(streamed, { status: 200, text: 'ok primary' })
  const small = await send(url, '/api/small', { method: 'POST', headers: { 'content-length': '5', 'x-custom': 'b' }, body: [Buffer.from('hello')] })
  t.same(small, { status: 200, text: 'ok primary' })
  await waitFor(() => counts().sent === 2, 'both copies answered')

  t.equal(mirror.seen.length, 2)
  for (const [index, copy] of mirror.seen.entries()) {
    const original = primary.seen[index]
    t.equal(copy.method, original.method)
    t.equal(copy.url, original.url, 'the target as the primary sends it, prefix rewritten')
    t.equal(Buffer.compare(copy.body, original.body), 0, 'the same body bytes')
    t.equal(copy.headers['x-goload-mirror'], '1', 'a copy says it is one')
    t.equal(original.headers['x-goload-mirror'], undefined)
    t.equal(copy.headers.host, new URL(mirror.url).host, 'the mirror backend\'s own Host, as the primary gets its own')
    const { host: _copyHost, 'x-goload-mirror': _mark, ...copied } = copy.headers
    const { host: _host, ...sent } = original.headers
    t.same(copied, sent, 'the headers as forwarded')
  }
  t.equal(primary.seen[0].url, '/v1/items?x=1')
  t.equal(Buffer.compare(primary.seen[0].body, Buffer.concat(chunks)), 0)
  t.equal(mirror.seen[0].headers['transfer-encoding'], 'chunked')
  t.equal(mirror.seen[0].headers['x-hop'], undefined, 'a header the client\'s Connection names stays on its hop')
  t.equal(mirror.seen[1].headers['content-length'], '5')
  t.equal(mirror.seen[1].headers['x-custom'], 'b')

  await waitFor(() => mirrorPending(app) === 0, 'the mirror backend released')
  const metrics = parseExposition(await app.goload.metrics!.metrics())
  t.equal(sample(metrics, 'goload_mirror_requests_total', { pool: 'next', result: 'sent' }), 2)
  t.equal(sample(metrics, 'goload_mirror_requests_total', { pool: 'next', result: 'failed' }), 0)
  t.equal(sample(metrics, 'goload_mirror_requests_total', { pool: 'next', result: 'skipped' }), 0)
  t.equal(sample(metrics, 'goload_backend_requests_total', { pool: 'next', backend: mirror.url, code: '2xx' }), 2, 'counted on the mirror pool\'s backend')
  t.equal(sample(metrics, 'goload_mirror_requests_total', { pool: primaryPoolName(app), result: 'sent' }), undefined, 'no mirror series for a pool nobody mirrors to')
})

function primaryPoolName (app: FastifyInstance): string {
  return app.goload.names().find((name) => name !== 'next')!
}

test('a mirror that never answers: each response comes while its copy is still open, on the same keep-alive connection', async (t) => {
  const primary = await recorder(t, 'primary')
  const mirror = await recorder(t, 'mirror', hang)
  const { port, app, counts } = await mirrored(t, primary.url, mirror.url)
  const socket = await connect(t, port)

  const first = await getOnSocket(socket, '/api/one', 'example.com')
  t.match(first, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(first, /ok primary$/)
  t.notMatch(first, /connection: close/i)
  // Still open: its backend holds it, unanswered, and it counts on that backend.
  await waitFor(() => mirror.seen.length === 1, 'the first copy to reach the mirror')
  t.equal(mirror.active, 1)
  const second = await getOnSocket(socket, '/api/two', 'example.com')
  t.match(second, /ok primary$/, 'the next request on the connection is not held by the open copy')
  await waitFor(() => mirror.seen.length === 2, 'the second copy to reach the mirror')
  t.equal(mirror.active, 2, 'both copies still open')
  t.equal(mirrorPending(app), 2, 'each copy counts as load on the mirror pool\'s backend')
  t.same(counts(), { sent: 0, failed: 0, skipped: { too_large: 0, in_flight: 0, no_backend: 0, incomplete_body: 0 } })
  t.same(primary.seen.map(({ url }) => url), ['/v1/one', '/v1/two'])
  t.same(app.goload.pool(primaryPoolName(app)).stats().backends.map(({ pending }) => pending), [0])
})

test('an HTTP/2 client\'s requests are copied with their bodies, without pseudo-headers', async (t) => {
  const primary = await recorder(t, 'primary')
  const mirror = await recorder(t, 'mirror')
  const { url, counts } = await mirrored(t, primary.url, mirror.url, {}, undefined, { http2: true, forceCloseConnections: true })
  const session = await h2Connect(t, url)
  const answer = await h2Request(session, { ':path': '/api/h2?x=1', 'x-custom': 'h2' }, 'over h2')
  t.same([answer.status, answer.body], [200, 'ok primary'])
  // No content-length: the body's end says how long it is.
  const stream = session.request({ ':method': 'PUT', ':path': '/api/streamed' })
  const parts = [randomBytes(70_000), randomBytes(70_000)]
  stream.write(parts[0])
  stream.end(parts[1])
  stream.resume()
  await once(stream, 'end')
  await waitFor(() => counts().sent === 2, 'both copies answered')
  t.same(mirror.seen.map(({ method, url }) => [method, url]), [['POST', '/v1/h2?x=1'], ['PUT', '/v1/streamed']])
  t.equal(mirror.seen[0].body.toString(), 'over h2')
  t.equal(mirror.seen[0].headers['x-custom'], 'h2')
  t.equal(Object.keys(mirror.seen[0].headers).some((name) => name.startsWith(':')), false)
  t.equal(Buffer.compare(mirror.seen[1].body, Buffer.concat(parts)), 0)
  t.equal(Buffer.compare(primary.seen[1].body, Buffer.concat(parts)), 0)
})

test('a copy the mirror never answers fails after the mirror pool\'s timeout, and its backend is released', async (t) => {
  const primary = await recorder(t, 'primary')
  const mirror = await recorder(t, 'mirror', hang)
  const { url, app, counts } = await mirrored(t, primary.url, mirror.url, {}, 300)
  t.same(await send(url, '/api/slow'), { status: 200, text: 'ok primary' })
  await waitFor(() => counts().failed === 1, 'the copy to time out')
  t.equal(mirrorPending(app), 0)
  t.equal(app.goload.pool('next').stats().backends[0].failed, 1)
  const metrics = parseExposition(await app.goload.metrics!.metrics())
  t.equal(sample(metrics, 'goload_backend_failures_total', { pool: 'next', backend: mirror.url, reason: 'timeout' }), 1)
})

test('a mirror that never reads its copy\'s body does not hold back the primary\'s streamed one', async (t) => {
  const primary = await recorder(t, 'primary')
  // Takes the request head, then reads nothing and answers nothing: the copy's body fills the socket and stops.
  const stuck = await startBackend(t, hang)
  const { url, app } = await mirrored(t, primary.url, stuck.url)
  // 1 MiB, chunked: far more than the sockets between goload and the mirror can hold unread.
  const chunks = Array.from({ length: 64 }, () => randomBytes(16_384))
  t.same(await send(url, '/api/upload', { method: 'POST', body: chunks }), { status: 200, text: 'ok primary' })
  t.equal(Buffer.compare(primary.seen[0].body, Buffer.concat(chunks)), 0, 'the primary got it whole')
  await waitFor(() => stuck.received === 1, 'the copy to reach the stuck mirror')
  t.equal(mirrorPending(app), 1, 'the copy still open')
  t.same(await send(url, '/api/next'), { status: 200, text: 'ok primary' })
})

test('a mirror that is down, resets or answers 500: the client sees only the primary', async (t) => {
  const primary = await recorder(t, 'primary')
  const down = await mirrored(t, primary.url, await deadUrl())
  const socket = await connect(t, down.port)
  for (const path of ['/api/a', '/api/b', '/api/c']) t.match(await getOnSocket(socket, path, 'example.com'), /^HTTP\/1\.1 200 OK\r\n[^]*ok primary$/)
  await waitFor(() => down.counts().failed === 3, 'three copies refused')
  t.equal(mirrorPending(down.app), 0, 'each refused copy released')
  t.equal(down.app.goload.pool('next').stats().backends[0].failed, 3, 'counted as failures of the mirror backend')

  const flaky = await recorder(t, 'flaky', (response, index) => {
    if (index === 0) response.writeHead(500).end('broken')
    else response.socket!.destroy()
  })
  const broken = await mirrored(t, primary.url, flaky.url)
  t.same(await send(broken.url, '/api/x'), { status: 200, text: 'ok primary' })
  await waitFor(() => broken.counts().sent === 1, 'the 500 read')
  t.same(await send(broken.url, '/api/y'), { status: 200, text: 'ok primary' })
  await waitFor(() => broken.counts().failed === 1, 'the reset counted')
  await waitFor(() => mirrorPending(broken.app) === 0, 'both copies released')
})

test('a body over maxBody is not mirrored, counted skipped, and reaches the primary whole', async (t) => {
  const primary = await recorder(t, 'primary')
  const mirror = await recorder(t, 'mirror')
  const { url, counts, app } = await mirrored(t, primary.url, mirror.url, { maxBody: 1000 })

  const declared = randomBytes(5000)
  t.same(await send(url, '/api/declared', { method: 'POST', headers: { 'content-length': '5000' }, body: [declared] }), { status: 200, text: 'ok primary' })
  t.equal(counts().skipped.too_large, 1, 'a Content-Length over maxBody: skipped at once')
  const grown = [randomBytes(600), randomBytes(600), randomBytes(600)]
  t.same(await send(url, '/api/grown', { method: 'POST', body: grown }), { status: 200, text: 'ok primary' })
  await waitFor(() => counts().skipped.too_large === 2, 'the chunked body that grew past maxBody skipped')
  const fits = [randomBytes(500), randomBytes(500)]
  t.same(await send(url, '/api/fits', { method: 'POST', body: fits }), { status: 200, text: 'ok primary' })
  await waitFor(() => counts().sent === 1, 'the body of exactly maxBody mirrored')

  t.equal(Buffer.compare(primary.seen[0].body, declared), 0)
  t.equal(Buffer.compare(primary.seen[1].body, Buffer.concat(grown)), 0)
  t.same(mirror.seen.map(({ url }) => url), ['/v1/fits'])
  t.equal(Buffer.compare(mirror.seen[0].body, Buffer.concat(fits)), 0)
  const metrics = parseExposition(await app.goload.metrics!.metrics())
  t.equal(sample(metrics, 'goload_mirror_requests_total', { pool: 'next', result: 'skipped' }), 2)
  t.equal(sample(metrics, 'goload_mirror_skipped_total', { pool: 'next', reason: 'too_large' }), 2)
})

test('past maxInFlight copies open, a request is not mirrored and counted skipped', async (t) => {
  const primary = await recorder(t, 'primary')
  const mirror = await recorder(t, 'mirror', hang)
  const { url, counts, app } = await mirrored(t, primary.url, mirror.url, { maxInFlight: 2 })
  for (const path of ['/api/1', '/api/2', '/api/3']) t.same(await send(url, path), { status: 200, text: 'ok primary' })
  t.equal(counts().skipped.in_flight, 1)
  await waitFor(() => mirror.seen.length === 2, 'two copies at the mirror')
  t.same(mirror.seen.map(({ url }) => url), ['/v1/1', '/v1/2'])
  const metrics = parseExposition(await app.goload.metrics!.metrics())
  t.equal(sample(metrics, 'goload_mirror_skipped_total', { pool: 'next', reason: 'in_flight' }), 1)
})

test('percent: 0 copies nothing; 30 copies exactly 3 requests in 10, evenly spread', async (t) => {
  const primary = await recorder(t, 'primary')
  const none = await recorder(t, 'none')
  const some = await recorder(t, 'some')
  const off = await mirrored(t, primary.url, none.url, { percent: 0 })
  const third = await mirrored(t, primary.url, some.url, { percent: 30 })
  for (let i = 1; i <= 10; i++) {
    t.same(await send(off.url, `/api/${i}`), { status: 200, text: 'ok primary' })
    t.same(await send(third.url, `/api/${i}`), { status: 200, text: 'ok primary' })
  }
  await waitFor(() => third.counts().sent === 3, 'three copies answered')
  t.same(some.seen.map(({ url }) => url), ['/v1/4', '/v1/7', '/v1/10'])
  t.equal(none.seen.length, 0)
  t.same(off.counts(), { sent: 0, failed: 0, skipped: { too_large: 0, in_flight: 0, no_backend: 0, incomplete_body: 0 } })
})

test('WebSocket upgrades are never mirrored', async (t) => {
  const primary = await startWsBackend(t, 'ws')
  const mirror = await recorder(t, 'mirror')
  const { url, counts } = await mirrored(t, primary.url, mirror.url)
  const ws = await openWs(t, `${url.replace('http', 'ws')}/api/socket`)
  ws.send('who')
  t.equal(String((await nextMessage(ws)).data), 'ws')
  t.same(await send(url, '/api/after'), { status: 200, text: 'Hello from ws' })
  await waitFor(() => counts().sent === 1, 'the plain request mirrored')
  t.same(mirror.seen.map(({ url }) => url), ['/v1/after'], 'the upgrade was not')
})

test('mirror options are checked by key', async (t) => {
  const backend = await recorder(t, 'b')
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ pool: 'nope' }, /mirror\.pool: no pool named "nope" is registered before this route \(pools: next\)/],
    [{ pool: 'next', percent: 150 }, /mirror\.percent must be a number from 0 to 100, got 150/],
    [{ pool: 'next', percnt: 10 }, /mirror has an unknown field "percnt" \(did you mean percent\?\)/],
    [{ pool: 'next', maxInFlight: 0 }, /mirror\.maxInFlight must be a positive integer, got 0/],
    [{ percent: 10 }, /mirror.*pool/]
  ]
  for (const [mirror, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await app.register(goload, { name: 'next', prefix: '/next', backends: [backend.url] })
    await t.rejects(async () => { await app.register(goload, { backends: [backend.url], prefix: '/api', mirror: mirror as unknown as MirrorOptions }) }, message)
  }
  const own = Fastify()
  t.teardown(() => own.close())
  await own.register(goload, { name: 'next', prefix: '/next', backends: [backend.url] })
  await t.rejects(async () => { await own.register(goload, { pool: 'next', prefix: '/api', mirror: { pool: 'next' } }) }, /mirror\.pool: "next" is the route's own pool/)
})

test('from a config file: --check names a mirror pool that is not there, and the built command mirrors, counts and shows the copies', async (t) => {
  const typo = await configFile(t, `listeners:
  - port: 8080
    routes:
      - { path: /api, pool: web, mirror: { pool: nxt } }
      - { path: /own, pool: web, mirror: { pool: web } }
pools:
  web: { backends: ['http://127.0.0.1:3001'] }
  next: { backends: ['http://127.0.0.1:3002'] }
`)
  const check = runMain(t, ['--check', '--config', typo])
  t.equal(await check.code, 1)
  t.match(check.stderr(), /goload\.yaml:4: listeners\[0\]\.routes\[0\]\.mirror\.pool: no pool named "nxt" \(did you mean next\?\)/)
  t.match(check.stderr(), /goload\.yaml:5: listeners\[0\]\.routes\[1\]\.mirror\.pool: "web" is the route's own pool/)
  const percent = runMain(t, ['--check', '--config', await configFile(t, 'listeners: [{ port: 8080, routes: [{ pool: web, mirror: { pool: next, percent: 200 } }] }]\npools: { web: { backends: [\'http://127.0.0.1:3001\'] }, next: { backends: [\'http://127.0.0.1:3002\'] } }\n')])
  t.equal(await percent.code, 1)
  t.match(percent.stderr(), /goload\.yaml:1: listeners\[0\]\.routes\[0\]\.mirror\.percent: must be a number from 0 to 100, got 200/)

  const primary = await recorder(t, 'primary')
  const mirror = await recorder(t, 'mirror')
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = await configFile(t, `listeners:
  - port: ${port}
    host: 127.0.0.1
    routes:
      - { path: /api, rewritePrefix: /v1, pool: web, mirror: { pool: next, percent: 50 } }
pools:
  web: { backends: ['${primary.url}'] }
  next: { backends: ['${mirror.url}'] }
admin:
  port: ${adminPort}
`)
  const run = spawnGoload(t, ['--config', file])
  // Generous: a loaded machine has taken 9 s to start the command.
  await waitFor(() => /goload listening/.test(run.stdout), 'goload to listen', 60_000)
  for (const name of ['one', 'two']) {
    t.same(await send(`http://127.0.0.1:${port}`, `/api/${name}`, { method: 'POST', headers: { 'content-length': '4' }, body: [Buffer.from(name.padEnd(4, '!'))] }), { status: 200, text: 'ok primary' })
  }
  await waitFor(() => mirror.seen.length === 1, 'one copy in two')
  t.match(mirror.seen[0], { method: 'POST', url: '/v1/two', headers: { 'x-goload-mirror': '1' } })
  t.equal(mirror.seen[0].body.toString(), 'two!')
  const admin = `http://127.0.0.1:${adminPort}`
  let metrics = parseExposition('')
  for (let tries = 0; sample(metrics, 'goload_mirror_requests_total', { pool: 'next', result: 'sent' }) !== 1; tries++) {
    if (tries === 100) throw new Error('the copy was never counted sent')
    metrics = parseExposition((await request(`${admin}/metrics`)).body)
  }
  const { pools } = JSON.parse((await request(`${admin}/stats`)).body) as { pools: Array<{ name: string, mirror: MirrorCounts | null }> }
  t.same(pools.map(({ name, mirror }) => [name, mirror?.sent ?? null]), [['web', null], ['next', 1]], 'the status page\'s data: the counts on the mirror pool')
})
