// What keeps a web page elsewhere from driving the admin through its user's browser (lib/admin/guard.ts): without a
// token only a Host naming this machine is answered (DNS rebinding), an action from another Origin is refused, and
// an action's body must be JSON. Raw bytes where the Host header is the point; the pool checked after each refusal.
import Fastify from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import type { Snapshot } from '../lib/admin/snapshot.js'
import { openEvents, startAdminOf } from './helpers/admin.js'
import { rawRequest, request } from './helpers/client.js'
import { capturedLogs } from './helpers/logs.js'
import { hello, startBackend, startBalancer } from './helpers/servers.js'

const token = 'a-token-of-32-characters-or-so-x'
const json = (body: string): any => JSON.parse(body)

async function setup (t: Test, options: { token?: string } = {}) {
  const a = await startBackend(t, hello('a'))
  const balancer = await startBalancer(t, { name: 'web', backends: [{ url: a.url, id: 'a' }] })
  const logs = capturedLogs('warn')
  const admin = await startAdminOf(t, balancer, { ...options, log: Fastify({ logger: logs.logger }).log })
  // The pool as the refused requests found it: one backend, in rotation.
  const unchanged = async (what: string) => {
    t.same(balancer.app.goload.stats().backends.map(({ id, draining }) => ({ id, draining })), [{ id: 'a', draining: false }], `${what}: the pool unchanged`)
  }
  return { a, balancer, admin, logs, unchanged }
}

/** The status and JSON body of a raw HTTP/1.1 exchange, the request written exactly as given. */
async function raw (port: number, head: string, body = ''): Promise<{ status: number, body: any }> {
  const answer = await rawRequest(port, `${head}\r\nConnection: close\r\n\r\n${body}`)
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1])
  const text = answer.slice(answer.indexOf('\r\n\r\n') + 4)
  return { status, body: text.startsWith('{') ? json(text) : text }
}

t.test('without a token, a Host not naming this machine is 421 on every path, the page included, and logged; its own names are answered, with or without a port; with a token, any Host', async (t) => {
  const { admin, balancer, logs, unchanged } = await setup(t)
  for (const head of [
    'GET /stats HTTP/1.1\r\nHost: rebind.attacker.example',
    `GET /stats HTTP/1.1\r\nHost: rebind.attacker.example:${admin.port}`,
    'GET / HTTP/1.1\r\nHost: rebind.attacker.example',
    'GET /events HTTP/1.1\r\nHost: rebind.attacker.example',
    'GET /nothing HTTP/1.1\r\nHost: rebind.attacker.example',
    'POST /pools/web/backends/a/drain HTTP/1.1\r\nHost: rebind.attacker.example\r\nContent-Length: 0',
    'GET /stats HTTP/1.1\r\nHost: localhost.attacker.example',
    'GET /stats HTTP/1.1\r\nHost: 127.0.0.1.nip.io',
    'GET /stats HTTP/1.1\r\nHost: 10.0.0.1',
    'GET /stats HTTP/1.1\r\nHost: [::2]',
    'GET /stats HTTP/1.1\r\nHost: [127.0.0.1]',
    'GET /stats HTTP/1.1\r\nHost: [::1',
    'GET /stats HTTP/1.1\r\nHost: ',
    'GET /stats HTTP/1.0'
  ]) {
    const { status, body } = await raw(admin.port, head)
    t.equal(status, 421, head)
    t.match(body, { statusCode: 421, code: 'FST_GOLOAD_MISDIRECTED_REQUEST', error: 'Misdirected Request', message: /^Misdirected request: without a token, the admin answers only a Host naming this machine \(localhost, 127\.x\.x\.x, \[::1\]\), not / })
  }
  const { body } = await raw(admin.port, 'GET /stats HTTP/1.1\r\nHost: rebind.attacker.example')
  t.equal(body.message, 'Misdirected request: without a token, the admin answers only a Host naming this machine (localhost, 127.x.x.x, [::1]), not "rebind.attacker.example"')
  await unchanged('a drain for another Host')
  t.match(logs.warnings()[0], { host: 'rebind.attacker.example', msg: /^goload admin: refused GET \/stats: Misdirected request/ })

  for (const host of ['127.0.0.1', `127.0.0.1:${admin.port}`, `127.9.8.7:${admin.port}`, 'localhost', `LocalHost:${admin.port}`, '[::1]', `[::1]:${admin.port}`, '[::ffff:127.0.0.1]:80', 'localhost:1']) {
    const { status, body } = await raw(admin.port, `GET /stats HTTP/1.1\r\nHost: ${host}`)
    t.equal(status, 200, host)
    t.match(body as Snapshot, { pools: [{ name: 'web' }] })
  }
  t.equal((await raw(admin.port, 'GET / HTTP/1.1\r\nHost: localhost')).status, 200, 'the page')

  // A page elsewhere cannot send the token: with one, the Host does not matter.
  const tokened = await startAdminOf(t, balancer, { token })
  t.equal((await raw(tokened.port, `GET /stats HTTP/1.1\r\nHost: rebind.attacker.example\r\nAuthorization: Bearer ${token}`)).status, 200)
  t.equal((await raw(tokened.port, 'GET /stats HTTP/1.1\r\nHost: rebind.attacker.example')).status, 401, 'without it, 401')
  t.equal((await raw(tokened.port, 'GET / HTTP/1.1\r\nHost: goload-admin.internal')).status, 200, 'the page')
})

t.test('an action from another Origin, Origin: null, or a cross-site or same-site Sec-Fetch-Site is 403, token or not', async (t) => {
  for (const withToken of [false, true]) {
    const { admin, logs, unchanged } = await setup(t, withToken ? { token } : {})
    const auth = withToken ? { authorization: `Bearer ${token}` } : {}
    const own = `http://127.0.0.1:${admin.port}`
    for (const [method, path, headers] of [
      ['POST', '/pools/web/backends/a/drain', { origin: 'http://127.0.0.1:1234' }],
      ['POST', '/pools/web/backends/a/drain', { origin: `http://localhost:${admin.port}` }],
      ['POST', '/pools/web/backends/a/drain', { origin: 'http://127.0.0.1' }],
      ['POST', '/pools/web/backends/a/drain', { origin: 'https://attacker.example' }],
      ['POST', '/pools/web/backends/a/drain', { origin: 'null' }],
      ['POST', '/pools/web/backends/a/drain', { origin: `${own}/` }],
      ['POST', '/pools/web/backends/a/drain', { 'sec-fetch-site': 'cross-site' }],
      ['POST', '/pools/web/backends/a/drain', { 'sec-fetch-site': 'same-site' }],
      ['POST', '/pools/web/backends/a/drain', { origin: own, 'sec-fetch-site': 'cross-site' }],
      ['DELETE', '/pools/web/backends/a', { origin: 'http://127.0.0.1:1234' }],
      ['POST', '/pools/web/backends', { origin: 'http://127.0.0.1:1234', 'content-type': 'application/json', body: JSON.stringify({ url: 'http://127.0.0.1:1' }) }]
    ] as Array<[string, string, Record<string, string>]>) {
      const { body, ...rest } = headers
      const answer = await request(admin.url + path, { method, headers: { ...rest, ...auth }, body })
      t.equal(answer.status, 403, `${method} ${path} ${JSON.stringify(rest)}`)
      t.match(json(answer.body), { statusCode: 403, code: 'FST_GOLOAD_CROSS_ORIGIN', error: 'Forbidden', message: /^Forbidden: the admin takes actions only from its own origin, not from / })
    }
    t.equal(json((await request(admin.url + '/pools/web/backends/a/drain', { method: 'POST', headers: { origin: 'null', ...auth } })).body).message, 'Forbidden: the admin takes actions only from its own origin, not from null')
    t.equal(json((await request(admin.url + '/pools/web/backends/a/drain', { method: 'POST', headers: { 'sec-fetch-site': 'cross-site', ...auth } })).body).message, 'Forbidden: the admin takes actions only from its own origin, not from a cross-site page')
    await unchanged(withToken ? 'with a token' : 'without a token')
    t.match(logs.warnings().at(-1), { msg: /^goload admin: refused POST \/pools\/web\/backends\/a\/drain: Forbidden/ })

    // Reads are not actions: the browser keeps their answer from a page elsewhere.
    t.equal((await request(admin.url + '/stats', { headers: { origin: 'http://127.0.0.1:1234', 'sec-fetch-site': 'cross-site', ...auth } })).status, 200)
    // The page's own fetches (Origin and Sec-Fetch-Site as a browser sends them), the scheme of a proxy ending TLS,
    // and curl, which sends neither.
    for (const headers of [{ origin: own, 'sec-fetch-site': 'same-origin' }, { origin: `https://127.0.0.1:${admin.port}` }, { 'sec-fetch-site': 'none' }, {}]) {
      const answer = await request(admin.url + '/pools/web/backends/a/drain', { method: 'POST', headers: { ...headers, ...auth } })
      t.equal(answer.status, 200, JSON.stringify(headers))
      t.same(json(answer.body), { id: 'a', draining: true })
    }
  }
})

t.test('an action\'s body must be application/json: text/plain, a form or a typeless body is 415, naming it', async (t) => {
  const { admin, unchanged } = await setup(t)
  const add = '/pools/web/backends'
  for (const [path, headers, body, named] of [
    // What a page can send without a preflight: the URL as text/plain was read as a backend to add.
    [add, { 'content-type': 'text/plain' }, 'http://127.0.0.1:1', '"text/plain"'],
    [add, { 'content-type': 'text/plain;charset=UTF-8' }, 'http://127.0.0.1:1', '"text/plain;charset=UTF-8"'],
    [add, { 'content-type': 'application/x-www-form-urlencoded' }, 'url=http%3A%2F%2F127.0.0.1%3A1', '"application/x-www-form-urlencoded"'],
    [add, { 'content-type': 'multipart/form-data; boundary=x' }, '--x\r\nContent-Disposition: form-data; name="url"\r\n\r\nhttp://127.0.0.1:1\r\n--x--\r\n', '"multipart/form-data; boundary=x"'],
    [add, {}, 'http://127.0.0.1:1', 'a body without Content-Type'],
    ['/pools/web/backends/a/drain', { 'content-type': 'application/x-www-form-urlencoded' }, '', '"application/x-www-form-urlencoded"']
  ] as Array<[string, Record<string, string>, string, string]>) {
    const answer = await request(admin.url + path, { method: 'POST', headers, body })
    t.equal(answer.status, 415, `${JSON.stringify(headers)} ${body}`)
    t.same(json(answer.body), { statusCode: 415, code: 'FST_GOLOAD_UNSUPPORTED_MEDIA_TYPE', error: 'Unsupported Media Type', message: `Unsupported media type: an action takes an application/json body or none, not ${named}` })
  }
  const chunked = await raw(admin.port, `POST ${add} HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked`, '12\r\nhttp://127.0.0.1:1\r\n0\r\n\r\n')
  t.equal(chunked.status, 415, 'a chunked body without Content-Type')
  t.equal(chunked.body.message, 'Unsupported media type: an action takes an application/json body or none, not a body without Content-Type')
  await unchanged('bodies of other types')
  const c = await startBackend(t, hello('c'))
  const added = await request(admin.url + add, { method: 'POST', headers: { 'content-type': 'Application/JSON; charset=utf-8' }, body: JSON.stringify({ url: c.url, id: 'c' }) })
  t.equal(added.status, 201, 'JSON, with a charset, in any case')
  t.equal((await request(admin.url + '/pools/web/backends/c/drain', { method: 'POST' })).status, 200, 'no body, no type')
})

t.test('an event stream is a read: another Origin may open it, another Host may not', async (t) => {
  const { admin } = await setup(t)
  const stream = await openEvents(t, admin.url, { origin: 'http://127.0.0.1:1234' })
  t.match(await stream.first(), { pools: [{ name: 'web' }] })
  const rebound = await request(admin.url + '/events', { headers: { host: 'rebind.attacker.example' } })
  t.equal(rebound.status, 421)
})
