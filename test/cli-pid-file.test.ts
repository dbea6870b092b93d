import { spawn } from 'node:child_process'
import cluster, { type Worker } from 'node:cluster'
import { once } from 'node:events'
import { existsSync, readFileSync, statSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { accepting, configFile, freePort, runMain, spawnGoload, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

async function folder (t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'goload-pid-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

const pidIn = (file: string): number | undefined => existsSync(file) ? Number(readFileSync(file, 'utf8')) : undefined
const poolConfig = (port: number, backend: string) => `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backend}]\n`

t.test('the built command with --pid-file: the file holds goload\'s own pid once it listens; SIGHUP to that pid reloads; SIGTERM removes the file', async (t) => {
  const [one, two] = [await startBackend(t, hello('1')), await startBackend(t, hello('2'))]
  const port = await freePort()
  const file = await configFile(t, poolConfig(port, one.url))
  const pidFile = join(await folder(t), 'goload.pid')
  const run = spawnGoload(t, ['--config', file, '--pid-file', pidFile])
  await waitFor(() => pidIn(pidFile) !== undefined, 'the pid file', startDeadline)
  t.equal(readFileSync(pidFile, 'utf8'), `${run.child.pid}\n`, 'the pid of the process serving, nothing else')
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from 1', 'written once it listens')
  await writeFile(file, poolConfig(port, two.url))
  process.kill(pidIn(pidFile)!, 'SIGHUP')
  await waitFor(() => /config reloaded/.test(run.stdout), 'the reload', startDeadline)
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from 2')
  process.kill(pidIn(pidFile)!, 'SIGTERM')
  t.same(await deadline(run.exited, startDeadline, 'goload to exit'), [0, null])
  t.notOk(existsSync(pidFile), 'removed at exit')
})

t.test('--pid-file naming a process that died is stale: overwritten, then removed at exit', async (t) => {
  const dead = spawn(process.execPath, ['-e', ''])
  await once(dead, 'exit')
  const backend = await startBackend(t, hello('1'))
  const port = await freePort()
  const pidFile = join(await folder(t), 'goload.pid')
  await writeFile(pidFile, `${dead.pid}\n`)
  const run = runMain(t, ['--backend', backend.url, '--port', String(port), '--host', '127.0.0.1', '--pid-file', pidFile])
  await run.logged(/goload listening/, 'goload to listen')
  t.equal(pidIn(pidFile), process.pid)
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await run.code, 0)
  t.notOk(existsSync(pidFile))
})

t.test('--pid-file naming a running process: exit 1 naming its pid, before listening; the file is left alone', async (t) => {
  const port = await freePort()
  const pidFile = join(await folder(t), 'goload.pid')
  await writeFile(pidFile, `${process.ppid}\n`)
  const run = runMain(t, ['--backend', 'http://127.0.0.1:1', '--port', String(port), '--host', '127.0.0.1', '--pid-file', pidFile])
  t.equal(await run.code, 1)
  t.equal(run.stderr(), `goload: --pid-file ${pidFile}: process ${process.ppid} named in it is running (another goload?): stop it, or give another file\n`)
  t.equal(readFileSync(pidFile, 'utf8'), `${process.ppid}\n`)
  t.notMatch(run.logs(), /goload listening/)
})

t.test('--pid-file in a folder that does not exist: exit 1 at start, saying so', async (t) => {
  const pidFile = join(await folder(t), 'missing', 'goload.pid')
  const run = runMain(t, ['--backend', 'http://127.0.0.1:1', '--port', '0', '--host', '127.0.0.1', '--pid-file', pidFile])
  t.equal(await run.code, 1)
  t.match(run.stderr(), `goload: --pid-file ${pidFile}: cannot write in its folder: ENOENT`)
})

t.test('--pid-file that cannot be written once listening (a folder there) is logged; goload goes on serving', async (t) => {
  const backend = await startBackend(t, hello('1'))
  const port = await freePort()
  const pidFile = join(await folder(t), 'goload.pid')
  await mkdir(pidFile)
  const run = runMain(t, ['--backend', backend.url, '--port', String(port), '--host', '127.0.0.1', '--pid-file', pidFile])
  await run.logged(/--pid-file .*goload\.pid: cannot write it/, 'the failure to be logged')
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from 1')
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await run.code, 0)
  t.ok(statSync(pidFile).isDirectory(), 'left as it was')
})

t.test('--pid-file with --check, or empty: a usage error', async (t) => {
  const check = runMain(t, ['--check', '--config', 'goload.yaml', '--pid-file', 'goload.pid'])
  t.equal(await check.code, 1)
  t.equal(check.stderr(), 'goload: --check runs nothing: --pid-file does not apply\n')
  const empty = runMain(t, ['--backend', 'http://127.0.0.1:1', '--pid-file', ''])
  t.equal(await empty.code, 1)
  t.equal(empty.stderr(), 'goload: --pid-file needs a path\n')
})

t.test('--workers 2 --pid-file: the primary\'s pid, written once both workers listen', async (t) => {
  // The primary runs here (its code counts for coverage); the workers run the compiled command, as in cli-workers.
  let output = ''
  const onFork = (worker: Worker) => {
    for (const stream of [worker.process.stdout, worker.process.stderr]) stream?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  }
  cluster.on('fork', onFork)
  t.teardown(() => { cluster.off('fork', onFork) })
  const backend = await startBackend(t, hello('1'))
  const port = await freePort()
  const pidFile = join(await folder(t), 'goload.pid')
  const argv = ['--backend', backend.url, '--port', String(port), '--host', '127.0.0.1', '--workers', '2', '--pid-file', pidFile]
  cluster.setupPrimary({ exec: fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url)), args: argv, execArgv: [], silent: true })
  const run = runMain(t, argv)
  await waitFor(() => pidIn(pidFile) !== undefined, 'the pid file', 60_000)
  // Each worker says it listens (stdout, a pipe) before it tells the primary (IPC, another channel): the lines may
  // still be on their way when the file is there, but both come.
  await waitFor(() => output.match(/goload listening/g)?.length === 2, 'both workers\' listening lines', 30_000)
  t.equal(output.match(/goload listening/g)?.length, 2, 'both workers listen')
  t.equal(pidIn(pidFile), process.pid, 'the primary, which passes SIGHUP on to the workers')
  await accepting(port)
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await deadline(run.code, startDeadline, 'the primary to return'), 0)
  t.notOk(existsSync(pidFile))
})
