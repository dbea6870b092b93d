import http from 'node:http'
import t from 'tap'
import { rawRequest, request } from './helpers/client.js'
import { settled, startBalancer, waitFor } from './helpers/servers.js'
import { startTlsBackend, TestPki } from './helpers/tls.js'

const pki = new TestPki()
const ca = pki.ca('goload test CA')
const local = pki.server(ca, { dns: ['localhost'], ip: ['127.0.0.1'] })
pki.close()

/** Echoes the method, path, body and the headers the test asks about, as JSON. */
function echo (request: http.IncomingMessage, response: http.ServerResponse): void {
  const chunks: Buffer[] = []
  request.on('data', (chunk: Buffer) => chunks.push(chunk))
  request.on('end', () => {
    response.setHeader('content-type', 'application/json')
    response.setHeader('x-backend', 'h2')
    response.end(JSON.stringify({
      version: request.httpVersion,
      method: request.method,
      path: request.url,
      body: Buffer.concat(chunks).toString(),
      headers: request.headers
    }))
  })
}

/** A PUT whose body goes in chunks, without a content-length. */
function chunkedPut (url: string, chunks: string[]): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'PUT', agent: false }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, body }) })
    })
    req.on('error', reject)
    for (const chunk of chunks) req.write(chunk)
    req.end()
  })
}

t.test('allowH2: an HTTP/2-only backend gets HTTP/2 requests and the client its answers', async (t) => {
  const backend = await startTlsBackend(t, { ...local, h2: true }, echo)
  const { app, url } = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert }, allowH2: true })

  const get = await request(url + '/items?id=7', {
    // Hop-by-hop headers are connection-specific and forbidden in HTTP/2: they must not break the request.
    headers: { connection: 'keep-alive, x-hop', 'keep-alive': 'timeout=5', 'x-hop': '1', te: 'trailers', 'proxy-connection': 'keep-alive', 'x-end-to-end': 'kept' }
  })
  t.equal(get.status, 200)
  t.equal(get.headers['x-backend'], 'h2', 'the backend\'s headers come back')
  const seen = JSON.parse(get.body)
  t.equal(seen.version, '2.0', 'the backend saw HTTP/2')
  t.equal(seen.method, 'GET')
  t.equal(seen.path, '/items?id=7')
  t.equal(seen.headers['x-end-to-end'], 'kept')
  for (const name of ['connection', 'keep-alive', 'x-hop', 'te', 'proxy-connection', 'transfer-encoding']) {
    t.equal(seen.headers[name], undefined, `${name} is not sent over HTTP/2`)
  }

  const post = await request(url + '/items', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'a body over h2' })
  t.equal(post.status, 200)
  t.same(JSON.parse(post.body).body, 'a body over h2')
  t.equal(JSON.parse(post.body).version, '2.0')

  // A body of unknown length, streamed (chunked from the client): no content-length and no transfer-encoding upstream.
  const chunked = await chunkedPut(url + '/items', ['stre', 'amed'])
  t.equal(chunked.status, 200)
  t.equal(JSON.parse(chunked.body).body, 'streamed')

  t.same(backend.versions, ['2.0', '2.0', '2.0'])
  await settled(app)
})

t.test('without allowH2 the balancer offers only HTTP/1.1, which an HTTP/2-only backend refuses: 502', async (t) => {
  const backend = await startTlsBackend(t, { ...local, h2: true }, echo)
  const { url } = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert } })
  const reply = await request(url)
  t.equal(reply.status, 502)
  t.same(backend.versions, [])
})

t.test('allowH2 still speaks HTTP/1.1 to a backend that offers only that', async (t) => {
  const backend = await startTlsBackend(t, local, echo)
  const { url } = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert }, allowH2: true })
  const reply = await request(url)
  t.equal(reply.status, 200)
  t.equal(JSON.parse(reply.body).version, '1.1')
})

t.test('health probes speak HTTP/2 to an HTTP/2-only backend too', async (t) => {
  const backend = await startTlsBackend(t, { ...local, h2: true }, echo)
  const { app } = await startBalancer(t, {
    backends: [backend.url],
    tls: { ca: ca.cert },
    allowH2: true,
    healthCheck: { path: '/health', interval: 20, healthyAfter: 1, unhealthyAfter: 1 }
  })
  await waitFor(() => backend.versions.length >= 3, 'three probes to reach the backend')
  t.same(backend.versions.slice(0, 3), ['2.0', '2.0', '2.0'])
  t.equal(app.goload.stats().backends[0].healthy, true)
})

t.test('allowH2: a GET sent with Content-Length and a body reaches an HTTP/2 backend with neither', async (t) => {
  const backend = await startTlsBackend(t, { ...local, h2: true }, echo)
  const { app, port } = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert }, allowH2: true })
  const answer = await rawRequest(port, 'GET /get HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello', 5000)
  t.match(answer, /^HTTP\/1\.1 200 /, 'answered')
  const seen = JSON.parse(/\{.*\}/s.exec(answer)?.[0] ?? 'null')
  t.equal(seen.version, '2.0')
  t.equal(seen.headers['content-length'], undefined, 'no Content-Length reaches the backend')
  t.equal(seen.body, '', 'nor the body')
  await settled(app)
})
