// The admin API on its own listener (lib/admin): auth, the page's files, /stats, /metrics and the runtime actions,
// over a balancer's live pools, with real HTTP both sides.
import http from 'node:http'
import Fastify from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import { isLoopback } from '../lib/admin/auth.js'
import { startAdmin } from '../lib/admin/server.js'
import { openEvents, poolsOf, startAdminOf } from './helpers/admin.js'
import { request } from './helpers/client.js'
import { freePort } from './helpers/cli.js'
import { hello, startBackend, startBalancer, waitFor } from './helpers/servers.js'

const token = 'correct-horse-battery-staple'
const auth = { authorization: `Bearer ${token}` }
const json = (body: string): unknown => JSON.parse(body)
const log = Fastify({ logger: false }).log

async function setup (t: Test, options: { token?: string } = {}) {
  const a = await startBackend(t, hello('a'))
  const b = await startBackend(t, hello('b'))
  const balancer = await startBalancer(t, { name: 'web', backends: [a.url, { url: b.url, id: 'b' }] })
  const admin = await startAdminOf(t, balancer, options)
  return { a, b, balancer, admin }
}

t.test('with a token: data and actions answer 401 without it or with a wrong one, 200 with it; the page needs none', async (t) => {
  const { admin, a } = await setup(t, { token })
  const drain = `/pools/web/backends/${encodeURIComponent(a.url)}/drain`
  for (const [method, path] of [['GET', '/stats'], ['GET', '/events'], ['POST', drain], ['POST', '/pools/web/backends'], ['DELETE', '/pools/web/backends/b']]) {
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: `Bearer ${token}x` }, { authorization: `Basic ${token}` }, { authorization: 'Bearer' }]) {
      const answer = await request(admin.url + path, { method, headers })
      t.equal(answer.status, 401, `${method} ${path} with ${JSON.stringify(headers)}`)
      t.equal(answer.headers['www-authenticate'], 'Bearer realm="goload admin"')
      t.same(json(answer.body), { statusCode: 401, code: 'FST_GOLOAD_UNAUTHORIZED', error: 'Unauthorized', message: 'Unauthorized: send the admin token as Authorization: Bearer <token>' })
    }
  }
  t.equal((await request(admin.url + '/stats', { headers: auth })).status, 200)
  t.equal((await request(admin.url + '/stats', { headers: { authorization: `bearer  ${token}` } })).status, 200, 'the scheme in any case')
  const page = await request(admin.url + '/')
  t.equal(page.status, 200, 'the page is open')
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<html/)
  t.equal((await request(admin.url + drain, { method: 'POST', headers: auth })).status, 200)
})

t.test('the page\'s files are served from lib/admin/page with their types; other paths are 404 in the JSON error shape', async (t) => {
  const { admin } = await setup(t)
  const index = await request(admin.url + '/')
  t.equal(index.headers['cache-control'], 'no-cache')
  t.equal((await request(admin.url + '/index.html')).status, 404, 'index.html is at /')
  const missing = await request(admin.url + '/../package.json')
  t.equal(missing.status, 404)
  const nothing = await request(admin.url + '/nothing')
  t.match(json(nothing.body), { statusCode: 404, code: 'FST_GOLOAD_NO_ROUTE', error: 'Not Found', message: /^no admin route GET \/nothing: the admin has GET \/stats, /u })
})

t.test('GET /stats: every pool with its backends, stats() names and values plus state and latency', async (t) => {
  const { admin, a, balancer } = await setup(t)
  for (let i = 0; i < 4; i++) t.equal((await request(balancer.url + '/')).status, 200)
  const answer = await request(admin.url + '/stats')
  t.equal(answer.status, 200)
  t.match(answer.headers['content-type'], /^application\/json/)
  const stats = json(answer.body) as { at: number, pid: number, pools: Array<Record<string, unknown> & { backends: Array<Record<string, unknown>> }> }
  t.equal(stats.pid, process.pid)
  t.ok(Math.abs(stats.at - Date.now()) < 5000)
  const [pool] = stats.pools
  t.match(pool, { name: 'web', strategy: 'least-busy', queued: 0, requests: 4, shed: { queue_full: 0, queue_timeout: 0, no_backend: 0, rate_limited: 0 } })
  t.ok(pool.next === a.url || pool.next === 'b')
  t.type(pool.p99, 'number')
  t.type(pool.rate, 'number')
  const stats0 = balancer.app.goload.stats().backends
  t.same(pool.backends.map(({ state, slowStart, latency, ...rest }) => rest), stats0, 'exactly stats()')
  for (const backend of pool.backends) {
    t.equal(backend.state, 'up')
    t.equal(backend.slowStart, null)
    t.match(backend.latency, { p50: Number, p99: Number })
  }
})

t.test('drain and undrain: 200 { id, draining }, by id or by URL (%2F-encoded), and /stats shows it', async (t) => {
  const { admin, a } = await setup(t)
  const byUrl = `/pools/web/backends/${encodeURIComponent(a.url)}`
  t.match(a.url, /^http:\/\//)
  const drained = await request(admin.url + byUrl + '/drain', { method: 'POST' })
  t.equal(drained.status, 200)
  t.same(json(drained.body), { id: a.url, draining: true })
  let stats = json((await request(admin.url + '/stats')).body) as { pools: Array<{ next: string, backends: Array<{ id: string, draining: boolean, state: string }> }> }
  t.match(stats.pools[0].backends[0], { id: a.url, draining: true, state: 'draining' })
  t.equal(stats.pools[0].next, 'b', 'the heap would pick the other one')

  // An empty body with Content-Type: application/json is no body.
  const undrained = await request(admin.url + byUrl + '/undrain', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' })
  t.equal(undrained.status, 200)
  t.same(json(undrained.body), { id: a.url, draining: false })
  stats = json((await request(admin.url + '/stats')).body) as typeof stats
  t.match(stats.pools[0].backends[0], { draining: false, state: 'up' })
  t.same(json((await request(admin.url + '/pools/web/backends/b/drain', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })).body), { id: 'b', draining: true })
})

t.test('add: 201 with the backend\'s stats; it takes traffic; bad bodies are 400 naming the key', async (t) => {
  const { admin, balancer } = await setup(t)
  const c = await startBackend(t, hello('c'))
  const added = await request(admin.url + '/pools/web/backends', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: c.url, id: 'c', weight: 2 }) })
  t.equal(added.status, 201)
  t.same(json(added.body), { id: 'c', url: c.url, weight: 2, pending: 0, served: 0, failed: 0, retried: 0, upgraded: 0, healthy: true, ejectedUntil: null, draining: false })
  for (let i = 0; i < 8 && c.received === 0; i++) await request(balancer.url + '/')
  t.ok(c.received > 0, 'the added backend takes traffic')

  const bad: Array<[string | undefined, string, RegExp]> = [
    [JSON.stringify({ url: 'http://127.0.0.1:1', weight: -1 }), 'application/json', /body\.weight must be a positive number, got -1/],
    [JSON.stringify({ url: 'ftp://x' }), 'application/json', /body is not a valid http\(s\) or h2c URL: "ftp:\/\/x"/],
    [JSON.stringify({ url: 'http://127.0.0.1:1', colour: 'red' }), 'application/json', /body has an unknown field "colour"/],
    [JSON.stringify({ url: 'http://127.0.0.1:1', resolve: {} }), 'application/json', /body\.resolve is read at register only/],
    [JSON.stringify({ url: c.url, id: 'c' }), 'application/json', /backend "c" is already in pool "web"/],
    ['', 'application/json', /body must be an http\(s\) or h2c URL or a \{ url, id\?, weight\? \} object, got undefined/],
    ['{"url":', 'application/json', /Body is not valid JSON/]
  ]
  for (const [body, type, message] of bad) {
    const answer = await request(admin.url + '/pools/web/backends', { method: 'POST', headers: { 'content-type': type }, body })
    t.equal(answer.status, 400, `${body}`)
    const error = json(answer.body) as { statusCode: number, code: string, error: string, message: string }
    t.match(error, { statusCode: 400, error: 'Bad Request', message })
    t.type(error.code, 'string')
  }
  const unknown = await request(admin.url + '/pools/nope/backends', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: c.url }) })
  t.same(json(unknown.body), { statusCode: 404, code: 'FST_GOLOAD_UNKNOWN_POOL', error: 'Not Found', message: 'fastify-goload: no pool is named "nope"' })
})

t.test('unknown pool or backend: 404 with FST_GOLOAD_UNKNOWN_POOL / _BACKEND on every action', async (t) => {
  const { admin } = await setup(t)
  for (const [method, path, code] of [
    ['POST', '/pools/nope/backends/b/drain', 'FST_GOLOAD_UNKNOWN_POOL'],
    ['POST', '/pools/web/backends/zzz/drain', 'FST_GOLOAD_UNKNOWN_BACKEND'],
    ['POST', '/pools/web/backends/zzz/undrain', 'FST_GOLOAD_UNKNOWN_BACKEND'],
    ['DELETE', '/pools/web/backends/zzz', 'FST_GOLOAD_UNKNOWN_BACKEND'],
    ['DELETE', `/pools/web/backends/${encodeURIComponent('http://127.0.0.1:1')}`, 'FST_GOLOAD_UNKNOWN_BACKEND']
  ]) {
    const answer = await request(admin.url + path, { method })
    t.equal(answer.status, 404, `${method} ${path}`)
    t.match(json(answer.body), { statusCode: 404, code, error: 'Not Found' })
  }
})

t.test('an id longer than 100 characters (Fastify\'s default maxParamLength) is found', async (t) => {
  const { admin, balancer } = await setup(t)
  const id = `http://backend.example/${'x'.repeat(300)}`
  const c = await startBackend(t, hello('c'))
  balancer.app.goload.add({ url: c.url, id })
  const answer = await request(`${admin.url}/pools/web/backends/${encodeURIComponent(id)}/drain`, { method: 'POST' })
  t.equal(answer.status, 200)
  t.same(json(answer.body), { id, draining: true })
})

t.test('DELETE answers once the backend\'s request in flight has ended and it has left the pool', async (t) => {
  const held: Array<() => void> = []
  const slow = await startBackend(t, (req, res) => { req.resume(); held.push(() => res.end('slow')) })
  const balancer = await startBalancer(t, { name: 'web', backends: [{ url: slow.url, id: 'slow' }] })
  const admin = await startAdminOf(t, balancer)
  const inFlight = request(balancer.url + '/')
  await waitFor(() => held.length === 1, 'the request at the backend')
  let answered = false
  const removal = request(admin.url + '/pools/web/backends/slow', { method: 'DELETE' }).then((answer) => { answered = true; return answer })
  await waitFor(() => balancer.app.goload.stats().backends[0]?.draining === true, 'the backend to drain')
  // Another request to the admin comes and goes while the removal waits.
  t.equal((await request(admin.url + '/stats')).status, 200)
  t.notOk(answered, 'no answer while a request is in flight')
  held[0]()
  t.equal((await inFlight).body, 'slow')
  const answer = await removal
  t.equal(answer.status, 200)
  t.same(json(answer.body), { id: 'slow', removed: true })
  t.same(balancer.app.goload.stats().backends, [], 'gone')
  t.match(json((await request(admin.url + '/pools/web/backends/slow', { method: 'DELETE' })).body), { code: 'FST_GOLOAD_UNKNOWN_BACKEND' })
})

t.test('GET /metrics: the injected function\'s text and type; 404 without one; its failure is a 500', async (t) => {
  const balancer = await startBalancer(t, { backends: ['http://127.0.0.1:1'] })
  let fail = false
  const admin = await startAdminOf(t, balancer, {
    token,
    metrics: async () => {
      if (fail) throw new Error('scrape failed')
      return { contentType: 'text/plain; version=0.0.4; charset=utf-8', text: 'goload_backend_pending 0\n' }
    }
  })
  t.equal((await request(admin.url + '/metrics')).status, 401)
  const answer = await request(admin.url + '/metrics', { headers: auth })
  t.equal(answer.status, 200)
  t.equal(answer.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8')
  t.equal(answer.body, 'goload_backend_pending 0\n')
  fail = true
  t.match(json((await request(admin.url + '/metrics', { headers: auth })).body), { statusCode: 500, error: 'Internal Server Error', message: 'scrape failed' })
  const without = await startAdminOf(t, balancer)
  t.equal((await request(without.url + '/metrics')).status, 404)
})

t.test('loopback is 127.0.0.0/8, ::1, ::ffff:127.x and localhost; 0.0.0.0, :: and names are not', async (t) => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', 'localhost', 'LOCALHOST']) t.ok(isLoopback(host), host)
  for (const host of ['0.0.0.0', '::', '10.0.0.1', '::ffff:10.0.0.1', 'example.com', '128.0.0.1']) t.notOk(isLoopback(host), host)
})

t.test('a non-loopback host without a token refuses to start, saying so; with a token it starts', async (t) => {
  const source = () => []
  await t.rejects(startAdmin({ host: '0.0.0.0', port: 0, source, log }), { code: 'FST_GOLOAD_INVALID_OPTION', message: /admin: the admin listener on 0\.0\.0\.0 is reachable from other machines: set a token \(GOLOAD_ADMIN_TOKEN\), or listen on 127\.0\.0\.1/ })
  const admin = await startAdmin({ host: '0.0.0.0', port: 0, source, log, token })
  t.teardown(() => admin.close())
  t.equal((await request(`http://127.0.0.1:${admin.port}/stats`)).status, 401)
  t.equal((await request(`http://127.0.0.1:${admin.port}/stats`, { headers: auth })).status, 200)
})

t.test('a token shorter than 16 characters or with whitespace refuses to start, naming admin.token and not showing it', async (t) => {
  for (const [weak, message] of [
    ['fifteen-chars-x', 'fastify-goload: admin.token must be at least 16 characters, has 15: use a random one, such as `openssl rand -hex 32`'],
    ['a token with spaces in it', 'fastify-goload: admin.token must not contain whitespace (a line break or a space copied with it?)'],
    ['sixteen-chars-xx\t', 'fastify-goload: admin.token must not contain whitespace (a line break or a space copied with it?)']
  ]) {
    await t.rejects(startAdmin({ host: '127.0.0.1', port: 0, source: () => [], log, token: weak }), { code: 'FST_GOLOAD_INVALID_OPTION', message }, JSON.stringify(weak))
  }
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, source: () => [], log, token: 'sixteen-chars-xx' })
  t.teardown(() => admin.close())
  t.equal((await request(`${admin.url}/stats`, { headers: { authorization: 'Bearer sixteen-chars-xx' } })).status, 200, '16 characters are enough')
})

t.test('an admin port in use fails with the address; an IPv6 host is bracketed in the URL', async (t) => {
  const busy = http.createServer()
  const port = await freePort()
  await new Promise<void>((resolve) => busy.listen(port, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => busy.close(resolve)))
  await t.rejects(startAdmin({ host: '127.0.0.1', port, source: () => [], log }), { message: new RegExp(`admin: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`) })
  const admin = await startAdmin({ host: '::1', port: 0, source: () => [], log })
  t.teardown(() => admin.close())
  t.equal(admin.url, `http://[::1]:${admin.port}`)
  t.equal((await request(`${admin.url}/stats`)).status, 200)
})

t.test('close() ends open event streams at once', async (t) => {
  const balancer = await startBalancer(t, { backends: ['http://127.0.0.1:1'] })
  const admin = await startAdmin({ host: '127.0.0.1', port: 0, source: poolsOf(balancer), log })
  const streams = await Promise.all([openEvents(t, admin.url), openEvents(t, admin.url)])
  await Promise.all(streams.map((stream) => stream.first()))
  const started = Date.now()
  await admin.close()
  await Promise.all(streams.map((stream) => stream.ended))
  t.ok(Date.now() - started < 1000, `closed in ${Date.now() - started} ms`)
})
