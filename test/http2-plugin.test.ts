// goload registered in your own Fastify app, served the ways Fastify serves: `https` (HTTP/1.1 over TLS),
// `http2: true, https: { allowHTTP1: true }` (h2 and HTTP/1.1 on one port, WebSocket over HTTP/1.1 beside h2), and
// `http2: true` plain (h2c). Real handshakes, real node:http2 and WebSocket clients, real backends.
import { once } from 'node:events'
import http2 from 'node:http2'
import https from 'node:https'
import type { FastifyServerOptions } from 'fastify'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import goload from '../lib/index.js'
import { h2Connect, h2Request } from './helpers/h2-client.js'
import { deadline } from './helpers/raw.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'
import { TestPki } from './helpers/tls.js'
import { nextMessage, startWsBackend } from './helpers/ws.js'

const pki = new TestPki()
t.teardown(() => { pki.close() })
const ca = pki.ca('goload test CA')
const site = pki.server(ca, { dns: ['a.example.com'] })

/** A backend answering with what it saw: protocol, Host and X-Forwarded-*; /stream sends a chunk and waits. */
async function start (t: Test, fastifyOptions: FastifyServerOptions) {
  const backend = await startBackend(t, (request, response) => {
    request.resume()
    if (request.url === '/stream') {
      response.write('first')
      return
    }
    response.setHeader('content-type', 'application/json')
    response.end(JSON.stringify({ host: request.headers.host, proto: request.headers['x-forwarded-proto'], forwardedHost: request.headers['x-forwarded-host'] }))
  })
  const ws = await startWsBackend(t, 'ws')
  const balancer = await startBalancer(t, { backends: [ws.url], prefix: '/ws' }, fastifyOptions, async (app) => {
    await app.register(goload, { backends: [backend.url], preserveHost: true })
  })
  return { balancer, backend }
}

/** An HTTPS/1.1 GET (no ALPN offered), trusting the test CA. */
async function httpsGet (port: number, path: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port, path, servername: 'a.example.com', headers: { host: `a.example.com:${port}` }, ca: ca.cert, agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      response.on('end', () => { resolve({ status: response.statusCode!, body }) })
    }).on('error', reject)
  })
}

/** The backend's answer to `who` through a WebSocket opened over HTTP/1.1, then closed. */
async function webSocketEcho (t: Test, port: number): Promise<string> {
  // ws passes TLS options on to tls.connect, servername included, though its types leave it out.
  const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { ca: ca.cert, servername: 'a.example.com' } as WebSocket.ClientOptions)
  t.teardown(() => { ws.terminate() })
  ws.on('error', () => {})
  await deadline(once(ws, 'open'), 10_000, 'the WebSocket to open')
  ws.send('who')
  const answer = String((await nextMessage(ws)).data)
  // A tunnel counts on its backend until it closes.
  ws.close()
  return answer
}

t.test('Fastify with https: HTTP/1.1 over TLS, X-Forwarded-Proto https, WebSocket', async (t) => {
  const { balancer } = await start(t, { https: { cert: site.cert, key: site.key } } as FastifyServerOptions)
  const answer = await httpsGet(balancer.port, '/x')
  t.equal(answer.status, 200)
  t.same(JSON.parse(answer.body), { host: `a.example.com:${balancer.port}`, proto: 'https', forwardedHost: `a.example.com:${balancer.port}` })
  t.equal(await webSocketEcho(t, balancer.port), 'ws')
})

t.test('Fastify with http2: true, https: { allowHTTP1: true }: h2 and HTTP/1.1 on one port, WebSocket over HTTP/1.1', async (t) => {
  const { balancer, backend } = await start(t, { http2: true, https: { allowHTTP1: true, cert: site.cert, key: site.key } } as FastifyServerOptions)
  const session = await h2Connect(t, `https://127.0.0.1:${balancer.port}`, { ca: ca.cert, servername: 'a.example.com' })
  t.equal(session.alpnProtocol, 'h2')
  const overH2 = await h2Request(session, { ':path': '/x', ':authority': `a.example.com:${balancer.port}` })
  t.equal(overH2.status, 200)
  t.same(JSON.parse(overH2.body), { host: `a.example.com:${balancer.port}`, proto: 'https', forwardedHost: `a.example.com:${balancer.port}` }, ':authority is the Host kept upstream')
  t.same(JSON.parse((await httpsGet(balancer.port, '/x')).body).proto, 'https', 'HTTP/1.1 on the same port')
  t.equal(await webSocketEcho(t, balancer.port), 'ws', 'a WebSocket over HTTP/1.1 on the same port')

  // A stream reset mid-response releases its backend, here too.
  const stream = session.request({ ':path': '/stream' }, { endStream: true })
  stream.on('error', () => {})
  await deadline(once(stream, 'data'), 10_000, 'the first chunk')
  stream.close(http2.constants.NGHTTP2_CANCEL)
  await settled(balancer.app)
  await waitFor(() => backend.active === 0, 'the upstream request to end')
})

t.test('Fastify with http2: true, plain: h2c with prior knowledge', async (t) => {
  const { balancer } = await start(t, { http2: true } as FastifyServerOptions)
  const session = await h2Connect(t, balancer.url)
  const answer = await h2Request(session, { ':path': '/x' }, 'a body')
  t.equal(answer.status, 200)
  t.same(JSON.parse(answer.body), { host: `127.0.0.1:${balancer.port}`, proto: 'http', forwardedHost: `127.0.0.1:${balancer.port}` })
})
