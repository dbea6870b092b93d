// What an operator reads: log.format (JSON lines, or pino-pretty's), accessLog.format (goload's JSON line, or the
// combined format of Apache and nginx with the upstream's time appended), and a reload said in one line, what changed
// included; a reload that fails, one line per problem.
import { writeFile } from 'node:fs/promises'
import { PassThrough } from 'node:stream'
import t, { type Test } from 'tap'
import { describeChanges } from '../lib/cli/config-changes.js'
import { combinedLine, loggerOptions } from '../lib/cli/log-output.js'
import type { GoloadFileConfig } from '../lib/config/schema.js'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

const listener = (port: number, pool = 'api') => `  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: ${pool} }]\n`
const messages = (logs: string): Array<{ level: number, msg: string }> => logs.split('\n').filter(Boolean).map((line) => JSON.parse(line))

t.test('a reload logs what changed in one line; a failed one, one line per problem', async (t) => {
  const [a, b] = await Promise.all([startBackend(t, hello('a')), startBackend(t, hello('b'))])
  const [port, added] = await Promise.all([freePort(), freePort()])
  const file = await configFile(t, `listeners:\n${listener(port)}pools:\n  api:\n    backends: [${a.url}]\n`)
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')

  await writeFile(file, `listeners:\n${listener(port)}${listener(added, 'web')}pools:\n  api:\n    backends: [${a.url}, ${b.url}]\n  web:\n    backends: [${b.url}]\n`)
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/config reloaded/, 'the reload')
  t.equal(messages(run.logs()).find(({ msg }) => msg.startsWith('goload: config reloaded'))?.msg,
    `goload: config reloaded (pool api: +1 backend, -0; pool web added (1 backend); listener 127.0.0.1:${added} added), listening on ports ${port}, ${added}`)
  t.equal((await request(`http://127.0.0.1:${added}/`)).body, 'Hello from b')

  await writeFile(file, `listeners:\n${listener(port)}pools:\n  api:\n    backends: [${a.url}]\n    timout: 1\n    retires: 1\n`)
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/reload failed/, 'the failed reload')
  await waitFor(() => messages(run.logs()).filter(({ msg }) => msg.includes('reload failed')).length === 2, 'both problems')
  t.same(messages(run.logs()).filter(({ msg }) => msg.includes('reload failed')).map(({ level, msg }) => [level, msg]), [
    [50, `goload: reload failed, the running config stays: ${file}:8: pools.api.timout: unknown option (did you mean timeout?)`],
    [50, `goload: reload failed, the running config stays: ${file}:9: pools.api.retires: unknown option (did you mean retries?)`]
  ])
})

/** goload on one pool of one backend, with `extra` at the end of its file, once it listens. */
async function serving (t: Test, extra: string) {
  const backend = await startBackend(t, hello('a'))
  const port = await freePort()
  const run = runMain(t, ['--config', await configFile(t, `listeners:\n${listener(port)}pools:\n  api:\n    backends: [${backend.url}]\n${extra}`)])
  await run.logged(/goload listening/, 'goload to listen')
  return { run, port }
}

t.test('accessLog.format combined: one Apache/nginx combined line per request, upstream seconds last; the rest stays JSON', async (t) => {
  const { run, port } = await serving(t, 'accessLog:\n  format: combined\n')
  t.equal((await request(`http://127.0.0.1:${port}/x?y=1`, { headers: { referer: 'http://ref.test/', 'user-agent': 'agent "quoted"' } })).status, 200)
  await waitFor(() => run.logs().includes('"GET /x?y=1'), 'the access line')
  const line = run.logs().split('\n').find((text) => text.includes('"GET /x?y=1'))!
  t.match(line, /^127\.0\.0\.1 - - \[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}\] "GET \/x\?y=1 HTTP\/1\.1" 200 12 "http:\/\/ref\.test\/" "agent \\x22quoted\\x22" \d+\.\d{3}$/)
  t.ok(run.logs().split('\n').filter((text) => text !== '' && text !== line).every((text) => text.startsWith('{')), 'every other line is JSON')
})

t.test('a combined line: local time with its offset west and east of UTC, \'-\' for what is unknown, any byte escaped', async (t) => {
  const zone = process.env.TZ
  t.teardown(() => {
    if (zone === undefined) delete process.env.TZ
    else process.env.TZ = zone
  })
  const time = Date.UTC(2026, 11, 7, 7, 30, 5)
  const record = (req: Record<string, string>, upstreamTime?: number) => ({ time, req: { method: 'GET', url: '/a', ...req }, res: { statusCode: 503 }, goload: { bytes: 0, upstreamTime } })
  // Newfoundland is 3 h 30 west of UTC: the sign and the minutes of the offset both count.
  process.env.TZ = 'America/St_Johns'
  t.equal(combinedLine(record({})), '- - - [07/Dec/2026:04:00:05 -0330] "GET /a HTTP/1.1" 503 0 "-" "-" -\n', 'no address, version, Referer, User-Agent or upstream: each a -')
  process.env.TZ = 'Asia/Kolkata'
  t.equal(combinedLine(record({ remoteAddress: '::1', httpVersion: '2.0', userAgent: 'caf\u00e9 \u20ac\n' }, 1234)),
    '::1 - - [07/Dec/2026:13:00:05 +0530] "GET /a HTTP/2.0" 503 0 "-" "caf\\xE9 \\xE2\\x82\\xAC\\x0A" 1.234\n', 'a byte outside printable ASCII as \\xHH, a character past Latin-1 as its UTF-8 bytes')
})

t.test('log.format pretty writes pino-pretty\'s lines; without pino-pretty installed, a clear error', async (t) => {
  const { run } = await serving(t, 'log:\n  format: pretty\n')
  const line = run.logs().split('\n').find((text) => text.includes('goload listening'))!
  t.match(line, /^\[[^\]]+\] INFO \(\d+\): goload listening on port \d+, pid \d+$/)

  await t.rejects(loggerOptions({ format: 'pretty' }, new PassThrough(), 'pino-pretty-not-installed'),
    { message: 'log.format pretty needs the pino-pretty package, which is not installed: npm install pino-pretty beside fastify-goload, or use log.format json' })
})

t.test('what a reload changed: backends by id, settings by key, listeners by server; nothing, said so', async (t) => {
  const base: GoloadFileConfig = {
    listeners: [{ port: 80, host: '0.0.0.0', routes: [{ path: '/', pool: 'api' }] }],
    pools: { api: { backends: ['http://10.0.0.1:3000', { url: 'http://10.0.0.2:3000', id: 'two', weight: 1 }] }, old: { backends: ['http://10.0.0.9:3000'] } }
  }
  t.equal(describeChanges(base, structuredClone(base)), 'nothing changed')
  const next: GoloadFileConfig = {
    listeners: [
      { port: 80, host: '0.0.0.0', trustProxy: true, routes: [{ path: '/', pool: 'api' }] },
      { port: 80, host: '0.0.0.0', trustProxy: true, routes: [{ host: 'b.test', path: '/', pool: 'api' }] },
      { port: 8443, host: '127.0.0.1', routes: [{ path: '/', pool: 'api' }] }
    ],
    pools: { api: { backends: [{ url: 'http://10.0.0.3:3000', id: 'two', weight: 2 }], timeout: 100 } }
  }
  t.equal(describeChanges(base, next), 'pool api: +0, -1, 1 changed, timeout changed; pool old removed; listener 80: trustProxy, routes changed; listener 127.0.0.1:8443 added')
  t.equal(describeChanges(next, base), 'pool api: +1 backend, -0, 1 changed, timeout changed; pool old added (1 backend); listener 80: trustProxy, routes changed; listener 127.0.0.1:8443 removed')
  // A pool whose backends come from Kubernetes lists none in the file.
  const discovered: GoloadFileConfig = { ...base, pools: { ...base.pools, pods: { discovery: { kubernetes: { service: 'api' } } } } }
  t.equal(describeChanges(base, discovered), 'pool pods added (backends by discovery)')
  t.equal(describeChanges(discovered, base), 'pool pods removed')
})
