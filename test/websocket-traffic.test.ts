// Upgrades take the same path as requests once matched: a rate-limited route refuses an upgrade over its limit
// before any backend is chosen, and an upgraded socket gets its access line, 101, when it closes.
import t from 'tap'
import WebSocket from 'ws'
import { capturedLogs, type LogLine } from './helpers/logs.js'
import { deadline } from './helpers/raw.js'
import { pendingCounts, settled, startBalancer, waitFor } from './helpers/servers.js'
import { closed, nextMessage, openWs, startWsBackend } from './helpers/ws.js'

const accessLines = (lines: LogLine[]) => lines.filter((line) => line.msg === 'goload: access')

t.test('an upgraded socket logs one access line, 101, with its backend and the bytes sent to the client, once it closes', async (t) => {
  const backend = await startWsBackend(t, 'a')
  const logs = capturedLogs('info')
  const { app, url } = await startBalancer(t, { name: 'chat', backends: [{ url: backend.url, id: 'ws-a' }] }, { logger: logs.logger })
  const ws = await openWs(t, url + '/room')
  ws.send('x'.repeat(1000))
  t.equal((await nextMessage(ws)).data.length, 1000)
  t.equal(accessLines(logs.lines).length, 0, 'no line while the socket is open')
  const closing = closed(ws)
  ws.send('close:4000')
  t.equal((await closing).code, 4000)
  await settled(app)
  await waitFor(() => accessLines(logs.lines).length === 1, 'the access line')
  const [line] = accessLines(logs.lines)
  t.equal(line.res.statusCode, 101)
  t.equal(line.req.url, '/room')
  t.match(line.goload, { pool: 'chat', backend: 'ws-a', retries: 0 })
  t.notOk('aborted' in line.goload, 'a tunnel that closed is not an aborted response')
  t.ok(line.goload.bytes > 1000, `the 101 and the echoed message were sent to the client (${line.goload.bytes} bytes)`)
  t.type(line.goload.upstreamTime, 'number', 'the handshake was timed')
})

t.test('a rate-limited route refuses the upgrade over its limit with 429, before any backend, and logs it', async (t) => {
  const backend = await startWsBackend(t, 'a')
  const logs = capturedLogs('info')
  const { app, url } = await startBalancer(t, { backends: [backend.url], rateLimit: { max: 1, timeWindow: 60_000 } }, { logger: logs.logger })
  await openWs(t, url + '/')
  const refused = new WebSocket(url.replace(/^http/, 'ws') + '/')
  refused.on('error', () => {})
  t.teardown(() => { refused.terminate() })
  const response = await deadline(new Promise<{ statusCode?: number, headers: Record<string, unknown> }>((resolve, reject) => {
    refused.once('unexpected-response', (_request, response) => { resolve(response) })
    refused.once('open', () => { reject(new Error('the second upgrade was let through')) })
  }), 5000, 'the refused upgrade')
  t.equal(response.statusCode, 429)
  t.ok(response.headers['retry-after'] !== undefined, 'retry-after')
  t.equal(backend.sockets.length, 1, 'the backend saw only the first')
  t.same(pendingCounts(app), [1], 'only the open socket counts')
  await waitFor(() => accessLines(logs.lines).length === 1, 'the refusal\'s access line')
  const [line] = accessLines(logs.lines)
  t.equal(line.res.statusCode, 429)
  t.match(line.goload, { code: 'FST_GOLOAD_RATE_LIMITED', retries: 0 })
  t.notOk('backend' in line.goload, 'no backend was chosen')
})
