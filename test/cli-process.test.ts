import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import t from 'tap'
import type { Snapshot } from '../lib/admin/snapshot.js'
import { accepting, configFile, freePort, spawnGoload, type GoloadProcess, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { hello, startBackend, startSlowBackend, waitFor } from './helpers/servers.js'

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string, bin: { goload: string } }
const exit = (run: GoloadProcess) => deadline(run.exited, startDeadline, 'goload to exit')

t.test('the bin is compiled JavaScript with a node shebang', async (t) => {
  t.equal(pkg.bin.goload, './dist/cli/bin.js')
  t.match(readFileSync(new URL(`../${pkg.bin.goload}`, import.meta.url), 'utf8'), /^#!\/usr\/bin\/env node\n/)
})

t.test('goload --version prints the version and exits 0; a bad flag exits 1 with one line', async (t) => {
  const version = spawnGoload(t, ['--version'])
  t.same(await exit(version), [0, null])
  t.equal(version.stdout, `${pkg.version}\n`)
  const bad = spawnGoload(t, ['--bakend', 'http://127.0.0.1:1'])
  t.same(await exit(bad), [1, null])
  t.equal(bad.stderr, "goload: Unknown option '--bakend' (goload --help lists the options)\n")
})

t.test('goload --backend on a port in use exits 1 with "listeners[0]: port P is in use"', async (t) => {
  const busy = await startBackend(t, hello('busy'))
  const port = new URL(busy.url).port
  const run = spawnGoload(t, ['--backend', busy.url, '--port', port, '--host', '127.0.0.1'])
  t.same(await exit(run), [1, null])
  t.equal(run.stderr, `goload: listeners[0]: port ${port} is in use\n`)
})

t.test('SIGTERM during a slow request: the request finishes with 200, goload exits 0', async (t) => {
  const slow = await startSlowBackend(t, 1000, 'slow but done')
  const port = await freePort()
  const run = spawnGoload(t, ['--backend', slow.url, '--port', String(port), '--host', '127.0.0.1'])
  await accepting(port)
  const answer = request(`http://127.0.0.1:${port}/`)
  await deadline(slow.arrived, 5000, 'the request to reach the backend')
  run.child.kill('SIGTERM')
  const { status, body } = await answer
  t.equal(status, 200)
  t.equal(body, 'slow but done')
  t.same(await exit(run), [0, null], 'exit code 0, not killed by the signal')
  t.match(run.stdout, /SIGTERM received, closing/)
})

t.test('goload --workers 2 forks itself: two processes on one port; SIGTERM stops them all, exit 0', async (t) => {
  const backend = await startBackend(t, hello('1'))
  const port = await freePort()
  const run = spawnGoload(t, ['--backend', backend.url, '--port', String(port), '--host', '127.0.0.1', '--strategy', 'p2c', '--workers', '2'])
  await waitFor(() => run.stdout.match(/goload listening on port \d+, pid \d+/g)?.length === 2, 'both workers to listen', startDeadline)
  t.equal(new Set(run.stdout.match(/pid \d+/g)).size, 2, 'two processes')
  for (let i = 0; i < 4; i++) t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from 1')
  run.child.kill('SIGTERM')
  t.same(await exit(run), [0, null])
})

// Issue 15 item 9 was reproduced with scripts against the built command: these two are those scripts.
t.test('goload --config: SIGHUP once the path is a FIFO fails the reload at once; the old config serves; SIGTERM exits 0', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const port = await freePort()
  const file = await configFile(t, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backend.url}]\n`)
  const run = spawnGoload(t, ['--config', file])
  await accepting(port)
  // Opened for reading, a FIFO waits for a writer: before, the reload never ended, nor the SIGTERM queued behind it.
  await rm(file)
  execFileSync('mkfifo', [file])
  run.child.kill('SIGHUP')
  await waitFor(() => /reload failed, the running config stays: \S+: not a regular file \(a FIFO\)/.test(run.stdout), 'the reload to fail', 10_000)
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from a')
  run.child.kill('SIGTERM')
  t.same(await exit(run), [0, null])
})

t.test('goload --config: SIGHUP with the file unchanged leaves a resolve pool\'s discovered backends as they were', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = await configFile(t, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [{ url: "http://localhost:${new URL(backend.url).port}", id: api, resolve: { interval: 60000 } }]\nadmin:\n  port: ${adminPort}\n`)
  const run = spawnGoload(t, ['--config', file])
  await accepting(adminPort)
  const backends = async () => (JSON.parse((await request(`http://127.0.0.1:${adminPort}/stats`)).body) as Snapshot).pools[0].backends.map((b) => `${b.id} ${b.draining ? 'draining' : 'in'}`)
  const before = await backends()
  t.ok(before.includes('api#127.0.0.1 in'), before.join(', '))
  run.child.kill('SIGHUP')
  await waitFor(() => /config reloaded/.test(run.stdout), 'the reload', startDeadline)
  t.same(await backends(), before, 'no discovered backend drained, no bare hostname added')
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from a')
  run.child.kill('SIGTERM')
  t.same(await exit(run), [0, null])
})
