// At start and on each reload, goload looks once at every backend and warns about each one that does not resolve,
// refuses connections or does not accept one in time: a typo is seen before the first 502. It never stops the start
// nor waits for it. Backends here are real: a listening one, a closed port, a name under .invalid (RFC 6761: never
// resolves), and a blackhole whose accept queue is full, so that connecting hangs.
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadUrl, hello, startBackend, startBlackhole, waitFor } from './helpers/servers.js'

// Long enough that a refusal or a failed lookup is always said as such, even with the event loop held by a busy
// machine (at 300 ms, every check of a start under load timed out at once); the blackhole waits it out.
const reachTimeout = 2000

function config (port: number, api: string[], web: string[]): string {
  return `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ path: /web, pool: web }, { pool: api }]\npools:\n  api:\n    backends: [${api.join(', ')}]\n  web:\n    backends: [${web.join(', ')}]\n`
}

const warnings = (logs: string): string[] => logs.split('\n').filter(Boolean).map((line) => JSON.parse(line) as { level: number, msg: string }).filter(({ level, msg }) => level === 40 && msg.endsWith('until it is up')).map(({ msg }) => msg)

t.test('one warning per backend that does not resolve, refuses or hangs; goload serves meanwhile; a reload looks again', async (t) => {
  const [live, refused, blackhole] = await Promise.all([startBackend(t, hello('live')), deadUrl(), startBlackhole(t)])
  const typo = 'http://goload-typo.invalid:3000'
  const port = await freePort()
  const file = await configFile(t, config(port, [live.url, refused, typo, blackhole], [refused]))
  const run = runMain(t, ['--config', file], {}, { reachTimeout })
  await run.logged(/goload listening/, 'goload to listen')
  t.equal((await request(`http://127.0.0.1:${port}/web`)).status, 502, 'served before any warning is due: the web pool has only the refusing backend')
  await waitFor(() => warnings(run.logs()).length >= 3, 'three warnings')
  t.same(warnings(run.logs()).sort(), [
    `goload: backend ${blackhole} (pool api) did not accept a connection within ${reachTimeout} ms: its requests will fail until it is up`,
    `goload: backend ${refused} (pools api, web) refuses connections (ECONNREFUSED): its requests will fail until it is up`,
    `goload: backend ${typo} (pool api) does not resolve (ENOTFOUND goload-typo.invalid): its requests will fail until it is up`
  ].sort())
  const lines = run.logs().split('\n')
  t.ok(lines.findIndex((line) => /goload listening/.test(line)) < lines.findIndex((line) => line.includes(blackhole)), 'the start did not wait for the hanging backend')

  const other = await deadUrl()
  await writeFile(file, config(port, [live.url], [other]))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => warnings(run.logs()).length >= 4, 'the reload\'s warning')
  t.equal(warnings(run.logs())[3], `goload: backend ${other} (pool web) refuses connections (ECONNREFUSED): its requests will fail until it is up`)
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from live')
  t.equal(warnings(run.logs()).length, 4, 'the reachable backend is not warned about')
})
