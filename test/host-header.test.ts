// Security regression: Host values nginx refuses were routed, and went upstream as X-Forwarded-Host (or Host, with
// preserveHost): two Host lines (the route saw the first, a backend might read the last), whitespace, `/`, a folded
// list, empty labels. RFC 9112 §3.2: more than one Host, or an invalid one, is 400. And an absolute-form target names
// the authority itself (§3.2.2), for routing and upstream alike.
import t from 'tap'
import goload from '../lib/index.js'
import { rawRequest } from './helpers/client.js'
import { connect, ResponseReader } from './helpers/raw.js'
import { startBackend, startBalancer, type Backend } from './helpers/servers.js'

interface Seen { url: string, host: string | undefined, forwardedHost: string | undefined }

function recording (seen: Seen[]) {
  return (req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => {
    seen.push({ url: req.url!, host: req.headers.host, forwardedHost: req.headers['x-forwarded-host'] as string | undefined })
    req.resume()
    res.end('ok')
  }
}

function statusOf (answer: string): number {
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0)
}

t.test('a *.wild.test route beside a catch-all', async (t) => {
  const wild: Seen[] = []
  const other: Seen[] = []
  const wildBackend: Backend = await startBackend(t, recording(wild))
  const otherBackend: Backend = await startBackend(t, recording(other))
  const { port } = await startBalancer(t, { host: '*.wild.test', preserveHost: true, backends: [wildBackend.url] }, {}, async (app) => {
    await app.register(goload, { backends: [otherBackend.url] })
  })

  const refused: Array<[what: string, head: string]> = [
    ['two Host lines', 'Host: a.wild.test\r\nHost: admin.test\r\n'],
    ['two Host lines, the second for the route', 'Host: admin.test\r\nhost: a.wild.test\r\n'],
    ['whitespace inside', 'Host: a b.wild.test\r\n'],
    ['a slash', 'Host: evil.com/.wild.test\r\n'],
    ['an empty label', 'Host: ..wild.test\r\n'],
    ['a folded list', 'Host: x.wild.test:80, admin.test\r\n'],
    ['userinfo', 'Host: admin@x.wild.test\r\n'],
    ['a port that is not a number', 'Host: x.wild.test:http\r\n'],
    ['an IP-literal that is not one', 'Host: [::1/x]\r\n']
  ]
  await t.test('a Host sent twice or not a host[:port] is 400 FST_GOLOAD_BAD_HOST, before any backend', async (t) => {
    for (const [what, head] of refused) {
      const answer = await rawRequest(port, `GET /x HTTP/1.1\r\n${head}Connection: close\r\n\r\n`)
      t.equal(statusOf(answer), 400, `${what}: ${JSON.stringify(answer.split('\r\n')[0])}`)
      t.match(answer, /"code":"FST_GOLOAD_BAD_HOST"/, what)
    }
    const absolute = await rawRequest(port, 'GET http://a..wild.test/x HTTP/1.1\r\nHost: a.wild.test\r\nConnection: close\r\n\r\n')
    t.equal(statusOf(absolute), 400, 'an absolute-form target with a bad authority is refused too')
    t.same([wild.length, other.length], [0, 0], 'no backend saw any of them')
  })

  await t.test('valid hosts are routed as before; HTTP/1.0 without Host too', async (t) => {
    for (const host of ['x.wild.test', 'X.Wild.Test:8080', 'x.wild.test.']) {
      t.equal(statusOf(await rawRequest(port, `GET /x HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)), 200, host)
    }
    t.same(wild.map((seen) => seen.host), ['x.wild.test', 'X.Wild.Test:8080', 'x.wild.test.'])
    t.equal(statusOf(await rawRequest(port, 'GET /x HTTP/1.0\r\n\r\n')), 200)
    t.equal(statusOf(await rawRequest(port, 'GET /x HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n')), 200)
    t.equal(other.length, 2, 'the catch-all took the HTTP/1.0 request and the IP-literal')
  })

  await t.test('an absolute-form target: its authority wins over Host, for the route and upstream alike', async (t) => {
    wild.length = 0
    other.length = 0
    t.equal(statusOf(await rawRequest(port, 'GET http://a.wild.test/x?y HTTP/1.1\r\nHost: b.test\r\nConnection: close\r\n\r\n')), 200)
    t.same(wild, [{ url: '/x?y', host: 'a.wild.test', forwardedHost: 'a.wild.test' }], 'routed by the target, and sent with its authority')
    t.equal(statusOf(await rawRequest(port, 'GET http://b.test:81/x HTTP/1.1\r\nHost: a.wild.test\r\nConnection: close\r\n\r\n')), 200)
    t.equal(other.length, 1, 'a Host naming the wildcard does not take the request there')
    t.equal(other[0].forwardedHost, 'b.test:81')
    t.equal(wild.length, 1)
  })

  await t.test('an upgrade with two Host lines is refused the same way', async (t) => {
    const before = wild.length + other.length
    const socket = await connect(t, port)
    const reader = new ResponseReader(socket)
    socket.write('GET /ws HTTP/1.1\r\nHost: a.wild.test\r\nHost: admin.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
    const answer = await reader.next(10_000)
    t.equal(answer.status, 400)
    t.match(answer.body.toString(), /FST_GOLOAD_BAD_HOST/)
    t.equal(wild.length + other.length, before, 'no backend saw it')
  })
})
