// The config file's top-level `tracing`, through the goload command as npm installs it (dist/, `npm run build`).
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import { accepting, configFile, freePort, runMain, spawnGoload } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { CLIENT, headerLines, parseTraceparent, SERVER, startCollector } from './helpers/otlp.js'
import { deadline, startDeadline } from './helpers/raw.js'
import { startBackend, waitFor } from './helpers/servers.js'

t.test('the built goload traces from its config file: one traceparent to the backend, the spans flushed on SIGTERM', async (t) => {
  const collector = await startCollector(t)
  const traceparents: string[][] = []
  const backend = await startBackend(t, (req, res) => {
    traceparents.push(headerLines(req, 'traceparent'))
    res.end('ok')
  })
  const port = await freePort()
  // An export delay far beyond the test: the spans can only come from the flush at shutdown.
  const run = spawnGoload(t, ['--config', await configFile(t, `listeners:
  - port: ${port}
    host: 127.0.0.1
    routes: [{ path: /api, pool: api }]
pools:
  api:
    backends: [${backend.url}]
tracing:
  otlp: ${collector.url}/
  serviceName: balancer
  exportDelay: 600000
  headers:
    x-api-key: secret
`)])
  await Promise.race([accepting(port, 30_000), run.exited.then(() => { throw new Error(`goload exited: ${run.stderr}`) })])
  t.equal((await request(`http://127.0.0.1:${port}/api/x`)).status, 200)
  t.equal(traceparents.length, 1)
  t.equal(traceparents[0].length, 1, 'exactly one traceparent line')
  const parent = parseTraceparent(traceparents[0][0])
  t.equal(collector.posts, 0, 'nothing exported before the shutdown')
  run.child.kill('SIGTERM')
  t.same(await deadline(run.exited, startDeadline, 'goload to exit'), [0, null])
  const spans = await collector.trace(parent.traceId, 2)
  const server = spans.find((span) => span.kind === SERVER)!
  const client = spans.find((span) => span.kind === CLIENT)!
  t.match(server, { name: 'GET /api', service: 'balancer', parentSpanId: undefined, attributes: { 'http.route': '/api', 'goload.pool': 'api' } })
  t.match(client, { parentSpanId: server.spanId, spanId: parent.parentId, attributes: { 'goload.backend': backend.url } })
  const access = run.stdout.split('\n').filter((line) => line.includes('"goload: access"')).map((line) => JSON.parse(line) as Record<string, unknown>)
  t.equal(access.length, 1)
  t.equal(access[0].trace_id, parent.traceId)
})

t.test('--check: a tracing key that is wrong is named with its line; --print-config hides the export headers', async (t) => {
  const listeners = 'listeners:\n  - port: 8080\n    routes: [{ pool: api }]\npools:\n  api:\n    backends: [http://127.0.0.1:1]\n'
  const bad = await configFile(t, `${listeners}tracing:\n  otlp: collector:4318\n  sampleRatio: 1.5\n`)
  const check = runMain(t, ['--check', '--config', bad])
  t.equal(await check.code, 1)
  t.match(check.stderr(), `${bad}:8: tracing.otlp: must be an http(s):// URL like http://collector:4318, got "collector:4318"`)
  t.match(check.stderr(), `${bad}:9: tracing.sampleRatio: must be a number from 0 to 1, got 1.5`)
  const good = await configFile(t, `${listeners}tracing:\n  otlp: http://collector:4318\n  headers: { authorization: Bearer abc }\n`)
  const print = runMain(t, ['--print-config', '--config', good])
  t.equal(await print.code, 0)
  t.match(print.stdout(), /tracing:\n {2}otlp: http:\/\/collector:4318\n {2}headers:\n {4}authorization: <redacted>\n {2}sampleRatio: 1\n {2}serviceName: goload\n/)
})

t.test('a reload applies a changed tracing: unsampled before SIGHUP, sampled and exported after', async (t) => {
  const collector = await startCollector(t)
  const traceparents: string[] = []
  const backend = await startBackend(t, (req, res) => {
    traceparents.push(...headerLines(req, 'traceparent'))
    res.end('ok')
  })
  const port = await freePort()
  const file = (ratio: number) => `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: api }]\npools:\n  api:\n    backends: [${backend.url}]\ntracing: { otlp: "${collector.url}", sampleRatio: ${ratio}, exportDelay: 10 }\n`
  const path = await configFile(t, file(0))
  const run = runMain(t, ['--config', path])
  await run.logged(/goload listening/, 'goload to listen')
  await request(`http://127.0.0.1:${port}/before`)
  t.equal(parseTraceparent(traceparents[0]).flags, '00')
  await writeFile(path, file(1))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => /config reloaded/.test(run.logs()), 'the reload')
  t.match(run.logs(), /config reloaded \(tracing changed\)/)
  await request(`http://127.0.0.1:${port}/after`)
  const after = parseTraceparent(traceparents[1])
  t.equal(after.flags, '01')
  await collector.trace(after.traceId, 2)
  t.notOk(collector.spans.some((span) => span.traceId === parseTraceparent(traceparents[0]).traceId), 'the unsampled trace was never exported')
})
