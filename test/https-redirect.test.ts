// `redirectHttps` on a plain listener answers every request 308 to its https URL before any routing, keeping the
// target byte for byte; a Host that is not one is refused with 400 rather than redirected to. Raw sockets: the
// bytes on the wire are the point.
import t, { type Test } from 'tap'
import { ConfigError } from '../lib/config/errors.js'
import { loadConfig } from '../lib/config/load.js'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { connect, ResponseReader } from './helpers/raw.js'
import { deadUrl } from './helpers/servers.js'

const run = async () => {
  const [port, standard] = [await freePort(), await freePort()]
  // The pool is never asked: nothing on these listeners is routed.
  const file = await configFile(t, `listeners:
  - port: ${port}
    host: 127.0.0.1
    redirectHttps: 8443
  - port: ${standard}
    host: 127.0.0.1
    redirectHttps: true
pools:
  web:
    backends: [${await deadUrl()}]
`)
  const goload = runMain(t, ['--config', file])
  await goload.logged(/goload listening/, 'goload to listen')
  return { port, standard }
}
const started = run()

/** Sends `request` raw on a new connection; the response to it. */
async function send (t: Test, port: number, request: string) {
  const reader = new ResponseReader(await connect(t, port))
  reader.socket.write(request)
  return await reader.next(10_000)
}

t.test('a request is answered 308 to https://<host>:<port><target as received>', async (t) => {
  const { port } = await started
  const answer = await send(t, port, 'POST /a/%2e%2E/b;x=1//c?q=%41&r#f HTTP/1.1\r\nHost: Example.COM:8080\r\nContent-Length: 0\r\n\r\n')
  t.equal(answer.status, 308)
  t.same(answer.headers.location, ['https://example.com:8443/a/%2e%2E/b;x=1//c?q=%41&r#f'], 'the target exactly as received; the host without its port')
})

t.test('redirectHttps: true sends to 443, with no port in the URL', async (t) => {
  const { standard } = await started
  const answer = await send(t, standard, 'GET /x?y HTTP/1.1\r\nHost: a.test.\r\n\r\n')
  t.equal(answer.status, 308)
  t.same(answer.headers.location, ['https://a.test/x?y'])
  const ipv6 = await send(t, standard, 'GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n')
  t.same(ipv6.headers.location, ['https://[::1]/'], 'an IPv6 literal keeps its brackets')
})

t.test('an absolute-form target redirects to its own authority and path', async (t) => {
  const { standard } = await started
  const answer = await send(t, standard, 'GET http://b.test:80/p?q HTTP/1.1\r\nHost: a.test\r\n\r\n')
  t.same(answer.headers.location, ['https://b.test/p?q'])
  t.same((await send(t, standard, 'GET http://b.test HTTP/1.1\r\nHost: a.test\r\n\r\n')).headers.location, ['https://b.test/'], 'no path: /')
  t.same((await send(t, standard, 'GET http://b.test?q HTTP/1.1\r\nHost: a.test\r\n\r\n')).headers.location, ['https://b.test/?q'], 'a query only: /?q')
})

t.test('a Host that is not one, none, or a target that is not a path: 400, never a redirect', async (t) => {
  const { port } = await started
  for (const [what, request, code] of [
    ['a Host with a slash', 'GET / HTTP/1.1\r\nHost: evil.test/x\r\n\r\n', 'FST_GOLOAD_BAD_HOST'],
    ['a Host with @', 'GET / HTTP/1.1\r\nHost: a.test@evil.test\r\n\r\n', 'FST_GOLOAD_BAD_HOST'],
    ['two Hosts', 'GET / HTTP/1.1\r\nHost: a.test\r\nHost: evil.test\r\n\r\n', 'FST_GOLOAD_BAD_HOST'],
    ['no Host (HTTP/1.0)', 'GET / HTTP/1.0\r\n\r\n', 'FST_GOLOAD_BAD_HOST'],
    ['OPTIONS *', 'OPTIONS * HTTP/1.1\r\nHost: a.test\r\n\r\n', 'FST_GOLOAD_BAD_REQUEST_TARGET']
  ] as const) {
    const answer = await send(t, port, request)
    t.equal(answer.status, 400, what)
    t.equal(answer.headers.location, undefined, `${what}: no Location`)
    t.match(answer.body.toString(), code, `${what}: ${code}`)
  }
})

t.test('an upgrade is answered with the same redirect (or 400), and the connection closed', async (t) => {
  const { port } = await started
  const reader = new ResponseReader(await connect(t, port))
  reader.socket.write('GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  const answer = await reader.next(10_000)
  t.equal(answer.status, 308)
  t.same(answer.headers.location, ['https://a.test:8443/ws'])
  await reader.closes(10_000)

  const refused = new ResponseReader(await connect(t, port))
  refused.socket.write('GET /ws HTTP/1.1\r\nHost: evil.test/x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
  const bad = await refused.next(10_000)
  t.equal(bad.status, 400, 'an upgrade with a Host that is not one: 400')
  t.equal(bad.headers.location, undefined)
  await refused.closes(10_000)
})

t.test('redirectHttps in the config: a port or true, on a plain listener without routes', async (t) => {
  const pools = 'pools:\n  web:\n    backends: [http://127.0.0.1:3001]\n'
  const cases: Array<[string, string, string]> = [
    ['routes beside redirectHttps', '  - port: 8080\n    redirectHttps: true\n    routes: [{ pool: web }]\n', ':4: listeners[0].routes: a listener with redirectHttps answers every request with a redirect: remove its routes'],
    ['neither routes nor redirectHttps', '  - port: 8080\n', ':2: listeners[0].routes: is required (or redirectHttps)'],
    ['a port out of range', '  - port: 8080\n    redirectHttps: 0\n', ':3: listeners[0].redirectHttps: must be a port number (1-65535) or true (443), got 0'],
    ['false', '  - port: 8080\n    redirectHttps: false\n', ':3: listeners[0].redirectHttps: must be a port number (1-65535) or true (443), got false'],
    ['on a TLS listener', '  - port: 8443\n    redirectHttps: true\n    tls: { certificates: [{ cert: a.pem, key: a-key.pem }] }\n', ':3: listeners[0].redirectHttps: a TLS listener already serves https: redirectHttps is for a plain one']
  ]
  for (const [what, listener, expected] of cases) {
    const file = await configFile(t, `listeners:\n${listener}${pools}`)
    const error = await loadConfig(file, { env: {} }).then(() => undefined, (error: unknown) => error)
    t.ok(error instanceof ConfigError, what)
    // The first problem in the file's order (--check also says, on the TLS listener, that a.pem cannot be read).
    t.equal((error as Error).message.split('\n')[0], `${file}${expected}`, what)
  }
})
