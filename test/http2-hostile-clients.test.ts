// Hostile HTTP/2 clients at a TLS listener: a flood of streams reset at once (rapid reset, CVE-2023-44487), a
// stream reset mid-request-body or mid-response, a client that sends GOAWAY and leaves with streams open, headers
// past the limit, a connection left idle. Each time the process stays up, every pending count and every backend
// request returns to 0, and other clients are answered. Real node:http2 clients, a real backend.
import { once } from 'node:events'
import http2 from 'node:http2'
import t, { type Test } from 'tap'
import { Listeners } from '../lib/cli/listeners.js'
import { createListenerServer, http2Limits } from '../lib/cli/servers.js'
import { configFolder } from './helpers/config-files.js'
import { h2Connect, h2Request } from './helpers/h2-client.js'
import { cancel, getHeaders, rawH2Connect } from './helpers/h2-frames.js'
import { capturedLogs, type LogLine } from './helpers/logs.js'
import { deadline } from './helpers/raw.js'
import { startBackend, waitFor, type Backend } from './helpers/servers.js'
import { TestPki } from './helpers/tls.js'

const pki = new TestPki()
t.teardown(() => { pki.close() })
const ca = pki.ca('goload test CA')
const site = pki.server(ca, { dns: ['a.example.com'] })

const { NGHTTP2_CANCEL, NGHTTP2_NO_ERROR, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants

/**
 * A backend where /slow never answers, /stream sends its first chunk and then nothing, /upload reads its body
 * (counting the bytes), and anything else is answered `ok`; and goload in front of it on a TLS listener.
 */
async function start (t: Test) {
  const uploaded = { bytes: 0 }
  const backend = await startBackend(t, (request, response) => {
    if (request.url === '/upload') {
      request.on('data', (chunk: Buffer) => { uploaded.bytes += chunk.length })
      return
    }
    request.resume()
    if (request.url === '/stream') response.write('first')
    else if (request.url !== '/slow') response.end('ok')
  })
  const write = await configFolder(t)
  const cert = await write('site.pem', site.cert)
  const key = await write('site-key.pem', site.key)
  const logs = capturedLogs('info')
  const listeners = new Listeners(logs.logger)
  t.teardown(() => listeners.close())
  await listeners.apply({
    listeners: [{ port: 0, host: '127.0.0.1', tls: { certificates: [{ cert, key }] }, routes: [{ path: '/', pool: 'web' }] }],
    pools: { web: { backends: [backend.url], closeTimeout: 100 } }
  })
  const origin = `https://127.0.0.1:${listeners.ports[0]}`
  /** The access line of the request to `path`, once written (at its end). */
  const accessLine = async (path: string): Promise<LogLine> => {
    const find = () => logs.lines.find((line) => line.msg === 'goload: access' && line.req?.url === path)
    await waitFor(() => find() !== undefined, `the access line of ${path}`)
    return find()!
  }
  return { backend, listeners, origin, uploaded, accessLine }
}

function pending (listeners: Listeners): number[] {
  return listeners.entries().flatMap(({ pool }) => pool.stats().backends.map((backend) => backend.pending))
}

/** Every count back at 0: goload's pending, and the backend's requests still open (each upstream request ended). */
async function settled (listeners: Listeners, backend: Backend): Promise<void> {
  await waitFor(() => pending(listeners).every((count) => count === 0) && backend.active === 0, 'every pending count and backend request to return to 0')
}

/** A client that did nothing wrong is answered, over HTTP/2 and HTTP/1.1, on the same listener. */
async function othersAnswered (t: Test, origin: string): Promise<void> {
  const other = await h2Connect(t, origin)
  t.equal((await h2Request(other, { ':path': '/other' })).body, 'ok', 'another HTTP/2 client is answered')
  other.close()
}

t.test('limits offered to every HTTP/2 client: 128 streams at once, a 32 KiB header list', async (t) => {
  const { origin } = await start(t)
  const session = await h2Connect(t, origin)
  t.match(session.remoteSettings, { maxConcurrentStreams: 128, maxHeaderListSize: 32 * 1024 })
  t.same(http2Limits, { maxConcurrentStreams: 128, maxHeaderListSize: 32 * 1024, idleTimeout: 75_000 })
  const big = session.request({ ':path': '/big', 'x-big': 'a'.repeat(40_000) }, { endStream: true })
  big.on('error', () => {})
  await deadline(new Promise((resolve) => big.once('close', resolve)), 10_000, 'the stream with too many headers to close')
  t.equal(big.rstCode, NGHTTP2_ENHANCE_YOUR_CALM, 'headers past the limit: the stream is refused')
  t.equal((await h2Request(session, { ':path': '/small' })).body, 'ok', 'and the session goes on')
})

t.test('rapid reset: a flood of streams reset at once ends with GOAWAY; every count returns to 0', async (t) => {
  const { backend, listeners, origin } = await start(t)
  const flood = await rawH2Connect(t, listeners.ports[0], 'a.example.com')
  // Each stream is HEADERS then RST_STREAM at once, written as bytes (node:http2's client on Node 22+ would not send
  // them); nghttp2 ends the session past ~1,000 such resets. 100 pairs per round trip (a PING after each: see
  // roundTrip), until the server has had enough.
  let opened = 0
  let open = true
  while (opened < 5000 && open) {
    const pairs: Buffer[] = []
    for (let i = 0; i < 100; i++, opened++) {
      const stream = 2 * opened + 1
      pairs.push(getHeaders(stream, 'a.example.com'), cancel(stream))
    }
    flood.socket.write(Buffer.concat(pairs))
    open = await flood.roundTrip()
  }
  const code = await deadline(flood.goaway, 10_000, 'GOAWAY to the flooding client')
  t.not(code, NGHTTP2_NO_ERROR, `the session is ended as an error (code ${code}) after ${opened} streams`)
  await settled(listeners, backend)
  // A stream the client reset before goload got to it is not sent on: the flood costs the backends next to nothing.
  t.ok(backend.received < 50, `${backend.received} of the reset streams reached the backend`)
  await othersAnswered(t, origin)
})

t.test('a stream reset mid-request-body: the upstream request ends, the session goes on', async (t) => {
  const { backend, listeners, origin, uploaded, accessLine } = await start(t)
  const session = await h2Connect(t, origin)
  const upload = session.request({ ':method': 'POST', ':path': '/upload', 'content-length': String(1024 * 1024) })
  upload.on('error', () => {})
  upload.write(Buffer.alloc(256 * 1024))
  await waitFor(() => uploaded.bytes > 0, 'the backend to receive part of the body')
  t.equal(backend.active, 1)
  upload.close(NGHTTP2_CANCEL)
  await settled(listeners, backend)
  t.ok(uploaded.bytes < 1024 * 1024, 'the body was cut short')
  t.match(await accessLine('/upload'), { res: { statusCode: 499 }, goload: { aborted: true } }, 'logged as a client that left before the response')
  t.equal((await h2Request(session, { ':path': '/after' })).body, 'ok', 'the same session takes another request')
  await othersAnswered(t, origin)
})

t.test('a stream reset mid-response: the upstream request ends, the session goes on', async (t) => {
  const { backend, listeners, origin, accessLine } = await start(t)
  const session = await h2Connect(t, origin)
  const stream = session.request({ ':path': '/stream' }, { endStream: true })
  stream.on('error', () => {})
  const [chunk] = await deadline(once(stream, 'data'), 10_000, 'the first chunk') as [Buffer]
  t.equal(String(chunk), 'first')
  t.equal(backend.active, 1)
  stream.close(NGHTTP2_CANCEL)
  await settled(listeners, backend)
  t.match(await accessLine('/stream'), { res: { statusCode: 200 }, goload: { aborted: true } }, 'logged as a response that did not reach its end')
  t.equal((await h2Request(session, { ':path': '/after' })).body, 'ok', 'the same session takes another request')
  t.notOk((await accessLine('/after')).goload.aborted, 'a whole response is not')
})

t.test('a client that sends GOAWAY and leaves with streams open: every one of them ends upstream', async (t) => {
  const { backend, listeners, origin } = await start(t)
  const session = await h2Connect(t, origin)
  for (const path of ['/slow', '/slow', '/stream']) session.request({ ':path': path }, { endStream: true }).on('error', () => {})
  await waitFor(() => backend.active === 3, 'the three requests to reach the backend')
  t.same(pending(listeners), [3])
  session.goaway(NGHTTP2_NO_ERROR)
  session.destroy()
  await settled(listeners, backend)
  await othersAnswered(t, origin)
})

t.test('a connection with no stream open is closed with GOAWAY after idleTimeout; one with a stream open is not', async (t) => {
  let answer = (): void => {}
  const server = createListenerServer({ port: 0, host: '127.0.0.1', http2: true }, (_request, response) => {
    answer = () => { response.end('late') }
  }, { limits: { idleTimeout: 100 } })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => server.close(resolve)))
  const origin = `http://127.0.0.1:${(server.address() as { port: number }).port}`

  const idle = await h2Connect(t, origin)
  const [code] = await deadline(once(idle, 'goaway'), 5000, 'GOAWAY to the idle client') as [number]
  t.equal(code, NGHTTP2_NO_ERROR, 'an idle connection is told GOAWAY, no error')

  const busy = await h2Connect(t, origin)
  let told = false
  busy.on('goaway', () => { told = true })
  const waiting = h2Request(busy, { ':path': '/long' })
  // Well past idleTimeout with the stream open and nothing sent either way.
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.notOk(told, 'no GOAWAY while a stream is open')
  answer()
  t.equal((await waiting).body, 'late')
  await deadline(once(busy, 'goaway'), 5000, 'GOAWAY once the connection is idle')
})
