// TLS listeners offer h2 and http/1.1 by ALPN on one port (`http2: false` turns h2 off), a plain listener with
// `http2: true` speaks h2c with prior knowledge, and what the listeners did for HTTP/1.1 holds for HTTP/2 clients:
// X-Forwarded-Proto, trustProxy, routes by host, rate limits, access lines, WebSocket over HTTP/1.1 on the TLS port.
// Real handshakes, a real node:http2 client, real backends.
import { once } from 'node:events'
import { readFile, writeFile } from 'node:fs/promises'
import type http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import tls from 'node:tls'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { configFolder } from './helpers/config-files.js'
import { freePort, runMain } from './helpers/cli.js'
import { h2Connect, h2Request } from './helpers/h2-client.js'
import { request } from './helpers/client.js'
import { deadline, onRequestHeads, startRawBackend } from './helpers/raw.js'
import { startBackend } from './helpers/servers.js'
import { TestPki } from './helpers/tls.js'
import { nextMessage, startWsBackend } from './helpers/ws.js'

const pki = new TestPki()
t.teardown(() => { pki.close() })
const ca = pki.ca('goload test CA')
const site = pki.server(ca, { dns: ['a.example.com', 'h2.example.com'] })

/** What the echo backend saw of a request. */
interface Seen {
  method: string
  url: string
  httpVersion: string
  headers: http.IncomingHttpHeaders
  body: string
}

function echo (request: http.IncomingMessage, response: http.ServerResponse): void {
  let body = ''
  request.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
  request.on('end', () => {
    const seen: Seen = { method: request.method!, url: request.url!, httpVersion: request.httpVersion, headers: request.headers, body }
    response.setHeader('content-type', 'application/json')
    response.end(JSON.stringify(seen))
  })
}

/**
 * goload with three listeners on 127.0.0.1: `tls` (h2 and http/1.1, trustProxy, a route by host that keeps the
 * Host, a rate-limited path, a WebSocket path), `h1only` (TLS with http2: false) and `h2c` (plain, http2: true).
 */
async function start (t: Test) {
  const backend = await startBackend(t, echo)
  const ws = await startWsBackend(t, 'ws')
  const write = await configFolder(t)
  await write('site.pem', site.cert)
  await write('site-key.pem', site.key)
  const [port, h1only, h2c] = [await freePort(), await freePort(), await freePort()]
  const tlsBlock = `
    tls:
      certificates: [{ cert: site.pem, key: site-key.pem }]`
  const config = (http2: boolean) => `listeners:
  - port: ${port}
    host: 127.0.0.1${tlsBlock}
    http2: ${String(http2)}
    trustProxy: [127.0.0.1]
    routes:
      - { host: h2.example.com, pool: named, preserveHost: true }
      - { path: /limited, pool: web, rateLimit: { max: 2, timeWindow: 60000 } }
      - { path: /ws, pool: ws }
      - { pool: web }
  - port: ${h1only}
    host: 127.0.0.1${tlsBlock}
    http2: false
    routes: [{ pool: web }]
  - port: ${h2c}
    host: 127.0.0.1
    http2: true
    routes: [{ pool: web }]
pools:
  web:
    backends: [${backend.url}]
  named:
    backends: [${backend.url}]
  ws:
    backends: [${ws.url}]
`
  const file = await write('goload.yaml', config(true))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  return { port, h1only, h2c, run, rewrite: async (http2: boolean) => await write('goload.yaml', config(http2)) }
}

/** The protocol a TLS handshake settles on when the client offers `protocols` (false: none chosen). */
async function negotiated (t: Test, port: number, protocols?: string[]): Promise<string | false | null> {
  const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...(protocols === undefined ? {} : { ALPNProtocols: protocols }) })
  t.teardown(() => { socket.destroy() })
  await deadline(once(socket, 'secureConnect'), 10_000, 'the TLS handshake')
  const protocol = socket.alpnProtocol ?? null
  socket.destroy()
  return protocol
}

const seen = (body: string): Seen => JSON.parse(body) as Seen

/** An HTTPS/1.1 GET (Node's client offers no ALPN), trusting the test CA, for a.example.com. */
async function httpsGet (port: number, path: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path, servername: 'a.example.com', headers: { host: 'a.example.com' }, ca: ca.cert, agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      response.on('end', () => { resolve({ status: response.statusCode!, body }) })
    }).on('error', reject)
  })
}

t.test('ALPN: a TLS listener offers h2 and http/1.1; http2: false offers http/1.1 only', async (t) => {
  const { port, h1only } = await start(t)
  t.equal(await negotiated(t, port, ['h2', 'http/1.1']), 'h2')
  t.equal(await negotiated(t, port, ['http/1.1', 'h2']), 'h2', 'the server prefers h2 wherever offered')
  t.equal(await negotiated(t, port, ['http/1.1']), 'http/1.1')
  t.equal(await negotiated(t, port), false, 'a client offering nothing gets no ALPN (and is served HTTP/1.1)')
  t.equal(await negotiated(t, h1only, ['h2', 'http/1.1']), 'http/1.1', 'http2: false')
  await t.rejects(negotiated(t, h1only, ['h2']), /no application protocol/, 'http2: false, to a client offering h2 only: refused (RFC 7301)')
})

t.test('h2 and HTTP/1.1 on one TLS port, and h2c with prior knowledge on a plain one, reach the backend', async (t) => {
  const { port, h1only, h2c } = await start(t)
  const session = await h2Connect(t, `https://127.0.0.1:${port}`, { ca: ca.cert, servername: 'a.example.com' })
  t.equal(session.alpnProtocol, 'h2')
  const overH2 = await h2Request(session, { ':path': '/x?y=1', ':authority': 'a.example.com' }, 'hello')
  t.equal(overH2.status, 200)
  t.match(seen(overH2.body), { method: 'POST', url: '/x?y=1', httpVersion: '1.1', body: 'hello', headers: { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'a.example.com' } })
  t.notOk(seen(overH2.body).headers[':authority'], 'no pseudo-header goes upstream')

  const overH1 = await httpsGet(port, '/x')
  t.equal(overH1.status, 200, 'HTTP/1.1 (no ALPN) on the same port')
  t.equal(seen(overH1.body).httpVersion, '1.1')
  t.equal(seen(overH1.body).headers['x-forwarded-proto'], 'https')
  t.equal((await httpsGet(h1only, '/x')).status, 200, 'http2: false serves HTTP/1.1')

  const plain = await h2Connect(t, `http://127.0.0.1:${h2c}`)
  const overH2c = await h2Request(plain, { ':path': '/plain' })
  t.equal(overH2c.status, 200)
  t.match(seen(overH2c.body), { url: '/plain', headers: { 'x-forwarded-proto': 'http', 'x-forwarded-host': `127.0.0.1:${h2c}` } })
  // Prior knowledge only: an HTTP/1.1 request gets HTTP/2's GOAWAY, never an HTTP/1.1 answer nor an h2c upgrade.
  await t.rejects(request(`http://127.0.0.1:${h2c}/`, { headers: { connection: 'Upgrade, HTTP2-Settings', upgrade: 'h2c', 'http2-settings': '' } }))
})

t.test(':authority is the request\'s host: routes by host, preserveHost, X-Forwarded-Host; a Host naming another is refused', async (t) => {
  const { port } = await start(t)
  const session = await h2Connect(t, `https://127.0.0.1:${port}`)
  const named = await h2Request(session, { ':path': '/n', ':authority': `h2.example.com:${port}` })
  t.equal(named.status, 200)
  t.match(seen(named.body).headers, { host: `h2.example.com:${port}`, 'x-forwarded-host': `h2.example.com:${port}` }, 'the route by host took it and kept the host')
  const other = await h2Request(session, { ':path': '/o', ':authority': 'other.test' })
  t.not(seen(other.body).headers.host, 'other.test', 'another route: the backend\'s own Host')
  t.equal(seen(other.body).headers['x-forwarded-host'], 'other.test')
  const sameHost = await h2Request(session, { ':path': '/s', ':authority': `h2.example.com:${port}`, host: `h2.example.com:${port}` })
  t.equal(seen(sameHost.body).headers.host, `h2.example.com:${port}`, 'a Host beside :authority that says the same is fine')
  const mismatch = await h2Request(session, { ':path': '/m', ':authority': 'h2.example.com', host: 'evil.test' })
  t.equal(mismatch.status, 400, 'a Host beside :authority naming another host')
  t.equal(JSON.parse(mismatch.body).code, 'FST_GOLOAD_BAD_HOST')
  // Node 22's nghttp2 refuses such a stream itself (RST_STREAM, PROTOCOL_ERROR) before any handler sees it; below
  // it, the request reaches goload, which must refuse it.
  const notHost = h2Request(session, { ':path': '/u', ':authority': 'user@h2.example.com' })
  if (Number(process.versions.node.split('.')[0]) >= 22) await t.rejects(notHost, /NGHTTP2_PROTOCOL_ERROR/, 'an :authority that is not a host (userinfo) is refused by Node')
  else t.equal((await notHost).status, 400, 'an :authority that is not a host (userinfo) is checked as Host is')
})

t.test('trustProxy, rate limits and access lines hold for HTTP/2 requests', async (t) => {
  const { port, run } = await start(t)
  const session = await h2Connect(t, `https://127.0.0.1:${port}`)
  const forwarded = await h2Request(session, { ':path': '/t', 'x-forwarded-for': '203.0.113.9' })
  t.equal(seen(forwarded.body).headers['x-forwarded-for'], '203.0.113.9, 127.0.0.1', 'the trusted peer\'s list, with the peer added')
  // Counted per client as trustProxy reads it: each forwarded client has its own two.
  const limited = async (client: string) => (await h2Request(session, { ':path': '/limited', 'x-forwarded-for': client })).status
  t.same([await limited('198.51.100.1'), await limited('198.51.100.1'), await limited('198.51.100.1'), await limited('198.51.100.2')], [200, 200, 429, 200])
  await run.logged(/"url":"\/t".*goload: access/, 'the access line of the h2 request')
  const line = JSON.parse(run.logs().split('\n').find((text) => text.includes('"url":"/t"') && text.includes('goload: access'))!)
  t.match(line, { req: { method: 'GET', url: '/t', remoteAddress: '203.0.113.9', remotePort: Number }, res: { statusCode: 200 }, goload: { pool: 'web' } })
})

t.test('a backend\'s Connection, Keep-Alive, Transfer-Encoding and the like never reach an HTTP/2 client', async (t) => {
  const backend = await startRawBackend(t, (socket) => {
    onRequestHeads(socket, () => {
      socket.write('HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n' +
        'Upgrade: h2c\r\nX-Hop: 1\r\nX-Kept: yes\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n')
    })
  })
  const write = await configFolder(t)
  await write('site.pem', site.cert)
  await write('site-key.pem', site.key)
  const port = await freePort()
  const file = await write('goload.yaml', `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    tls:\n      certificates: [{ cert: site.pem, key: site-key.pem }]\n    routes: [{ pool: raw }]\npools:\n  raw:\n    backends: [${backend.url}]\n`)
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const session = await h2Connect(t, `https://127.0.0.1:${port}`)
  for (const path of ['/one', '/two']) {
    const answer = await h2Request(session, { ':path': path })
    t.equal(answer.status, 200)
    t.equal(answer.body, 'hello world', 'the chunked body, whole')
    t.equal(answer.headers['x-kept'], 'yes')
    for (const name of ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'transfer-encoding', 'x-hop']) t.notOk(name in answer.headers, `no ${name}`)
  }
  t.notOk(session.destroyed, 'the session goes on')
})

t.test('WebSocket over HTTP/1.1 on the TLS port that offers h2', async (t) => {
  const { port } = await start(t)
  const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { rejectUnauthorized: false })
  t.teardown(() => { ws.terminate() })
  ws.on('error', () => {})
  await deadline(once(ws, 'open'), 10_000, 'the WebSocket to open')
  ws.send('who')
  t.equal(String((await nextMessage(ws)).data), 'ws')
  const session = await h2Connect(t, `https://127.0.0.1:${port}`)
  t.equal((await h2Request(session, { ':path': '/beside' })).status, 200, 'h2 beside it on the same port')
})

t.test('a reload turns h2 off for new handshakes; an HTTP/2 connection opened before goes on', async (t) => {
  const { port, run, rewrite } = await start(t)
  const before = await h2Connect(t, `https://127.0.0.1:${port}`)
  t.equal((await h2Request(before, { ':path': '/a' })).status, 200)
  await rewrite(false)
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/config reloaded/, 'the reload')
  t.equal(await negotiated(t, port, ['h2', 'http/1.1']), 'http/1.1', 'h2 no longer offered')
  t.equal((await h2Request(before, { ':path': '/b' })).status, 200, 'the session from before still serves')
  await rewrite(true)
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/config reloaded[^]*config reloaded/, 'the second reload')
  t.equal(await negotiated(t, port, ['h2', 'http/1.1']), 'h2', 'and on again')
})

t.test('a reload that would turn the h2c listener into a plain HTTP/1.1 one fails, saying a restart is needed', async (t) => {
  const { h2c, run, rewrite } = await start(t)
  const file = await rewrite(true)
  await writeFile(file, (await readFile(file, 'utf8')).replace(/(port: \d+\n {4}host: 127\.0\.0\.1\n) {4}http2: true\n/, '$1'))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/reload failed/, 'the reload to fail')
  t.match(run.logs(), `listeners[2]: port ${h2c} would change what it speaks (plain HTTP/1.1, TLS or h2c): that needs a restart`)
  const session = await h2Connect(t, `http://127.0.0.1:${h2c}`)
  t.equal((await h2Request(session, { ':path': '/still' })).status, 200, 'the h2c listener goes on')
})

t.test('HTTP/1.1 on a TLS listener that offers h2 keeps http.Server\'s rules: headersTimeout, Host required', async (t) => {
  const backend = await startBackend(t, echo)
  const write = await configFolder(t)
  await write('site.pem', site.cert)
  await write('site-key.pem', site.key)
  const port = await freePort()
  const file = await write('goload.yaml', `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    headersTimeout: 300\n    tls:\n      certificates: [{ cert: site.pem, key: site-key.pem }]\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backend.url}]\n`)
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  /** What goload answers to `head` on a new TLS connection (ALPN http/1.1), until it closes the connection. */
  const answer = async (head: string): Promise<{ text: string, ms: number }> => {
    const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
    t.teardown(() => { socket.destroy() })
    await deadline(once(socket, 'secureConnect'), 10_000, 'the TLS handshake')
    let text = ''
    socket.setEncoding('latin1').on('data', (chunk: string) => { text += chunk })
    const started = performance.now()
    socket.write(head)
    await deadline(once(socket, 'close'), 5000, 'goload to close the connection')
    return { text, ms: performance.now() - started }
  }
  const stalled = await answer('GET / HTTP/1.1\r\nHost: a.example.com\r\nX-Slow: ')
  t.match(stalled.text, /^HTTP\/1\.1 408 /, 'headers stalled past headersTimeout')
  t.ok(stalled.ms >= 250 && stalled.ms < 1500, `cut soon after headersTimeout (${Math.round(stalled.ms)} ms)`)
  t.match((await answer('GET / HTTP/1.1\r\nConnection: close\r\n\r\n')).text, /^HTTP\/1\.1 400 /, 'an HTTP/1.1 request without Host')
  t.equal(backend.received, 0)
})

t.test('shutdown: an HTTP/2 client is told GOAWAY, its stream in flight finishes, no HTTP/1.1 header is set on it', async (t) => {
  let answer = (): void => {}
  let arrived = (): void => {}
  const slowArrived = new Promise<void>((resolve) => { arrived = resolve })
  const backend = await startBackend(t, (request, response) => {
    request.resume()
    answer = () => { response.end('done') }
    arrived()
  })
  const port = await freePort()
  const write = await configFolder(t)
  const file = await write('goload.yaml', `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    http2: true\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backend.url}]\n`)
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  // Node drops a Connection header set on an HTTP/2 response with an UnsupportedWarning.
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const session = await h2Connect(t, `http://127.0.0.1:${port}`)
  const inFlight = h2Request(session, { ':path': '/slow' })
  await slowArrived
  const goaway = once(session, 'goaway')
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal((await deadline(goaway, 10_000, 'GOAWAY'))[0], http2.constants.NGHTTP2_NO_ERROR)
  answer()
  const done = await inFlight
  t.equal(done.status, 200)
  t.equal(done.body, 'done', 'the stream in flight got its whole answer')
  t.equal(await run.code, 0)
  t.same(warnings.map(String), [], 'no warning')
})

t.test('http2 is a boolean, and not for a redirectHttps listener: errors at the key\'s line', async (t) => {
  const write = await configFolder(t)
  const file = await write('goload.yaml', `listeners:
  - port: 8080
    redirectHttps: 8443
    http2: true
  - port: 8081
    http2: yes please
    routes: [{ pool: web }]
pools:
  web:
    backends: [http://127.0.0.1:3001]
`)
  const check = runMain(t, ['--check', '--config', file])
  t.equal(await check.code, 1)
  t.match(check.stderr(), `${file}:6:`)
  t.match(check.stderr(), /listeners\[1\]\.http2: .*boolean/)
  const redirect = await write('redirect.yaml', `listeners:
  - port: 8080
    redirectHttps: 8443
    http2: true
pools:
  web:
    backends: [http://127.0.0.1:3001]
`)
  const second = runMain(t, ['--check', '--config', redirect])
  t.equal(await second.code, 1)
  t.equal(second.stderr(), `${redirect}:4: listeners[0].http2: a redirectHttps listener answers clients that do not speak h2c (browsers): remove http2, or give h2c clients a listener of their own\n`)
})
