import { writeFile } from 'node:fs/promises'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { request } from './helpers/client.js'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

interface H2cBackend {
  url: string
  /** HTTP/2 connections opened to it. */
  sessions: number
  /** The HTTP version of each request it got. */
  versions: string[]
  /** Requests held until release() answers them. */
  held: http2.Http2ServerResponse[]
}

/** A plaintext HTTP/2 server (h2c, prior knowledge only: it speaks no HTTP/1.1), answering `h2c <path>`; `/hold` waits. */
async function startH2cBackend (t: Test): Promise<H2cBackend> {
  const backend: H2cBackend = { url: '', sessions: 0, versions: [], held: [] }
  const server = http2.createServer((request, response) => {
    backend.versions.push(request.httpVersion)
    if (request.url === '/hold') {
      backend.held.push(response)
      return
    }
    if (request.url === '/echo') {
      // The body and te as received, and trailers after the body.
      const chunks: Buffer[] = []
      request.on('data', (chunk: Buffer) => chunks.push(chunk))
      request.on('end', () => {
        response.addTrailers({ 'x-length': String(Buffer.concat(chunks).length), 'x-sum-bin': Buffer.from([1, 2]).toString('base64') })
        response.end(JSON.stringify({ te: request.headers.te ?? null, body: Buffer.concat(chunks).toString() }))
      })
      return
    }
    response.setHeader('x-backend', 'h2c')
    response.end(`h2c ${request.url}`)
  })
  server.on('session', () => { backend.sessions++ })
  await new Promise<void>((resolve) => { server.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => new Promise<void>((resolve) => {
    for (const response of backend.held) response.stream.close()
    server.close(() => { resolve() })
  }))
  backend.url = `h2c://127.0.0.1:${(server.address() as AddressInfo).port}`
  return backend
}

t.test('an h2c:// backend gets HTTP/2 with prior knowledge, many requests on one connection', async (t) => {
  const backend = await startH2cBackend(t)
  const { app, url } = await startBalancer(t, { backends: [backend.url] })

  const answer = await request(url + '/items?id=7')
  t.equal(answer.status, 200)
  t.equal(answer.body, 'h2c /items?id=7')
  t.equal(answer.headers['x-backend'], 'h2c')
  t.same(app.goload.stats().backends.map((b) => b.url), [backend.url], 'stats name the backend as configured')

  // Twenty requests in flight at once are twenty streams of one connection, not twenty connections (pipelining: 1
  // is an HTTP/1.1 setting).
  const held = Array.from({ length: 20 }, async () => request(url + '/hold'))
  await waitFor(() => backend.held.length === 20, 'the backend to hold 20 requests')
  t.equal(app.goload.stats().backends[0].pending, 20)
  for (const response of backend.held) response.end('released')
  for (const answer of await Promise.all(held)) t.equal(answer.body, 'released')
  t.equal(backend.sessions, 1, 'one HTTP/2 connection carried them all')
  t.ok(backend.versions.every((version) => version === '2.0'))
  await settled(app)
})

t.test('h2c backends added later, found through DNS, or probed by health checks speak h2c too', async (t) => {
  const [first, added, found] = await Promise.all([startH2cBackend(t), startH2cBackend(t), startH2cBackend(t)])
  const foundPort = new URL(found.url).port
  const { app, url } = await startBalancer(t, {
    backends: [first.url, { url: `h2c://grpc.internal:${foundPort}`, resolve: { lookup: async () => ['127.0.0.1'] } }],
    healthCheck: { path: '/health', interval: 20, unhealthyAfter: 1, healthyAfter: 1 },
    strategy: 'round-robin'
  })
  app.goload.add(added.url)
  await waitFor(() => first.versions.length > 0 && found.versions.length > 0 && added.versions.length > 0, 'a probe at each backend')
  t.ok(app.goload.stats().backends.every((b) => b.healthy), 'each answers its probe over h2c')
  const answers = await Promise.all(Array.from({ length: 6 }, async () => request(url + '/x')))
  t.ok(answers.every((answer) => answer.status === 200 && answer.body === 'h2c /x'))
  for (const backend of [first, added, found]) {
    t.ok(backend.versions.every((version) => version === '2.0'), 'HTTP/2 only')
    t.equal(backend.sessions, 2, 'one connection for probes, one for requests')
  }
  await settled(app)
})

t.test('an HTTP/2 client: te: trailers goes to the backend, its trailers come back, a body without length streams', async (t) => {
  const backend = await startH2cBackend(t)
  const { app, url } = await startBalancer(t, { backends: [backend.url] }, { http2: true } as object)
  const session = http2.connect(url)
  t.teardown(() => { session.close() })
  const call = session.request({ ':method': 'POST', ':path': '/echo', 'content-type': 'text/plain', te: 'trailers' })
  // No content-length: the body is known to follow from the HEADERS frame alone.
  call.write('first ')
  setImmediate(() => { call.end('second') })
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => { call.once('trailers', resolve) })
  let body = ''
  call.setEncoding('utf8')
  call.on('data', (chunk: string) => { body += chunk })
  await new Promise((resolve) => { call.once('end', resolve) })
  t.same(JSON.parse(body), { te: 'trailers', body: 'first second' })
  t.match(await trailers, { 'x-length': '12', 'x-sum-bin': 'AQI=' }, 'the backend\'s trailers reached the client')
  await settled(app)
})

t.test('a reload that turns an address from http:// into h2c:// (and back) reconnects it in its new protocol', async (t) => {
  const backend = await startH2cBackend(t)
  const address = new URL(backend.url).host
  const port = await freePort()
  const text = (url: string) => JSON.stringify({ listeners: [{ port, host: '127.0.0.1', routes: [{ pool: 'web' }] }], pools: { web: { backends: [{ url, id: 'api' }] } } })
  const file = await configFile(t, text(`http://${address}`), 'goload.json')
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const url = `http://127.0.0.1:${port}/x`
  t.equal((await request(url)).status, 502, 'HTTP/1.1 to an h2c-only server fails')
  let reloads = 0
  for (const [scheme, status] of [['h2c', 200], ['http', 502]] as const) {
    await writeFile(file, text(`${scheme}://${address}`))
    run.signals.emit('SIGHUP', 'SIGHUP')
    reloads++
    await waitFor(() => (run.logs().match(/config reloaded|reload failed/g) ?? []).length >= reloads, `reload ${reloads}`)
    // The backend's url changed: the old one leaves once drained, then the new one joins (see syncBackends); until
    // then, 503.
    let answer = await request(url)
    for (let tries = 0; answer.status === 503 && tries < 100; tries++) answer = await request(url)
    t.equal(answer.status, status, `${scheme}:// gets ${status}: its connections were made anew`)
  }
  t.notMatch(run.logs(), /reload failed/)
})

t.test('an HTTP/2 body without content-length is watched: a client too slow with it is answered 408 on its stream', async (t) => {
  const backend = await startH2cBackend(t)
  const { app, url } = await startBalancer(t, { backends: [backend.url], clientTimeout: 100, clientMinRate: 0 }, { http2: true } as object)
  const session = http2.connect(url)
  t.teardown(() => { session.close() })
  const call = session.request({ ':method': 'POST', ':path': '/echo', 'content-type': 'text/plain' })
  call.write('a start, and then nothing')
  const [headers] = await new Promise<[http2.IncomingHttpHeaders]>((resolve) => { call.once('response', (headers) => { resolve([headers]) }) })
  t.equal(headers[':status'], 408)
  t.equal(headers.connection, undefined)
  call.resume()
  call.close()
  await settled(app)
  // The connection goes on serving: only the stream was answered.
  const next = session.request({ ':path': '/after' })
  next.setEncoding('utf8')
  let body = ''
  next.on('data', (chunk: string) => { body += chunk })
  await new Promise((resolve) => { next.once('end', resolve) })
  t.equal(body, 'h2c /after')
})

t.test('an HTTP/1.1 backend\'s chunked trailers reach an HTTP/2 client too', async (t) => {
  const backend = await startBackend(t, (request, response) => {
    request.resume()
    response.writeHead(200, { trailer: 'x-checksum' })
    response.write('body')
    response.addTrailers({ 'x-checksum': 'abc' })
    response.end()
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url] }, { http2: true } as object)
  const session = http2.connect(url)
  t.teardown(() => { session.close() })
  const call = session.request({ ':path': '/', te: 'trailers' })
  const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) => { call.once('trailers', resolve) })
  call.resume()
  t.match(await trailers, { 'x-checksum': 'abc' })
  await settled(app)
})
