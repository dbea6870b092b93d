import cluster, { type Worker } from 'node:cluster'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { configFile, freePort, runMain, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { deadUrl, hello, startBackend, waitFor } from './helpers/servers.js'

// The primary runs here, in the test's process (so its code counts for coverage); each worker it forks runs the
// compiled command with plain node (no loaders: execArgv []), as `goload --workers N` forks itself. silent: their
// output comes back to us.
const bin = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))
let output = ''
cluster.on('fork', (worker: Worker) => {
  for (const stream of [worker.process.stdout, worker.process.stderr]) stream?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
})
const forkAs = (args: string[]) => cluster.setupPrimary({ exec: bin, args, execArgv: [], silent: true })

t.test('--workers 2: two processes share the port (and the admin\'s, each its own admin); SIGTERM reaches both and the primary returns 0', async (t) => {
  output = ''
  const backend = await startBackend(t, hello('1'))
  const [port, adminPort] = [await freePort(), await freePort()]
  const argv = ['--backend', backend.url, '--port', String(port), '--host', '127.0.0.1', '--strategy', 'p2c', '--workers', '2', '--admin', `127.0.0.1:${adminPort}`]
  forkAs(argv)
  const run = runMain(t, argv)
  await waitFor(() => output.match(new RegExp(`goload listening on port ${port}, pid \\d+`, 'g'))?.length === 2, 'both workers to listen', startDeadline)
  t.equal(new Set(output.match(/pid \d+/g)).size, 2, 'two processes')
  t.match(run.stdout(), /^goload: 2 worker processes, (each listening with reusePort|sharing the ports through node:cluster)\n$/)
  for (let i = 0; i < 4; i++) t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from 1', 'proxied')
  t.equal(output.match(new RegExp(`goload admin on http://127\\.0\\.0\\.1:${adminPort}`, 'g'))?.length, 2, 'an admin in each worker')
  const pids = new Set(output.match(/pid \d+/g)!.map((pid) => Number(pid.slice(4))))
  const { pid } = JSON.parse((await request(`http://127.0.0.1:${adminPort}/stats`)).body) as { pid: number }
  t.ok(pids.has(pid), 'the snapshot is of the worker that took the connection')
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await deadline(run.code, startDeadline, 'the primary to return'), 0, 'every worker closed cleanly')
  t.equal(output.match(/SIGTERM received, closing/g)?.length, 2, 'each worker heard SIGTERM')
})

t.test('--workers 2 when a worker cannot listen: the others are stopped, the primary returns 1', async (t) => {
  output = ''
  const busy = await startBackend(t, hello('busy'))
  const busyPort = Number(new URL(busy.url).port)
  // A port in use by another process is EADDRINUSE in each worker.
  const argv = ['--backend', busy.url, '--port', String(busyPort), '--host', '127.0.0.1', '--workers', '2']
  forkAs(argv)
  const run = runMain(t, argv)
  t.equal(await deadline(run.code, startDeadline, 'the primary to return'), 1)
  t.match(output, new RegExp(`goload: listeners\\[0\\]: port ${busyPort} is in use`))
  t.match(run.stdout(), /worker \d+ exited with code 1: stopping the others/)
})

t.test('--workers with a bad config file fails once, in the primary, before forking', async (t) => {
  output = ''
  let forked = 0
  const count = () => { forked++ }
  cluster.on('fork', count)
  t.teardown(() => { cluster.off('fork', count) })
  const run = runMain(t, ['--config', '/nonexistent/goload.yaml', '--workers', '2'])
  t.equal(await deadline(run.code, startDeadline, 'the primary to return'), 1)
  t.match(run.stderr(), /^\/nonexistent\/goload\.yaml: cannot read the file/)
  t.equal(forked, 0, 'no worker forked')
})

t.test('--workers 2: SIGHUP to the primary reaches every worker, and each reloads the file', async (t) => {
  output = ''
  const [one, two] = [await startBackend(t, hello('1')), await startBackend(t, hello('2'))]
  const port = await freePort()
  const file = await configFile(t, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${one.url}]\n`)
  const argv = ['--config', file, '--workers', '2']
  forkAs(argv)
  const run = runMain(t, argv)
  await waitFor(() => output.match(/goload listening/g)?.length === 2, 'both workers to listen', startDeadline)
  await writeFile(file, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${two.url}]\n`)
  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => output.match(/config reloaded/g)?.length === 2, 'both workers to reload', 20_000)
  // New connections each time, so both workers take some of them.
  for (let i = 0; i < 8; i++) t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from 2', 'the new backend serves')
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await deadline(run.code, startDeadline, 'the primary to return'), 0)
})

const workerPids = () => new Set(output.match(/goload listening on port \d+, pid \d+/g)?.map((line) => Number(line.split('pid ')[1])))

t.test('--workers 2: a worker killed after it served is started again, logged, while the other goes on answering', async (t) => {
  output = ''
  const backend = await startBackend(t, hello('1'))
  const port = await freePort()
  const argv = ['--backend', backend.url, '--port', String(port), '--host', '127.0.0.1', '--strategy', 'p2c', '--workers', '2']
  forkAs(argv)
  const run = runMain(t, argv)
  await waitFor(() => workerPids().size === 2, 'both workers to listen', startDeadline)
  const [killed, other] = [...workerPids()]
  process.kill(killed, 'SIGKILL')
  await waitFor(() => run.stdout().includes(`worker ${killed} exited with SIGKILL: starting another in 100 ms`), 'the primary to log the death', 5000)
  for (let i = 0; i < 4; i++) t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from 1', 'answered meanwhile')
  await waitFor(() => workerPids().size === 3, 'a new worker to listen', startDeadline)
  const started = [...workerPids()].find((pid) => pid !== killed && pid !== other)!
  t.ok(started > 0, `a new worker, pid ${started}`)
  t.doesNotThrow(() => { process.kill(other, 0) }, 'the other worker was never stopped')
  for (let i = 0; i < 4; i++) t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from 1')
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await deadline(run.code, startDeadline, 'the primary to return'), 0, 'the new worker and the other one closed cleanly')
})

t.test('--workers 2: a worker that keeps dying soon after each start makes the primary give up, stop the other and return 1', async (t) => {
  output = ''
  const backend = await startBackend(t, hello('1'))
  const port = await freePort()
  const file = await configFile(t, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backend.url}]\n`)
  const argv = ['--config', file, '--workers', '2']
  forkAs(argv)
  const run = runMain(t, argv, {}, { respawn: { firstDelay: 10, maxDelay: 40, stable: 60_000, maxQuickFailures: 2 } })
  await waitFor(() => workerPids().size === 2, 'both workers to listen', startDeadline)
  // Each new worker now fails at start: one quick failure after another.
  await writeFile(file, 'listeners: [')
  const [killed] = workerPids()
  process.kill(killed, 'SIGKILL')
  t.equal(await deadline(run.code, 60_000, 'the primary to give up'), 1)
  t.match(run.stdout(), `worker ${killed} exited with SIGKILL: starting another in 10 ms`)
  t.match(run.stdout(), /worker \d+ exited with code 1 before it was serving: starting another in 20 ms/)
  t.match(run.stdout(), /worker \d+ exited with code 1 before it was serving: 2 quick failures in a row, giving up: stopping the others/)
  t.equal(output.match(/SIGTERM received, closing/g)?.length, 1, 'the other worker was stopped')
})

t.test('--workers 2 with a backend that refuses connections: one worker warns about it, not each', async (t) => {
  output = ''
  const [live, refused] = await Promise.all([startBackend(t, hello('1')), deadUrl()])
  const port = await freePort()
  const argv = ['--backend', live.url, '--backend', refused, '--port', String(port), '--host', '127.0.0.1', '--strategy', 'p2c', '--workers', '2']
  forkAs(argv)
  const run = runMain(t, argv)
  await waitFor(() => output.match(/goload listening on port/g)?.length === 2 && output.includes('refuses connections'), 'both workers to listen, and the warning', 60_000)
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await deadline(run.code, startDeadline, 'the primary to return'), 0)
  t.equal(output.match(new RegExp(`backend ${refused} \\(pool default\\) refuses connections`, 'g'))?.length, 1)
})
