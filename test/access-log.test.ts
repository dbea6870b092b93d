// One access line per proxied request, at info through request.log, when the exchange ends: the backend, the pool,
// the status, the times, the body bytes, the retries and our own code; never a header, a cookie or a body.
import { EventEmitter } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { serve } from '../lib/cli/main.js'
import goload from '../lib/index.js'
import { request, rawRequest } from './helpers/client.js'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { capturedLogs, type LogLine } from './helpers/logs.js'
import { deadline } from './helpers/raw.js'
import { deadUrl, hello, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

function accessLines (lines: LogLine[]): LogLine[] {
  return lines.filter((line) => line.msg === 'goload: access')
}

async function oneAccessLine (lines: LogLine[]): Promise<LogLine> {
  await waitFor(() => accessLines(lines).length >= 1, 'the access line')
  return accessLines(lines)[0]
}

t.test('a proxied request: one access line with the request as received, the backend, the pool, the times and the body bytes', async (t) => {
  const backend = await startBackend(t, (req, res) => { res.end('Hello, twelve') })
  const logs = capturedLogs('info')
  const { app, url, port } = await startBalancer(t, { name: 'web', backends: [{ url: backend.url, id: 'b1' }] }, { logger: logs.logger })
  t.match(await rawRequest(port, 'GET /a%20b/../c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 400 /, 'a dot segment is refused, and logged too')
  t.equal((await request(url + '/a%20b?x=1&y')).body, 'Hello, twelve')
  await settled(app)
  await waitFor(() => accessLines(logs.lines).length === 2, 'two access lines')
  const [refused, line] = accessLines(logs.lines)
  t.equal(refused.res.statusCode, 400)
  t.same(refused.goload, { pool: 'web', retries: 0, bytes: refused.goload.bytes, code: 'FST_GOLOAD_BAD_REQUEST_TARGET' }, 'no backend, no upstream time')
  t.ok(refused.goload.bytes > 0, 'the error body counts')

  t.equal(line.level, 30, 'info')
  t.match(line.req, { method: 'GET', url: '/a%20b?x=1&y', remoteAddress: '127.0.0.1' })
  t.equal(line.res.statusCode, 200)
  t.type(line.reqId, 'string', 'the request logger\'s bindings')
  t.match(line.goload, { pool: 'web', backend: 'b1', retries: 0, bytes: 13 })
  t.notOk('code' in line.goload, 'no code: the backend answered')
  t.notOk('aborted' in line.goload)
  t.ok(line.goload.upstreamTime > 0, 'upstream time, timed for least-busy too')
  t.ok(line.responseTime >= line.goload.upstreamTime, 'the total time holds the upstream time')
  t.equal(line.responseTime, Math.round(line.responseTime * 100) / 100, 'times in ms to 0.01')
  t.equal(line.goload.upstreamTime, Math.round(line.goload.upstreamTime * 100) / 100)
  const completed = logs.lines.filter((entry) => entry.msg === 'request completed' && entry.req === undefined)
  t.equal(completed.length, 2, 'the app\'s own request logging is left alone in the plugin')
})

t.test('bytes: a chunked body streamed through an app with a slow onSend hook arrives whole and is counted; no body counts 0', async (t) => {
  const chunk = 'x'.repeat(16_384)
  const backend = await startBackend(t, (req, res) => {
    if (req.url === '/empty') {
      res.statusCode = 204
      res.end()
      return
    }
    let left = 40
    const next = (): void => {
      if (left-- === 0) res.end()
      else res.write(chunk, next)
    }
    next()
  })
  const logs = capturedLogs('info')
  const { app, url } = await startBalancer(t, { backends: [backend.url] }, { logger: logs.logger, disableRequestLogging: true }, (app) => {
    // Fastify pipes a stream only once its onSend hooks are done: the count must not make the body flow before.
    app.addHook('onSend', async () => { await new Promise((resolve) => setTimeout(resolve, 20)) })
  })
  const answer = await request(url + '/big')
  t.equal(answer.body.length, 40 * chunk.length, 'the whole body reached the client')
  t.equal((await request(url + '/empty')).status, 204)
  t.equal((await request(url + '/big', { method: 'HEAD' })).body, '')
  await settled(app)
  await waitFor(() => accessLines(logs.lines).length === 3, 'three access lines')
  t.same(accessLines(logs.lines).map((line) => [line.req.method, line.res.statusCode, line.goload.bytes]), [
    ['GET', 200, 40 * chunk.length], ['GET', 204, 0], ['HEAD', 200, 0]
  ])
})

t.test('a retried request: retries 1 and the backend that answered; a 502: the last backend tried and our code', async (t) => {
  const dead = await deadUrl()
  const alive = await startBackend(t)
  const logs = capturedLogs('info')
  const { app, url } = await startBalancer(t, { strategy: 'round-robin', backends: [{ url: dead, id: 'dead' }, { url: alive.url, id: 'alive' }] }, { logger: logs.logger })
  for (let i = 0; i < 2; i++) t.equal((await request(url + '/')).status, 200)
  await settled(app)
  await waitFor(() => accessLines(logs.lines).length === 2, 'two access lines')
  const retried = accessLines(logs.lines).find((line) => line.goload.retries === 1)
  t.match(retried, { res: { statusCode: 200 }, goload: { backend: 'alive', retries: 1 } }, 'one request went to the dead backend first')
  t.ok(retried!.goload.upstreamTime > 0, 'the upstream time of the attempt that answered')
  t.ok(accessLines(logs.lines).every((line) => line.goload.backend === 'alive'), 'every line names the backend that answered')

  const logs502 = capturedLogs('info')
  const failing = await startBalancer(t, { backends: [{ url: dead, id: 'dead-one' }], retries: 0 }, { logger: logs502.logger })
  t.equal((await request(failing.url + '/x')).status, 502)
  const line = await oneAccessLine(logs502.lines)
  t.match(line, { res: { statusCode: 502 }, goload: { backend: 'dead-one', retries: 0, code: 'FST_GOLOAD_BAD_GATEWAY' } })
  t.notOk('upstreamTime' in line.goload, 'no response headers, no upstream time')
})

t.test('the balancer\'s 503s: queue full, no backend', async (t) => {
  let held = (): void => {}
  const backend = await startBackend(t, (req, res) => { held = () => res.end('late') })
  const logs = capturedLogs('info')
  const { app, url } = await startBalancer(t, { name: 'tight', backends: [backend.url], maxPending: 1, queue: { max: 0 } }, { logger: logs.logger })
  const first = request(url + '/held')
  await waitFor(() => backend.received === 1, 'the first request to reach the backend')
  t.equal((await request(url + '/shed')).status, 503)
  const shed = await oneAccessLine(logs.lines)
  t.match(shed, { req: { url: '/shed' }, res: { statusCode: 503 }, goload: { pool: 'tight', code: 'FST_GOLOAD_QUEUE_FULL', retries: 0 } })
  t.notOk('backend' in shed.goload, 'no backend was chosen')
  held()
  t.equal((await first).body, 'late')

  await app.goload.pool('tight').remove(backend.url)
  t.equal((await request(url + '/none')).status, 503)
  await waitFor(() => accessLines(logs.lines).length === 3, 'three access lines')
  t.match(accessLines(logs.lines)[2], { req: { url: '/none' }, res: { statusCode: 503 }, goload: { code: 'FST_GOLOAD_NO_BACKEND' } })
})

t.test('a client that leaves before any answer: 499 and aborted, with the backend it was at', async (t) => {
  const backend = await startBackend(t, (req) => { req.resume() })
  const logs = capturedLogs('info')
  const { app, port } = await startBalancer(t, { backends: [{ url: backend.url, id: 'slow' }] }, { logger: logs.logger })
  const socket = net.connect(port, '127.0.0.1')
  socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n')
  await waitFor(() => backend.received === 1, 'the backend to get the request')
  socket.destroy()
  await settled(app)
  const line = await oneAccessLine(logs.lines)
  t.match(line, { res: { statusCode: 499 }, goload: { backend: 'slow', aborted: true, bytes: 0 } })
  t.notOk('code' in line.goload)
})

t.test('no header reaches the line: neither the Cookie and Authorization sent nor the Set-Cookie answered', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    res.setHeader('set-cookie', 'session=answered-secret-3; HttpOnly')
    res.end(`got ${req.headers.cookie ?? ''}`)
  })
  const logs = capturedLogs('info')
  const { url } = await startBalancer(t, { backends: [backend.url] }, { logger: logs.logger })
  const answer = await request(url + '/me', { headers: { cookie: 'session=sent-secret-1', authorization: 'Bearer sent-secret-2', 'user-agent': 'agent-7' } })
  t.equal(answer.body, 'got session=sent-secret-1', 'the headers went through')
  t.match(answer.headers['set-cookie'], ['session=answered-secret-3; HttpOnly'])
  const line = await oneAccessLine(logs.lines)
  t.equal(line.res.statusCode, 200)
  const text = JSON.stringify(logs.lines)
  for (const secret of ['sent-secret-1', 'sent-secret-2', 'answered-secret-3', 'agent-7']) t.notOk(text.includes(secret), `${secret} is in no line`)
})

t.test('accessLog: false turns the lines off for its registration only', async (t) => {
  const backend = await startBackend(t)
  const logs = capturedLogs('info')
  const app = Fastify({ logger: logs.logger })
  await app.register(goload, { prefix: '/quiet', name: 'quiet', backends: [backend.url], accessLog: false })
  await app.register(goload, { prefix: '/shared-quiet', pool: 'quiet', accessLog: false })
  await app.register(goload, { prefix: '/shared-loud', pool: 'quiet' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as net.AddressInfo
  const url = `http://127.0.0.1:${port}`
  for (const path of ['/quiet/x', '/shared-quiet/x', '/shared-loud/x']) t.equal((await request(url + path)).status, 200)
  t.match(await rawRequest(port, 'GET /quiet/../x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 400 /)
  await settled(app)
  await waitFor(() => logs.lines.filter((line) => line.msg === 'request completed').length === 4, 'every request to end')
  t.same(accessLines(logs.lines).map((line) => line.req.url), ['/shared-loud/x'])

  await t.rejects(async () => { await Fastify().register(goload, { backends: [backend.url], accessLog: 'yes' as unknown as boolean }).ready() }, { code: 'FST_GOLOAD_INVALID_OPTION', message: /accessLog must be a boolean/ })
})

t.test('a target refused on no route\'s way logs no access line, as a 404 does not', async (t) => {
  const backend = await startBackend(t)
  const logs = capturedLogs('info')
  const { port } = await startBalancer(t, { backends: [backend.url], methods: ['POST'] }, { logger: logs.logger, disableRequestLogging: true })
  t.match(await rawRequest(port, 'GET /a/../b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'), /^HTTP\/1\.1 400 /)
  t.same(accessLines(logs.lines), [])
})

t.test('the goload command: one access line per proxied request and no Fastify pair; a request no route takes keeps Fastify\'s line', async (t) => {
  const backend = await startBackend(t, hello('1'))
  const port = await freePort()
  const file = await configFile(t, [
    'listeners:',
    `  - port: ${port}`,
    '    host: 127.0.0.1',
    '    routes:',
    '      - { path: /api, pool: web }',
    '      - { path: /quiet, pool: web, accessLog: false }',
    'pools:',
    `  web: { backends: ['${backend.url}'] }`,
    ''
  ].join('\n'))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  for (const path of ['/api/one', '/api/two', '/quiet/x', '/elsewhere']) await request(`http://127.0.0.1:${port}${path}`)
  await run.logged(/"statusCode":404/, 'the 404 line')
  await run.logged(/("msg":"goload: access"[^]*){2}/, 'two access lines')
  const lines = run.logs().trim().split('\n').map((line) => JSON.parse(line) as LogLine)
  t.same(accessLines(lines).map((line) => [line.req.url, line.res.statusCode, line.goload.pool, line.goload.backend]), [
    ['/api/one', 200, 'web', backend.url], ['/api/two', 200, 'web', backend.url]
  ])
  t.same(lines.filter((line) => line.msg === 'incoming request').map((line) => line.req.url), ['/elsewhere'], 'Fastify\'s own lines only where no route took the request')
  t.equal(lines.filter((line) => line.msg === 'request completed').length, 1)
  t.equal(backend.received, 3)
})

t.test('serve() with a log transport: the access lines go through it (one logger for every app, made once)', async (t) => {
  const backend = await startBackend(t, hello('1'))
  const dir = await mkdtemp(join(tmpdir(), 'goload-transport-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const destination = join(dir, 'access.log')
  const signals = new EventEmitter()
  let listening: number[] = []
  const code = serve(async () => ({ listeners: [{ port: 0, host: '127.0.0.1', routes: [{ path: '/', pool: 'p' }] }], pools: { p: { backends: [backend.url] } } }), 1, {
    signals, stdout: new PassThrough(), logTransport: { target: 'pino/file', options: { destination } }, onListening: (ports) => { listening = ports }
  })
  t.teardown(() => { signals.emit('SIGTERM', 'SIGTERM') })
  await waitFor(() => listening.length > 0, 'onListening')
  t.equal((await request(`http://127.0.0.1:${listening[0]}/via-transport`)).body, 'Hello from 1')
  signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await code, 0)
  // The transport's worker writes the file on its own time.
  const line = /"url":"\/via-transport"[^\n]*"msg":"goload: access"/
  await deadline((async () => {
    while (!line.test(await readFile(destination, 'utf8').catch(() => ''))) await new Promise((resolve) => setTimeout(resolve, 10))
  })(), 30_000, 'the access line in the transport\'s file')
  t.pass('written by the transport')
})

t.test('no line is built where none would be seen: the logger off, or a route logLevel above info; a logger of its own still gets them', async (t) => {
  const backend = await startBackend(t, (req, res) => { res.end('ok') })
  const off = await startBalancer(t, { backends: [backend.url] }, { logger: false })
  t.equal((await request(off.url + '/')).body, 'ok')
  await settled(off.app)
  const logs = capturedLogs('info')
  const quiet = await startBalancer(t, { backends: [backend.url], logLevel: 'warn' } as never, { logger: logs.logger })
  t.equal((await request(quiet.url + '/')).body, 'ok')
  await settled(quiet.app)
  t.equal(accessLines(logs.lines).length, 0, 'logLevel warn: no access line')
  const lines: object[] = []
  const own = { info: (line: unknown) => { if (typeof line === 'object' && line !== null) lines.push(line) }, error () {}, warn () {}, debug () {}, fatal () {}, trace () {}, child () { return own }, level: 'info' }
  const custom = await startBalancer(t, { backends: [backend.url] }, { loggerInstance: own as never })
  t.equal((await request(custom.url + '/')).body, 'ok')
  await settled(custom.app)
  await waitFor(() => lines.some((line) => 'goload' in line), 'the access line on a logger without isLevelEnabled')
})
