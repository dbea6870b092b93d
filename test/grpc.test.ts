import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { echoClient, grpc, startGrpcBackend, unary, type GrpcBackend, type Note } from './helpers/grpc.js'
import { request } from './helpers/client.js'
import { deadUrl, settled, startBalancer, waitFor } from './helpers/servers.js'
import { TestPki } from './helpers/tls.js'

// goload registered in a Fastify app that serves h2c (HTTP/2 with prior knowledge), as gRPC clients inside a network
// speak it; the backends are grpc-js servers at h2c:// URLs. A gRPC client keeps its connection open, and Fastify's
// close would wait for it (http2SessionTimeout, 72 s): closed with the app instead.
const http2App = { http2: true, forceCloseConnections: true } as object

type Call = grpc.ClientReadableStream<Note> & grpc.ClientWritableStream<Note>
type Methods = Record<string, (...args: unknown[]) => Call>

/** A call's final status, whatever it is. */
async function statusOf (call: grpc.ClientReadableStream<Note> | grpc.ClientWritableStream<Note>): Promise<grpc.StatusObject> {
  return new Promise((resolve) => { call.on('status', resolve) })
}

t.test('unary: the call, its metadata (-bin too) both ways, and its trailers', async (t) => {
  const backend = await startGrpcBackend(t, 'a', () => ({
    Unary: (call: grpc.ServerUnaryCall<Note, Note>, callback: grpc.sendUnaryData<Note>) => {
      const headers = new grpc.Metadata()
      headers.set('x-seen', String(call.metadata.get('x-id')[0]))
      headers.set('x-seen-bin', call.metadata.get('x-data-bin')[0] as Buffer)
      call.sendMetadata(headers)
      const trailers = new grpc.Metadata()
      trailers.set('x-trailer', 'after')
      trailers.set('x-trailer-bin', Buffer.from([0, 1, 2, 255]))
      callback(null, { text: `${call.request.text}!`, backend: 'a' }, trailers)
    }
  }))
  const { app, url } = await startBalancer(t, { backends: [backend.url] }, http2App)
  const client = echoClient(t, url)
  const metadata = new grpc.Metadata()
  metadata.set('x-id', 'call-1')
  metadata.set('x-data-bin', Buffer.from([9, 8, 7, 0]))
  const { reply, headers, trailers } = await unary(client, { text: 'hi' }, metadata)
  t.match(reply, { text: 'hi!', backend: 'a' })
  t.equal(headers.get('x-seen')[0], 'call-1', 'the backend got the call metadata')
  t.same(headers.get('x-seen-bin')[0], Buffer.from([9, 8, 7, 0]), 'binary metadata went through whole, both ways')
  t.equal(trailers.get('x-trailer')[0], 'after', 'trailing metadata reached the client')
  t.same(trailers.get('x-trailer-bin')[0], Buffer.from([0, 1, 2, 255]))
  await settled(app)
})

t.test('streams: 1,000 messages from the server, a client stream, and a bidirectional ping-pong', async (t) => {
  const backend = await startGrpcBackend(t, 'a', () => ({
    ServerStream: (call: grpc.ServerWritableStream<Note, Note>) => {
      let count = 0
      // Written as the stream takes them: back-pressure from the client through goload paces the server.
      const write = (): void => {
        while (count < call.request.count!) {
          if (!call.write({ text: call.request.text, count: count++ })) {
            call.once('drain', write)
            return
          }
        }
        call.end()
      }
      write()
    }
  }))
  const { app, url } = await startBalancer(t, { backends: [backend.url] }, http2App)
  const client = echoClient(t, url) as unknown as Methods

  const stream = client.ServerStream({ text: 'x'.repeat(100), count: 1000 })
  const counts: number[] = []
  stream.on('data', (note: Note) => { counts.push(note.count ?? 0) })
  const streamed = await statusOf(stream)
  t.equal(streamed.code, grpc.status.OK)
  t.equal(counts.length, 1000, 'every message arrived')
  t.same(counts, counts.slice().sort((a, b) => a - b), 'in order')

  let sum: Note | undefined
  const upload = client.ClientStream((error: Error | null, reply: Note) => { if (error === null) sum = reply })
  for (let i = 0; i < 50; i++) upload.write({ text: String(i % 10) })
  upload.end()
  t.equal((await statusOf(upload)).code, grpc.status.OK)
  t.equal(sum?.count, 50)
  t.equal(sum?.text, '0123456789'.repeat(5))

  // Each message waits for the answer to the one before: nothing may hold the request body back (a read-ahead would
  // wait for more than the client sends).
  const bidi = client.Bidi()
  const answers: Note[] = []
  for (let i = 0; i < 20; i++) {
    bidi.write({ text: `ping ${i}`, count: i })
    answers.push(await new Promise<Note>((resolve) => { bidi.once('data', resolve) }))
  }
  bidi.end()
  t.equal((await statusOf(bidi)).code, grpc.status.OK)
  t.same(answers.map((note) => note.text), Array.from({ length: 20 }, (_, i) => `ping ${i}`))
  await settled(app)
})

t.test('an error status from the backend: its code, message and -bin trailer reach the client', async (t) => {
  const backend = await startGrpcBackend(t, 'a', () => ({
    Unary: (_call: grpc.ServerUnaryCall<Note, Note>, callback: grpc.sendUnaryData<Note>) => {
      const metadata = new grpc.Metadata()
      metadata.set('x-detail-bin', Buffer.from([0xde, 0xad, 0xbe, 0xef]))
      callback({ code: grpc.status.INVALID_ARGUMENT, details: 'no such note: ünïcode %', metadata })
    },
    ServerStream: (call: grpc.ServerWritableStream<Note, Note>) => {
      // Fails after a few messages: the status comes in trailers after data.
      for (let i = 0; i < 3; i++) call.write({ count: i })
      call.emit('error', { code: grpc.status.FAILED_PRECONDITION, details: 'stopped at 3' })
    }
  }))
  const { app, url } = await startBalancer(t, { backends: [backend.url] }, http2App)
  const client = echoClient(t, url)
  const error = await unary(client, { text: 'x' }).then(() => undefined, (error: grpc.ServiceError) => error)
  t.equal(error?.code, grpc.status.INVALID_ARGUMENT)
  t.equal(error?.details, 'no such note: ünïcode %')
  t.same(error?.metadata.get('x-detail-bin')[0], Buffer.from([0xde, 0xad, 0xbe, 0xef]))

  // An error before any message is a trailers-only answer, and stays one through goload.
  const trailersOnly = await rawCall(url, { ':path': '/goload.test.Echo/Unary' })
  t.equal(trailersOnly.headers['grpc-status'], String(grpc.status.INVALID_ARGUMENT))
  t.ok(trailersOnly.flags & http2.constants.NGHTTP2_FLAG_END_STREAM, 'its HEADERS frame ends the stream')

  const stream = (client as unknown as Methods).ServerStream({ count: 3 })
  let received = 0
  stream.on('data', () => { received++ })
  stream.on('error', () => {})
  const status = await statusOf(stream)
  t.equal(received, 3)
  t.equal(status.code, grpc.status.FAILED_PRECONDITION)
  t.equal(status.details, 'stopped at 3')
  await settled(app)
})

t.test('cancellation: by the client mid-stream, by the server resetting its stream, by a stream idle past timeout; each count back to 0 once', async (t) => {
  let serverSaw = ''
  const backend = await startGrpcBackend(t, 'a', () => ({
    ServerStream: (call: grpc.ServerWritableStream<Note, Note>) => {
      call.on('cancelled', () => { serverSaw = 'cancelled' })
      if (call.request.text === 'idle') {
        call.write({ count: 0 })
        return
      }
      if (call.request.text === 'reset') {
        call.write({ count: 0 })
        // The server gives up on the call with no status: its HTTP/2 stream is reset.
        setImmediate(() => { (call as unknown as { call: { stream: http2.ServerHttp2Stream } }).call.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR) })
        return
      }
      let count = 0
      const write = (): void => {
        while (!call.cancelled && call.write({ count: count++ }));
        if (!call.cancelled) call.once('drain', write)
      }
      write()
    }
  }))
  const { app, url } = await startBalancer(t, { backends: [backend.url] }, http2App)
  const client = echoClient(t, url) as unknown as Methods

  const stream = client.ServerStream({ text: 'endless' })
  stream.on('error', () => {})
  let received = 0
  await new Promise<void>((resolve) => {
    stream.on('data', () => { if (++received === 10) resolve() })
  })
  t.equal(app.goload.stats().backends[0].pending, 1, 'a stream counts while it is open')
  stream.cancel()
  t.equal((await statusOf(stream)).code, grpc.status.CANCELLED)
  await waitFor(() => serverSaw === 'cancelled', 'the backend to see the call cancelled')
  await settled(app)

  // A quiet stream too: nothing flows that would find the client gone, goload cancels it upstream itself.
  serverSaw = ''
  const quiet = client.ServerStream({ text: 'idle' })
  quiet.on('error', () => {})
  await new Promise((resolve) => { quiet.once('data', resolve) })
  quiet.cancel()
  await waitFor(() => serverSaw === 'cancelled', 'the backend to see the quiet call cancelled')
  await settled(app)

  const reset = client.ServerStream({ text: 'reset' })
  reset.on('data', () => {})
  reset.on('error', () => {})
  const status = await statusOf(reset)
  // The client's stream is ended with a status, not reset: grpc-js would say INTERNAL "Call ended without gRPC status".
  t.equal(status.code, grpc.status.UNAVAILABLE, 'a backend that resets mid-stream: UNAVAILABLE')
  t.match(status.details, /^FST_GOLOAD_BAD_GATEWAY: /)
  await settled(app)
  t.same(app.goload.stats().backends.map((b) => b.pending), [0], 'released once: a second release would go below 0')

  // A stream on which nothing passes for `timeout` ms is cut, as nginx's grpc_read_timeout does.
  const short = await startBalancer(t, { backends: [backend.url], timeout: 200 }, http2App)
  const idle = (echoClient(t, short.url) as unknown as Methods).ServerStream({ text: 'idle' })
  idle.on('data', () => {})
  idle.on('error', () => {})
  const idled = await statusOf(idle)
  t.equal(idled.code, grpc.status.DEADLINE_EXCEEDED, 'idle past timeout: DEADLINE_EXCEEDED')
  t.match(idled.details, /^FST_GOLOAD_GATEWAY_TIMEOUT: /)
  await settled(short.app)
})

t.test('per call: one client connection\'s calls spread over three backends while one holds long streams', async (t) => {
  let arrived = 0
  const waiting: Array<() => void> = []
  const held = (backend: GrpcBackend) => ({
    // Each unary call is held until all 30 have arrived, so each one counts on its backend while the others are placed.
    Unary: (call: grpc.ServerUnaryCall<Note, Note>, callback: grpc.sendUnaryData<Note>) => {
      waiting.push(() => { callback(null, { backend: backend.name }) })
      if (++arrived === 30) for (const answer of waiting) answer()
    },
    ServerStream: (call: grpc.ServerWritableStream<Note, Note>) => { call.write({ backend: backend.name }) }
  })
  const backends = await Promise.all(['a', 'b', 'c'].map(async (name) => startGrpcBackend(t, name, held)))
  const { app, url } = await startBalancer(t, { backends: backends.map((backend) => backend.url) }, http2App)
  const client = echoClient(t, url) as unknown as Methods

  // Three long streams, all on a (the others drained for the while).
  app.goload.drain(backends[1].url)
  app.goload.drain(backends[2].url)
  const streams = Array.from({ length: 3 }, () => client.ServerStream({}))
  await Promise.all(streams.map(async (stream) => new Promise((resolve) => { stream.once('data', resolve) })))
  for (const stream of streams) stream.on('error', () => {})
  app.goload.undrain(backends[1].url)
  app.goload.undrain(backends[2].url)

  const calls = await Promise.all(Array.from({ length: 30 }, async () => unary(client as unknown as grpc.Client, {})))
  const served = { a: 0, b: 0, c: 0 } as Record<string, number>
  for (const { reply } of calls) served[reply.backend!]++
  t.equal(served.a + served.b + served.c, 30)
  // Least-busy with a at 3 streams: b and c take more of the calls; all came over one HTTP/2 connection.
  t.ok(served.b > served.a && served.c > served.a, `b and c took more than a (${JSON.stringify(served)})`)
  t.ok(served.b >= 9 && served.c >= 9, 'spread, not pinned')
  for (const stream of streams) stream.cancel()
  await settled(app)
})

t.test('goload\'s own failures are gRPC statuses: no backend, a dead backend, a rate limit, grpc-timeout', async (t) => {
  const backend = await startGrpcBackend(t, 'a', () => ({
    Unary: () => { /* never answers */ }
  }))
  const dead = (await deadUrl()).replace('http:', 'h2c:')

  const drained = await startBalancer(t, { backends: [backend.url], prefix: '/goload.test.Echo/Unary' }, http2App)
  drained.app.goload.drain(backend.url)
  const noBackend = await unary(echoClient(t, drained.url), {}).then(() => undefined, (error: grpc.ServiceError) => error)
  t.equal(noBackend?.code, grpc.status.UNAVAILABLE, 'no backend: UNAVAILABLE')
  t.match(noBackend?.details, /^FST_GOLOAD_NO_BACKEND: /)

  const refused = await startBalancer(t, { backends: [dead] }, http2App)
  const badGateway = await unary(echoClient(t, refused.url), {}).then(() => undefined, (error: grpc.ServiceError) => error)
  t.equal(badGateway?.code, grpc.status.UNAVAILABLE, 'a backend that refuses: UNAVAILABLE')
  t.match(badGateway?.details, /^FST_GOLOAD_BAD_GATEWAY: /)

  const limited = await startBalancer(t, { backends: [dead], rateLimit: { max: 1, timeWindow: 60_000 } }, http2App)
  const limitedClient = echoClient(t, limited.url)
  await unary(limitedClient, {}).catch(() => {})
  const rateLimited = await unary(limitedClient, {}).then(() => undefined, (error: grpc.ServiceError) => error)
  t.equal(rateLimited?.code, grpc.status.RESOURCE_EXHAUSTED, 'rate limited: RESOURCE_EXHAUSTED')
  t.match(rateLimited?.details, /^FST_GOLOAD_RATE_LIMITED: /)

  // Every backend at maxPending and no room to wait: UNAVAILABLE, with the queue's code.
  const full = await startBalancer(t, { backends: [backend.url], maxPending: 1, queue: { max: 0 } }, http2App)
  const fullClient = echoClient(t, full.url)
  const holding = (fullClient as unknown as Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>).Unary({}, () => {})
  await waitFor(() => full.app.goload.stats().backends[0].pending === 1, 'a call to hold the only slot')
  const queueFull = await unary(fullClient, {}).then(() => undefined, (error: grpc.ServiceError) => error)
  t.equal(queueFull?.code, grpc.status.UNAVAILABLE, 'queue full: UNAVAILABLE')
  t.match(queueFull?.details, /^FST_GOLOAD_QUEUE_FULL: /)
  holding.cancel()
  await settled(full.app)

  // grpc-timeout bounds the wait for the backend below the pool's timeout. A raw HTTP/2 client sends it (grpc-js keeps
  // its own deadline, which would end the call first), to a backend that never answers (a grpc-js server would end
  // the call at that deadline itself): the answer is a trailers-only response, its HEADERS frame ending the stream.
  const silent = http2.createServer(() => {})
  await new Promise<void>((resolve) => { silent.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { silent.close() })
  const silentUrl = `h2c://127.0.0.1:${(silent.address() as AddressInfo).port}`
  const slow = await startBalancer(t, { backends: [silentUrl], timeout: 30_000 }, http2App)
  const started = performance.now()
  const { headers, flags } = await rawCall(slow.url, { ':path': '/goload.test.Echo/Unary', 'grpc-timeout': '100m' })
  t.ok(performance.now() - started < 10_000, 'answered by grpc-timeout, not the pool\'s 30 s')
  t.equal(headers[':status'], 200)
  t.equal(headers['content-type'], 'application/grpc')
  t.equal(headers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED))
  t.match(decodeURIComponent(String(headers['grpc-message'])), /^FST_GOLOAD_GATEWAY_TIMEOUT: /)
  t.ok(flags & http2.constants.NGHTTP2_FLAG_END_STREAM, 'trailers-only: the headers end the stream')

  // A grpc-timeout that does not parse is no bound: the pool's timeout holds. (A grpc-js server would refuse the
  // header itself.)
  const bounded = await startBalancer(t, { backends: [silentUrl], timeout: 200 }, http2App)
  const malformed = await rawCall(bounded.url, { ':path': '/goload.test.Echo/Unary', 'grpc-timeout': '1x' })
  t.equal(malformed.headers['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED), 'the pool\'s timeout, 504: DEADLINE_EXCEEDED')
  // A backend that sends its headers and then resets the stream, before any message: one trailers-only answer.
  const resetting = http2.createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'application/grpc' })
    response.stream.once('wantTrailers', () => {})
    setImmediate(() => { response.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR) })
  })
  await new Promise<void>((resolve) => { resetting.listen(0, '127.0.0.1', resolve) })
  t.teardown(() => { resetting.close() })
  const early = await startBalancer(t, { backends: [`h2c://127.0.0.1:${(resetting.address() as AddressInfo).port}`] }, http2App)
  const cut = await rawCall(early.url, { ':path': '/goload.test.Echo/Unary' })
  t.equal(cut.headers['grpc-status'], String(grpc.status.UNAVAILABLE), 'reset after its headers: UNAVAILABLE')
  t.ok(cut.flags & http2.constants.NGHTTP2_FLAG_END_STREAM, 'in a trailers-only answer')
  await settled(early.app)

  // A target goload refuses (400) is INTERNAL, as gRPC reads an HTTP 400.
  const refusedTarget = await rawCall(bounded.url, { ':path': '/goload.test.Echo/%2e%2e/Unary' })
  t.equal(refusedTarget.headers['grpc-status'], String(grpc.status.INTERNAL))
  t.match(decodeURIComponent(String(refusedTarget.headers['grpc-message'])), /^FST_GOLOAD_BAD_REQUEST_TARGET: /)

  // gRPC-Web over HTTP/1.1 gets the same status, in the headers, with its own content type.
  const overHttp1 = await startBalancer(t, { backends: [backend.url] })
  overHttp1.app.goload.drain(backend.url)
  const web = await request(overHttp1.url + '/goload.test.Echo/Unary', { method: 'POST', headers: { 'content-type': 'application/grpc-web+proto' }, body: Buffer.alloc(5) })
  t.equal(web.status, 200)
  t.equal(web.headers['content-type'], 'application/grpc-web+proto')
  t.equal(web.headers['grpc-status'], String(grpc.status.UNAVAILABLE))
  t.equal(web.body, '')
  await settled(slow.app)
  await settled(refused.app)
  await settled(bounded.app)
})

/** A unary call from a raw HTTP/2 client (an empty message): its response headers once they come. */
async function rawCall (url: string, headers: http2.OutgoingHttpHeaders): Promise<{ headers: http2.IncomingHttpHeaders, flags: number }> {
  const session = http2.connect(url)
  const call = session.request({ ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', ...headers })
  call.end(Buffer.from([0, 0, 0, 0, 0]))
  const answer = await new Promise<{ headers: http2.IncomingHttpHeaders, flags: number }>((resolve) => {
    call.once('response', (headers, flags) => { resolve({ headers, flags }) })
  })
  call.resume()
  session.close()
  return answer
}

t.test('gRPC health checks take a backend NOT_SERVING out, and bring it back SERVING', async (t) => {
  const [a, b] = await Promise.all([startGrpcBackend(t, 'a'), startGrpcBackend(t, 'b')])
  const check = { interval: 20, timeout: 1000, healthyAfter: 1, unhealthyAfter: 1 }
  const whole = await startBalancer(t, { backends: [a.url, b.url], healthCheck: { grpc: true, ...check } }, http2App)
  const service = await startBalancer(t, { backends: [a.url, b.url], healthCheck: { grpc: { service: 'goload.test.Echo' }, ...check } }, http2App)
  const healthy = (app: typeof whole.app) => app.goload.stats().backends.map((backend) => backend.healthy)

  a.health.setStatus('', 'NOT_SERVING')
  await waitFor(() => healthy(whole.app)[0] === false, 'a to go unhealthy')
  t.same(healthy(whole.app), [false, true])
  t.same(healthy(service.app), [true, true], 'the service\'s own status is what its check reads')
  const calls = await Promise.all(Array.from({ length: 4 }, async () => unary(echoClient(t, whole.url), {})))
  t.ok(calls.every(({ reply }) => reply.backend === 'b'), 'no call goes to a backend out of rotation')

  b.health.setStatus('goload.test.Echo', 'NOT_SERVING')
  await waitFor(() => healthy(service.app)[1] === false, 'b\'s service to go unhealthy')
  b.health.setStatus('goload.test.Echo', 'SERVING')
  a.health.setStatus('', 'SERVING')
  await waitFor(() => healthy(whole.app)[0] && healthy(service.app)[1], 'both back')

  // A backend that refuses the connection fails its check too.
  const gone = await startBalancer(t, { backends: [(await deadUrl()).replace('http:', 'h2c:')], healthCheck: { grpc: true, ...check } }, http2App)
  await waitFor(() => healthy(gone.app)[0] === false, 'a backend that refuses to go unhealthy')

  // A service the backend does not know is answered NOT_FOUND: not healthy either.
  const unknown = await startBalancer(t, { backends: [a.url], healthCheck: { grpc: { service: 'nope' }, ...check } }, http2App)
  await waitFor(() => healthy(unknown.app)[0] === false, 'a backend asked of an unknown service to go unhealthy')
})

t.test('over TLS: an https:// backend with allowH2 serves calls side by side with open streams, and answers gRPC health checks', async (t) => {
  const pki = new TestPki()
  const ca = pki.ca('goload gRPC test CA')
  const local = pki.server(ca, { ip: ['127.0.0.1'] })
  pki.close()
  const backend = await startGrpcBackend(t, 'tls', (backend) => ({
    ServerStream: (call: grpc.ServerWritableStream<Note, Note>) => { call.write({ backend: backend.name }) }
  }), local)
  const { app, url } = await startBalancer(t, {
    backends: [backend.url],
    tls: { ca: ca.cert },
    allowH2: true,
    // Several calls on each connection: what makes them HTTP/2 streams of one connection rather than connections.
    pipelining: 10,
    healthCheck: { grpc: true, interval: 20, healthyAfter: 1, unhealthyAfter: 1 }
  }, http2App)
  const client = echoClient(t, url) as unknown as Methods
  const streams = Array.from({ length: 3 }, () => client.ServerStream({}))
  await Promise.all(streams.map(async (stream) => new Promise((resolve) => { stream.once('data', resolve) })))
  for (const stream of streams) stream.on('error', () => {})
  // The unary calls go out while the streams are open on the same TLS connection.
  const calls = await Promise.all(Array.from({ length: 5 }, async () => unary(client as unknown as grpc.Client, { text: 'over tls' })))
  t.ok(calls.every(({ reply }) => reply.backend === 'tls' && reply.text === 'over tls'))
  backend.health.setStatus('', 'NOT_SERVING')
  await waitFor(() => !app.goload.stats().backends[0].healthy, 'the TLS backend to go unhealthy')
  for (const stream of streams) stream.cancel()
  await settled(app)
})
