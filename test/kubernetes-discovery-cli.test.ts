// The goload command with a pool found through Kubernetes: --check takes the keys (and names a bad one), the admin
// shows the pods by name in /stats and /metrics, and a reload leaves the discovered backends to the discovery.
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import type { Snapshot } from '../lib/admin/snapshot.js'
import { request } from './helpers/client.js'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { endpoints, endpointSlice, FakeApiServer, startPods } from './helpers/kubernetes.js'
import { parseExposition, sample } from './helpers/prometheus.js'

const pool = (extra = '') => `listeners:
  - port: 8080
    routes:
      - pool: api
pools:
  api:
    discovery:
      kubernetes: { service: api, namespace: prod, port: http }${extra}
`

t.test('--check accepts a pool with discovery.kubernetes and no backends, and names each bad key with its line', async (t) => {
  const good = await configFile(t, pool())
  const ok = runMain(t, ['--check', '--config', good])
  t.equal(await ok.code, 0)
  t.equal(ok.stdout(), `${good}: ok\n`)

  const bad = await configFile(t, pool().replace('port: http }', 'port: HTTP, labels: x }'))
  const failed = runMain(t, ['--check', '--config', bad])
  t.equal(await failed.code, 1)
  t.match(failed.stderr(), /:8: pools\.api\.discovery\.kubernetes\.labels: unknown option/)
  t.match(failed.stderr(), /:8: pools\.api\.discovery\.kubernetes\.port: must be a port name \(as the Service names it\) or a number from 1 to 65535, got "HTTP"/)

  const both = await configFile(t, pool().replace('port: http }', 'port: http, token: abc, tokenFile: /t }'))
  const twice = runMain(t, ['--check', '--config', both])
  t.equal(await twice.code, 1)
  t.match(twice.stderr(), /pools\.api\.discovery\.kubernetes\.token and discovery\.kubernetes\.tokenFile are one setting/)

  const neither = await configFile(t, pool().replace(/ {4}discovery:\n.*\n/, '    timeout: 1000\n'))
  const empty = runMain(t, ['--check', '--config', neither])
  t.equal(await empty.code, 1)
  t.match(empty.stderr(), /pools\.api\.backends must be a non-empty array .*\(or give discovery\)/)
})

t.test('goload: the pods by name in /stats and /metrics; a reload keeps them, beside a backend the file adds', async (t) => {
  const pods = await startPods(t, ['api-7d9f-a', 'api-7d9f-b', 'static'])
  const api = await FakeApiServer.start(t, 'cli-token')
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-7d9f-a': {}, 'api-7d9f-b': {} })))
  const [port, adminPort] = [await freePort(), await freePort()]
  const text = (backends: string[]) => JSON.stringify({
    listeners: [{ port, host: '127.0.0.1', routes: [{ pool: 'api' }] }],
    pools: { api: { ...(backends.length === 0 ? {} : { backends }), discovery: { kubernetes: { service: 'api', namespace: 'prod', port: 'http', apiServer: api.origin, token: 'cli-token' } } } },
    admin: { port: adminPort }
  })
  const file = await configFile(t, text([]), 'goload.json')
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const stats = async () => (JSON.parse((await request(`http://127.0.0.1:${adminPort}/stats`)).body) as Snapshot).pools[0]
  const ids = async () => (await stats()).backends.map((b) => b.id).sort()

  t.same(await ids(), ['api-7d9f-a', 'api-7d9f-b'], 'the pods by name in /stats (the status page\'s data)')
  t.equal((await stats()).backends.find((b) => b.id === 'api-7d9f-a')?.url, `http://127.0.0.1:${pods.port}`)
  const names = new Set<string>()
  for (let i = 0; i < 6; i++) names.add((await request(`http://127.0.0.1:${port}/`)).body)
  t.same([...names].sort(), ['api-7d9f-a', 'api-7d9f-b'])
  const metrics = parseExposition((await request(`http://127.0.0.1:${adminPort}/metrics`)).body)
  t.equal(sample(metrics, 'goload_backend_up', { pool: 'api', backend: 'api-7d9f-a' }), 1, 'and in /metrics')

  // The same settings with a static backend more: the pool is kept, and only the file's backends are the reload's.
  await writeFile(file, text([`http://${pods.address.static}:${pods.port}`]))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/config reloaded|reload failed/, 'the reload')
  t.notMatch(run.logs(), /reload failed/)
  t.same(await ids(), ['api-7d9f-a', 'api-7d9f-b', `http://${pods.address.static}:${pods.port}`].sort(), 'the discovered pods stay')
  t.notOk((await stats()).backends.some((b) => b.draining), 'none draining')
  t.equal(api.lists.length, 1, 'the discovery was not started anew')
})
