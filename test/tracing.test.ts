// OpenTelemetry tracing (issue 18): a SERVER span per request and a CLIENT span per attempt, exported over OTLP/HTTP
// (JSON) to a real receiver; exactly one traceparent reaches the backend, naming the CLIENT span as parent.
import type http from 'node:http'
import net from 'node:net'
import Fastify, { type FastifyServerOptions } from 'fastify'
import t from 'tap'
import goload from '../lib/index.js'
import { request, rawRequest } from './helpers/client.js'
import { h2Connect, h2Request } from './helpers/h2-client.js'
import { capturedLogs } from './helpers/logs.js'
import { CLIENT, headerLines, parseTraceparent, SERVER, startCollector, type ReceivedSpan } from './helpers/otlp.js'
import { onRequestHeads, startRawBackend } from './helpers/raw.js'
import { deadUrl, startBackend, startBalancer, waitFor } from './helpers/servers.js'

/** What the backend received, by request path: each traceparent and tracestate line. */
interface Seen { traceparent: string[], tracestate: string[] }

async function startTracedBackend (t: Parameters<typeof startBackend>[0]) {
  const seen = new Map<string, Seen>()
  const backend = await startBackend(t, (req: http.IncomingMessage, res: http.ServerResponse) => {
    seen.set(req.url!, { traceparent: headerLines(req, 'traceparent'), tracestate: headerLines(req, 'tracestate') })
    req.resume()
    req.on('end', () => { res.end('ok') })
  })
  return { backend, seen }
}

const sampledParent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01'

t.test('traced requests', async (t) => {
  const collector = await startCollector(t)
  const { backend, seen } = await startTracedBackend(t)
  const logs = capturedLogs('info')
  // A short batch delay: spans reach the receiver within ms of each request, not after 5 s.
  const { app, url, port } = await startBalancer(t, { backends: [backend.url], tracing: { otlp: collector.url, exportDelay: 10, serviceName: 'edge' } }, { logger: logs.logger })

  /** The one traceparent the backend saw for `path`, and the spans of its trace once server and client arrived. */
  const traced = async (path: string): Promise<{ parent: ReturnType<typeof parseTraceparent>, server: ReceivedSpan, client: ReceivedSpan }> => {
    const lines = seen.get(path)!
    t.equal(lines.traceparent.length, 1, `${path}: the backend saw exactly one traceparent line`)
    const parent = parseTraceparent(lines.traceparent[0])
    const spans = await collector.trace(parent.traceId, 2)
    return { parent, server: spans.find((span) => span.kind === SERVER)!, client: spans.find((span) => span.kind === CLIENT)! }
  }

  t.test('a request without traceparent: a new trace, its SERVER span, its CLIENT span the backend\'s parent', async (t) => {
    const answer = await request(`${url}/fresh?q=1`, { headers: { 'user-agent': 'tracing-test' } })
    t.equal(answer.status, 200)
    const { parent, server, client } = await traced('/fresh?q=1')
    t.equal(parent.flags, '01', 'sampled (sampleRatio defaults to 1)')
    t.equal(server.parentSpanId, undefined, 'the server span starts the trace')
    t.equal(server.name, 'GET /')
    t.equal(server.service, 'edge')
    t.match(server.attributes, { 'http.request.method': 'GET', 'url.path': '/fresh', 'http.route': '/', 'http.response.status_code': 200, 'user_agent.original': 'tracing-test', 'goload.pool': 'default', 'client.address': '127.0.0.1' })
    t.equal(client.parentSpanId, server.spanId, 'the client span is the server span\'s child')
    t.equal(client.spanId, parent.parentId, 'the backend\'s parent is the client span')
    t.match(client.attributes, {
      'http.request.method': 'GET',
      'server.address': '127.0.0.1',
      'server.port': Number(new URL(backend.url).port),
      'url.full': `${backend.url}/fresh?q=1`,
      'http.response.status_code': 200,
      'goload.pool': 'default',
      'goload.strategy': 'least-busy',
      'goload.backend': backend.url,
      'goload.retry': 0,
      'goload.queue_wait_ms': 0
    })
    t.equal(client.attributes['http.request.resend_count'], undefined, 'a first attempt is no resend')
    t.equal(server.status.code, 0)
    // The access line carries the ids a log tool links to the trace.
    await waitFor(() => logs.lines.some((line) => line.msg === 'goload: access' && line.req.url === '/fresh?q=1'), 'the access line')
    const line = logs.lines.find((line) => line.msg === 'goload: access' && line.req.url === '/fresh?q=1')!
    t.equal(line.trace_id, parent.traceId)
    t.equal(line.span_id, server.spanId)
  })

  t.test('a valid incoming traceparent is continued, its tracestate passed on', async (t) => {
    await request(`${url}/continued`, { headers: { traceparent: sampledParent, tracestate: 'vendor=abc' } })
    const { parent, server, client } = await traced('/continued')
    t.equal(parent.traceId, '0af7651916cd43dd8448eb211c80319c', 'the client\'s trace goes on')
    t.equal(server.parentSpanId, 'b7ad6b7169203331', 'the server span\'s parent is the client\'s span')
    t.equal(parent.parentId, client.spanId, 'not the client\'s parent id: the client span\'s')
    t.same(seen.get('/continued')!.tracestate, ['vendor=abc'])
  })

  t.test('two traceparent lines from the client: a new trace, and one traceparent to the backend', async (t) => {
    const other = '00-11111111111111111111111111111111-2222222222222222-01'
    const answer = await rawRequest(port, `GET /twice HTTP/1.1\r\nHost: x\r\ntraceparent: ${sampledParent}\r\ntraceparent: ${other}\r\ntracestate: vendor=abc\r\nConnection: close\r\n\r\n`)
    t.match(answer, /^HTTP\/1\.1 200 /)
    const { parent, server, client } = await traced('/twice')
    t.not(parent.traceId, '0af7651916cd43dd8448eb211c80319c')
    t.not(parent.traceId, '11111111111111111111111111111111')
    t.equal(server.parentSpanId, undefined, 'W3C: an ambiguous traceparent starts a new trace')
    t.equal(parent.parentId, client.spanId)
    t.same(seen.get('/twice')!.tracestate, [], 'the tracestate of a trace that did not go on is dropped')
  })

  t.test('a malformed traceparent: a new trace, and one valid traceparent to the backend', async (t) => {
    await request(`${url}/malformed`, { headers: { traceparent: '00-not-a-trace-01' } })
    const { parent, server, client } = await traced('/malformed')
    t.equal(server.parentSpanId, undefined)
    t.equal(parent.parentId, client.spanId)
  })

  t.test('a goload error ends the server span as ERROR with its FST code', async (t) => {
    // No backend can be had: 503 without any attempt, so no client span.
    app.goload.drain(backend.url)
    t.teardown(() => { app.goload.undrain(backend.url) })
    const answer = await request(`${url}/none`, { headers: { traceparent: sampledParent.replace('b7ad6b7169203331', 'c7ad6b7169203331') } })
    t.equal(answer.status, 503)
    await waitFor(() => collector.spans.some((span) => span.parentSpanId === 'c7ad6b7169203331'), 'the server span of /none')
    const server = collector.spans.find((span) => span.parentSpanId === 'c7ad6b7169203331')!
    t.same(server.status, { code: 2, message: 'FST_GOLOAD_NO_BACKEND' })
    t.match(server.attributes, { 'error.type': 'FST_GOLOAD_NO_BACKEND', 'http.response.status_code': 503 })
  })
})

t.test('retries are sibling CLIENT spans under the server span; the backend sees the last one as parent', async (t) => {
  const collector = await startCollector(t)
  const { backend, seen } = await startTracedBackend(t)
  const dead = await deadUrl()
  // round-robin from the first: the refusing backend is tried first, the good one next.
  const { url } = await startBalancer(t, { backends: [dead, backend.url], strategy: 'round-robin', retries: 1, tracing: { otlp: collector.url, exportDelay: 10 } })
  const answer = await request(`${url}/retried`)
  t.equal(answer.status, 200)
  const parent = parseTraceparent(seen.get('/retried')!.traceparent[0])
  t.equal(seen.get('/retried')!.traceparent.length, 1)
  const spans = await collector.trace(parent.traceId, 3)
  const server = spans.find((span) => span.kind === SERVER)!
  const clients = spans.filter((span) => span.kind === CLIENT).sort((a, b) => Number(a.attributes['goload.retry']) - Number(b.attributes['goload.retry']))
  t.equal(clients.length, 2)
  t.ok(clients.every((span) => span.parentSpanId === server.spanId), 'both attempts are children of the server span')
  t.match(clients[0], { status: { code: 2, message: 'ECONNREFUSED' }, attributes: { 'goload.backend': dead, 'goload.retry': 0, 'error.type': 'ECONNREFUSED' } })
  t.match(clients[1], { status: { code: 0 }, attributes: { 'goload.backend': backend.url, 'goload.retry': 1, 'http.request.resend_count': 1, 'http.response.status_code': 200 } })
  t.equal(parent.parentId, clients[1].spanId, 'the traceparent sent names the attempt that carried it')
  t.equal(server.status.code, 0, 'the request was answered')
})

t.test('sampleRatio 0: no span is exported, and the backend still gets a traceparent (sampled flag 00)', async (t) => {
  const collector = await startCollector(t)
  const { backend, seen } = await startTracedBackend(t)
  const { app, url } = await startBalancer(t, { backends: [backend.url], tracing: { otlp: collector.url, sampleRatio: 0, exportDelay: 10 } })
  await request(`${url}/unsampled`)
  t.equal(seen.get('/unsampled')!.traceparent.length, 1)
  const parent = parseTraceparent(seen.get('/unsampled')!.traceparent[0])
  t.equal(parent.flags, '00')
  // Closing exports whatever is batched: nothing was.
  await app.close()
  t.equal(collector.spans.length, 0)
  t.equal(collector.posts, 0)
})

t.test('a collector that is down: every request answered, the failure logged once', async (t) => {
  const { backend } = await startTracedBackend(t)
  const logs = capturedLogs('info')
  const { app, url } = await startBalancer(t, { backends: [backend.url], tracing: { otlp: await deadUrl(), exportDelay: 10, exportTimeout: 200 } }, { logger: logs.logger })
  const failures = () => logs.lines.filter((line) => /tracing export failed/.test(line.msg as string))
  t.equal((await request(`${url}/a`)).status, 200)
  await waitFor(() => failures().length === 1, 'the first failed export to be logged')
  for (let i = 0; i < 5; i++) t.equal((await request(`${url}/b${i}`)).status, 200)
  // Closing exports the spans batched since: that fails again, and is not said again.
  const closing = performance.now()
  await app.close()
  t.ok(performance.now() - closing < 5000, 'closing waits for the collector at most exportTimeout (and the requests\' ends)')
  t.equal(failures().length, 1)
  t.equal(failures()[0].level, 40)
})

t.test('tracing options are checked, and registrations of one instance share one exporter', async (t) => {
  const backend = await startBackend(t)
  await t.rejects(startBalancer(t, { backends: [backend.url], tracing: { otlp: 'collector:4318' } }), /tracing\.otlp must be an http\(s\):\/\/ URL/)
  await t.rejects(startBalancer(t, { backends: [backend.url], tracing: { otlp: 'http://collector:4318', sampleRatio: 2 } }), /tracing\.sampleRatio must be a number from 0 to 1/)
  await t.rejects(startBalancer(t, { backends: [backend.url], tracing: { otlp: 'http://collector:4318', sample: 1 } as never }), /tracing has an unknown field "sample"/)
  await t.rejects(startBalancer(t, { backends: [backend.url], tracing: { otlp: 'http://collector:4318', exportDelay: 2 ** 31 } }), /tracing\.exportDelay must be a whole number of ms from 1 to 2147483647/)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(goload, { prefix: '/a', backends: [backend.url], tracing: { otlp: 'http://127.0.0.1:1' } })
  await app.register(goload, { prefix: '/b', backends: [backend.url], tracing: { otlp: 'http://127.0.0.1:1' } })
  app.register(goload, { prefix: '/c', backends: [backend.url], tracing: { otlp: 'http://127.0.0.1:2' } })
  await t.rejects(async () => { await app.ready() }, /tracing differs from the tracing option of an earlier registration/)
})

t.test('a collector that fails then answers: one warning, then one line saying exports work again', async (t) => {
  const collector = await startCollector(t)
  const { backend, seen } = await startTracedBackend(t)
  const logs = capturedLogs('info')
  const { url } = await startBalancer(t, { backends: [backend.url], tracing: { otlp: collector.url, exportDelay: 10 } }, { logger: logs.logger })
  collector.failing = true
  await request(`${url}/lost`)
  await waitFor(() => logs.lines.some((line) => /tracing export failed/.test(line.msg as string)), 'the failure to be logged')
  collector.failing = false
  await request(`${url}/kept`)
  await collector.trace(parseTraceparent(seen.get('/kept')!.traceparent[0]).traceId, 2)
  await waitFor(() => logs.lines.some((line) => /tracing export works again/.test(line.msg as string)), 'the recovery to be logged')
  t.equal(logs.lines.filter((line) => /tracing export/.test(line.msg as string)).length, 2)
})

t.test('a request that waited for a backend with room: its queue wait on the CLIENT span; a backend 5xx is an ERROR', async (t) => {
  const collector = await startCollector(t)
  let release = () => {}
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    if (req.url === '/held') release = () => res.end('ok')
    else res.writeHead(503).end('busy')
  })
  const { url, app } = await startBalancer(t, { backends: [backend.url], maxPending: 1, tracing: { otlp: collector.url, exportDelay: 10 } })
  const held = request(`${url}/held`)
  await waitFor(() => backend.received === 1, 'the first request at the backend')
  const queued = request(`${url}/queued`)
  await waitFor(() => app.goload.stats().queued === 1, 'the second request in the queue')
  release()
  await held
  t.equal((await queued).status, 503)
  await waitFor(() => collector.spans.some((span) => span.attributes['url.path'] === '/queued'), 'the server span of /queued')
  const server = collector.spans.find((span) => span.attributes['url.path'] === '/queued')!
  const [client] = await collector.trace(server.traceId, 2).then((spans) => spans.filter((span) => span.kind === CLIENT))
  t.ok(Number(client.attributes['goload.queue_wait_ms']) > 0, 'it waited in the queue')
  t.match(client, { status: { code: 2 }, attributes: { 'http.response.status_code': 503, 'error.type': '503' } })
  t.match(server, { status: { code: 2 }, attributes: { 'http.response.status_code': 503, 'error.type': '503' } })
})

t.test('an upgrade (WebSocket) sends its backend one traceparent too, and its server span ends 101 with the tunnel', async (t) => {
  const collector = await startCollector(t)
  const heads: string[] = []
  const backend = await startRawBackend(t, (socket) => {
    onRequestHeads(socket, (head) => {
      heads.push(head)
      socket.end('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-raw/1\r\nConnection: Upgrade\r\n\r\n')
    })
  })
  const { port } = await startBalancer(t, { backends: [backend.url], tracing: { otlp: collector.url, exportDelay: 10 } })
  const client = net.connect(port, '127.0.0.1')
  let answer = ''
  client.setEncoding('latin1').on('data', (chunk: string) => { answer += chunk })
  client.write(`GET /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x-raw/1\r\ntraceparent: ${sampledParent}\r\ntraceparent: ${sampledParent}\r\n\r\n`)
  await waitFor(() => answer.startsWith('HTTP/1.1 101 '), 'the 101')
  client.destroy()
  const lines = heads[0].split('\r\n').filter((line) => /^traceparent:/i.test(line))
  t.equal(lines.length, 1, 'one traceparent line on the wire')
  const parent = parseTraceparent(lines[0].replace(/^traceparent:\s*/i, ''))
  const spans = await collector.trace(parent.traceId, 2)
  const server = spans.find((span) => span.kind === SERVER)!
  t.equal(server.parentSpanId, undefined, 'two traceparent lines: a new trace')
  t.equal(server.attributes['http.response.status_code'], 101)
  t.equal(spans.find((span) => span.kind === CLIENT)!.spanId, parent.parentId)
})

t.test('an HTTP/2 client\'s traceparent is continued, and its backend gets one', async (t) => {
  const collector = await startCollector(t)
  const { backend, seen } = await startTracedBackend(t)
  const { url } = await startBalancer(t, { backends: [backend.url], tracing: { otlp: collector.url, exportDelay: 10 } }, { http2: true } as FastifyServerOptions)
  const session = await h2Connect(t, url)
  t.equal((await h2Request(session, { ':path': '/h2', traceparent: sampledParent })).status, 200)
  t.equal(seen.get('/h2')!.traceparent.length, 1)
  const parent = parseTraceparent(seen.get('/h2')!.traceparent[0])
  t.equal(parent.traceId, '0af7651916cd43dd8448eb211c80319c')
  const spans = await collector.trace(parent.traceId, 2)
  const server = spans.find((span) => span.kind === SERVER)!
  t.match(server, { parentSpanId: 'b7ad6b7169203331', attributes: { 'network.protocol.version': '2' } })
  t.equal(spans.find((span) => span.kind === CLIENT)!.spanId, parent.parentId)
})
