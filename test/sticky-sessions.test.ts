// A pool's sticky cookie: the first answer names the backend, later requests carrying it go there while it is in
// rotation, and a cookie that names nothing valid is ignored and replaced, never an error.
import Fastify from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import goload, { type GoloadOptions, type StickyOptions } from '../lib/index.js'
import type { Registry } from '../lib/registry.js'
import { startAdminOf } from './helpers/admin.js'
import { request, type Answer } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { hello, startBackend, startBalancer, type Balancer } from './helpers/servers.js'
import { startWsBackend } from './helpers/ws.js'

const sticky: StickyOptions = { cookie: 'goload_web', secret: 'a shared secret of 32 characters' }

/** Three backends answering "Hello from a|b|c", least-busy with a sticky cookie. */
async function stickyPool (t: Test, options: Partial<GoloadOptions> = {}): Promise<Balancer> {
  const backends = await Promise.all(['a', 'b', 'c'].map(async (id) => ({ id, url: (await startBackend(t, hello(id))).url })))
  return await startBalancer(t, { name: 'web', backends, sticky, ...options } as GoloadOptions)
}

/** The cookie pair (`name=value`) a Set-Cookie header sets, or undefined without one. */
function cookieOf (answer: Answer): string | undefined {
  const header = answer.headers['set-cookie']
  return header === undefined ? undefined : header[0].split(';')[0]
}

t.test('the first answer sets the cookie; requests carrying it stay on that backend and get no new one', async (t) => {
  const { url, app } = await stickyPool(t)
  const first = await request(url)
  const setCookie = first.headers['set-cookie']
  t.equal(setCookie?.length, 1)
  t.match(setCookie![0], /^goload_web=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/, 'opaque, session cookie by default')
  t.notMatch(setCookie![0], /127\.0\.0\.1|Hello/, 'the value shows no address')
  const cookie = cookieOf(first)!
  for (let i = 0; i < 9; i++) {
    const answer = await request(url, { headers: { cookie: `other=1; ${cookie}` } })
    t.equal(answer.body, first.body, `request ${i + 2} stays`)
    t.equal(answer.headers['set-cookie'], undefined)
  }
  // Without the cookie, least-busy takes turns between idle backends.
  t.not((await request(url)).body, first.body)
  t.same((app.goload as Registry).entries()[0].sticky, { cookie: 9, assigned: 2 })
})

t.test('attributes: maxAge, secure, httpOnly false, sameSite strict', async (t) => {
  const { url } = await stickyPool(t, { sticky: { cookie: 'web', maxAge: 3600, secure: true, httpOnly: false, sameSite: 'strict' } })
  t.match((await request(url)).headers['set-cookie']![0], /^web=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=3600; Secure; SameSite=Strict$/)
})

t.test('a user on a backend drained through the admin moves: the next request goes elsewhere with a new cookie', async (t) => {
  const balancer = await stickyPool(t)
  const admin = await startAdminOf(t, balancer)
  const first = await request(balancer.url)
  const cookie = cookieOf(first)!
  const id = first.body.replace('Hello from ', '')
  t.equal((await request(`${admin.url}/pools/web/backends/${id}/drain`, { method: 'POST' })).status, 200)
  const moved = await request(balancer.url, { headers: { cookie } })
  t.not(moved.body, first.body, 'sent elsewhere')
  const renewed = cookieOf(moved)
  t.ok(renewed !== undefined && renewed !== cookie, 'with a new cookie')
  for (let i = 0; i < 5; i++) t.equal((await request(balancer.url, { headers: { cookie: renewed! } })).body, moved.body, 'and stays there')
  // Undrained, the old cookie is good again: it names the backend, not a moment.
  t.equal((await request(`${admin.url}/pools/web/backends/${id}/undrain`, { method: 'POST' })).status, 200)
  t.equal((await request(balancer.url, { headers: { cookie } })).body, first.body)
})

t.test('forged, stale and malformed cookies are ignored and replaced, never an error', async (t) => {
  const { url } = await stickyPool(t)
  const valid = cookieOf(await request(url))!.split('=')[1]
  // The same pool and backends under another secret: a well-formed value this balancer never signed.
  const other = await stickyPool(t, { sticky: { cookie: 'goload_web', secret: 'another secret of 32 characters!' } })
  const foreign = cookieOf(await request(other.url))!.split('=')[1]
  const cases: Record<string, string> = {
    'huge cookie': `goload_web=${'A'.repeat(12_000)}`,
    'many cookies': Array.from({ length: 400 }, (_, i) => `goload_web=x${i}`).join('; '),
    'bad base64': `goload_web=${'%%%!'.repeat(11)}`,
    'bad signature': `goload_web=${valid.slice(0, -4)}${valid.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`,
    'another secret': `goload_web=${foreign}`,
    'empty value': 'goload_web=',
    'no equals sign': 'goload_web',
    'unbalanced quote': 'goload_web="abc'
  }
  for (const [name, cookie] of Object.entries(cases)) {
    const answer = await request(url, { headers: { cookie } })
    t.equal(answer.status, 200, name)
    t.match(answer.headers['set-cookie']?.[0], /^goload_web=[A-Za-z0-9_-]{43};/, `${name}: a new cookie`)
  }
})

t.test('a cookie for a backend of another pool is ignored there', async (t) => {
  const app = Fastify()
  const shared = await Promise.all(['a', 'b'].map(async (id) => ({ id, url: (await startBackend(t, hello(id))).url })))
  // Same backends, same cookie name, same secret: only the pool's name tells the values apart.
  await app.register(goload, { name: 'one', prefix: '/one', backends: shared, sticky })
  await app.register(goload, { name: 'two', prefix: '/two', backends: shared, sticky })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const cookie = cookieOf(await request(`${base}/one`))!
  const answer = await request(`${base}/two`, { headers: { cookie } })
  t.equal(answer.status, 200)
  t.ok(cookieOf(answer) !== undefined && cookieOf(answer) !== cookie, 'pool two sets its own')
})

t.test('two plugin instances with the same secret agree', async (t) => {
  const backends = await Promise.all(['a', 'b', 'c'].map(async (id) => ({ id, url: (await startBackend(t, hello(id))).url })))
  const one = await startBalancer(t, { name: 'web', backends, sticky })
  const two = await startBalancer(t, { name: 'web', backends, sticky })
  // Move instance two's turn on, so that without the cookie it would pick another backend first.
  await request(two.url)
  const first = await request(one.url)
  for (let i = 0; i < 3; i++) {
    const answer = await request(two.url, { headers: { cookie: cookieOf(first)! } })
    t.equal(answer.body, first.body)
    t.equal(answer.headers['set-cookie'], undefined)
  }
  // With no secret, each instance draws its own: the other's cookie means nothing.
  const three = await startBalancer(t, { name: 'web', backends, sticky: { cookie: 'goload_web' } })
  const four = await startBalancer(t, { name: 'web', backends, sticky: { cookie: 'goload_web' } })
  t.not(cookieOf(await request(three.url)), cookieOf(await request(four.url)))
})

t.test('a valid cookie wins over strategy hash; without one, hash decides', async (t) => {
  const balancer = await stickyPool(t, { strategy: 'hash', hashOn: { header: 'x-user' } })
  const pinned = await request(balancer.url, { headers: { 'x-user': 'u0' } })
  // A key that hashes to another backend.
  let other: Answer | undefined
  for (let i = 1; other === undefined; i++) {
    const answer = await request(balancer.url, { headers: { 'x-user': `u${i}` } })
    if (answer.body !== pinned.body) other = answer
    if (i > 200) throw new Error('no key hashed elsewhere')
  }
  for (let i = 0; i < 3; i++) {
    t.equal((await request(balancer.url, { headers: { 'x-user': 'u0', cookie: cookieOf(other)! } })).body, other.body, 'the cookie, not the key')
  }
})

t.test('WebSocket upgrades: the 101 carries the cookie, and an upgrade carrying one goes to its backend', async (t) => {
  const backends = await Promise.all(['a', 'b', 'c'].map(async (id) => ({ id, url: (await startWsBackend(t, id)).url })))
  const { url } = await startBalancer(t, { name: 'web', backends, sticky })
  const open = async (cookie?: string): Promise<{ who: string, setCookie: string[] | undefined }> => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers: cookie === undefined ? {} : { cookie } })
    ws.on('error', () => {})
    t.teardown(() => { ws.terminate() })
    let setCookie: string[] | undefined
    ws.once('upgrade', (response) => { setCookie = response.headers['set-cookie'] })
    await deadline(new Promise((resolve) => ws.once('open', resolve)), 5000, 'the WebSocket to open')
    ws.send('who')
    const who = await deadline(new Promise<string>((resolve) => ws.once('message', (data: Buffer) => { resolve(data.toString()) })), 5000, 'who')
    ws.close()
    return { who, setCookie }
  }
  const first = await open()
  t.match(first.setCookie?.[0], /^goload_web=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Lax$/)
  const cookie = first.setCookie![0].split(';')[0]
  for (let i = 0; i < 3; i++) {
    const again = await open(cookie)
    t.equal(again.who, first.who)
    t.equal(again.setCookie, undefined)
  }
  // A plain request carrying the upgrade's cookie goes there too.
  t.equal((await request(url, { headers: { cookie } })).body, `Hello from ${first.who}`)
})

t.test('sticky options are checked, naming the key', async (t) => {
  const backend = await startBackend(t)
  const cases: Array<[unknown, RegExp]> = [
    [{ maxAge: 60 }, /sticky has no cookie|sticky must have required property 'cookie'|sticky\.cookie/],
    [{ cookie: 'a b' }, /sticky\.cookie must be a cookie name/],
    [{ cookie: 'x', sameSite: 'none' }, /sticky\.sameSite: 'none' needs sticky\.secure: true/],
    [{ cookie: 'x', secret: 'short' }, /sticky\.secret must be a string of at least 16 characters/],
    [{ cookie: 'x', maxAge: 0 }, /sticky\.maxAge must be a positive integer, got 0/],
    [{ cookie: 'x', same: 'lax' }, /sticky has an unknown field "same"/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(goload, { backends: [backend.url], sticky: options } as never).ready() }, { code: 'FST_GOLOAD_INVALID_OPTION', message }, JSON.stringify(options))
  }
})

t.test('a removed backend\'s cookie is stale: ignored and replaced; the counts reach the metrics', async (t) => {
  const { url, app } = await stickyPool(t, { metrics: true })
  const first = await request(url)
  const cookie = cookieOf(first)!
  await app.goload.pool('web').remove(first.body.replace('Hello from ', ''))
  const moved = await request(url, { headers: { cookie } })
  t.equal(moved.status, 200)
  t.not(moved.body, first.body)
  t.ok(cookieOf(moved) !== undefined && cookieOf(moved) !== cookie, 'a new cookie')
  t.equal((await request(url, { headers: { cookie: cookieOf(moved)! } })).body, moved.body)
  const metrics = await app.goload.metrics!.metrics()
  t.match(metrics, 'goload_sticky_requests_total{pool="web",result="cookie"} 1')
  t.match(metrics, 'goload_sticky_requests_total{pool="web",result="assigned"} 2')
})
