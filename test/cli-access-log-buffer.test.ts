// accessLog.buffer, as nginx's `access_log … buffer=32k flush=1s`: access lines are gathered and written a few KiB at
// a time; any other line (a warning, listening, a reload, closing) goes out at once with what was gathered before it,
// so the order stays; a line waits at most accessLog.flush; SIGTERM writes everything; under --workers each write
// stays within PIPE_BUF, so two workers' lines never mix on a shared pipe.
import { openSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import t, { type Test } from 'tap'
import { bufferedOutput, loggerOptions } from '../lib/cli/log-output.js'
import { configFile, freePort, spawnGoload, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

/** A file to log into, its descriptor, and what it holds now. */
async function logFile (t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'goload-buffer-'))
  const path = join(dir, 'access.log')
  // Its logger's output owns the descriptor, and closes it when destroyed (loggerOf).
  const fd = openSync(path, 'a')
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const text = () => readFileSync(path, 'utf8')
  return { fd, text, lines: () => text().split('\n').filter(Boolean).map((line) => JSON.parse(line) as { msg: string, n?: number }) }
}

/** A pino logger as Fastify makes one of these options (the stream is pino's second argument), ended with the test. */
function loggerOf (t: Test, { stream, ...options }: Awaited<ReturnType<typeof loggerOptions>>): pino.Logger {
  // Closes the file's descriptor, and stops the flush timer writing to it. (Behind the combined format's rewriting,
  // the output is out of reach: its descriptor stays open until this process ends, its timer never fires.)
  const output = stream as unknown as { destroy?: () => void }
  if (output.destroy !== undefined) t.teardown(() => { output.destroy!() })
  return pino({ level: 'info', ...options } as pino.LoggerOptions, stream as pino.DestinationStream)
}

/** A write the thread pool has finished: one a buffered line would have had time to go out ahead of. */
const roundTrip = async (path: string) => { await rm(join(path, 'none'), { force: true }) }

t.test('access lines are held until another line comes; that line writes them all, in order, with itself', async (t) => {
  const file = await logFile(t)
  const log = loggerOf(t, await loggerOptions({ buffer: 4096, flush: 600_000, fd: file.fd }, undefined))
  for (let n = 0; n < 3; n++) log.info({ n }, 'goload: access')
  log.child({ reqId: 'x' }).info({ n: 3 }, 'request completed')
  await roundTrip(tmpdir())
  t.same(file.lines(), [], 'nothing written yet: the lines are under the buffer\'s size and its flush is far away')
  log.warn('goload: backend http://10.0.0.1 failed')
  await waitFor(() => file.lines().length === 5, 'the warning to write what was gathered')
  t.same(file.lines().map(({ msg, n }) => [msg, n]), [['goload: access', 0], ['goload: access', 1], ['goload: access', 2], ['request completed', 3], ['goload: backend http://10.0.0.1 failed', undefined]])
})

t.test('a buffer that fills is written without waiting for flush; a line that waits is written after flush ms', async (t) => {
  const full = await logFile(t)
  const log = loggerOf(t, await loggerOptions({ buffer: 1024, flush: 600_000, fd: full.fd }, undefined))
  // About 600 bytes a line: two fill the buffer, the third waits.
  const padding = 'x'.repeat(500)
  for (let n = 0; n < 3; n++) log.info({ n, padding }, 'goload: access')
  await waitFor(() => full.lines().length > 0, 'the first two lines, past 1,024 bytes, to be written')
  await roundTrip(tmpdir())
  t.same(full.lines().map((line) => line.n), [0, 1], 'the lines that filled the buffer, whole; the third still held')

  const timed = await logFile(t)
  const quiet = loggerOf(t, await loggerOptions({ buffer: 65536, flush: 50, fd: timed.fd }, undefined))
  quiet.info({ n: 0 }, 'goload: access')
  await waitFor(() => timed.lines().length === 1, 'the flush timer to write the line')
  t.equal(timed.lines()[0].n, 0)
})

t.test('a warning logged while a write is under way is written when that write ends, not at the next flush', async (t) => {
  const file = await logFile(t)
  const log = loggerOf(t, await loggerOptions({ buffer: 1024, flush: 600_000, fd: file.fd }, undefined))
  // Two lines of ~600 bytes fill the buffer: their write starts now and ends later (the thread pool's).
  const padding = 'x'.repeat(500)
  log.info({ n: 0, padding }, 'goload: access')
  log.info({ n: 1, padding }, 'goload: access')
  log.warn({ n: 2 }, 'goload: backend failed')
  await waitFor(() => file.lines().length === 3, 'the warning, after the write that was under way')
  t.same(file.lines().map(({ msg, n }) => [msg, n]), [['goload: access', 0], ['goload: access', 1], ['goload: backend failed', 2]])
})

t.test('combined lines are buffered the same way', async (t) => {
  const file = await logFile(t)
  const options = await loggerOptions({ accessFormat: 'combined', buffer: 4096, flush: 600_000, fd: file.fd }, undefined)
  const log = loggerOf(t, options)
  // What the combined format's request serializer reads of a Fastify request.
  const req = { method: 'GET', url: '/a', headers: {}, ip: '127.0.0.1', raw: { httpVersion: '1.1' } }
  log.info({ req, res: { statusCode: 200 }, goload: { bytes: 2 } }, 'goload: access')
  await roundTrip(tmpdir())
  t.equal(file.text(), '', 'held')
  log.info('goload: config reloaded')
  await waitFor(() => file.text().includes('reloaded'), 'the reload line')
  const [combined, json] = file.text().split('\n')
  t.match(combined, /^127\.0\.0\.1 - - \[.+\] "GET \/a HTTP\/1\.1" 200 2 "-" "-" -$/)
  t.match(JSON.parse(json), { msg: 'goload: config reloaded' })
})

t.test('under --workers, each write stays within PIPE_BUF, whatever the buffer', async (t) => {
  const shared = bufferedOutput(1, 65536, 1000, true) as unknown as { maxWrite: number, minLength: number, destroy: () => void }
  const alone = bufferedOutput(1, 65536, 1000, false) as unknown as { maxWrite: number, minLength: number, destroy: () => void }
  t.teardown(() => { shared.destroy(); alone.destroy() })
  t.same([shared.maxWrite, shared.minLength], [4096, 4095])
  t.same([alone.maxWrite, alone.minLength], [131072, 65536])
})

/** The goload command (compiled, its own process, stdout a pipe) on one backend with this accessLog block. */
async function command (t: Test, accessLog: string, workers = 1, handler = hello('a')) {
  const backend = await startBackend(t, handler)
  const port = await freePort()
  const file = await configFile(t, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: api }]\npools:\n  api:\n    backends: [${backend.url}]\naccessLog:\n${accessLog}`)
  const goload = spawnGoload(t, ['--config', file, '--workers', String(workers)])
  await waitFor(() => (goload.stdout.match(/goload listening on port/g)?.length ?? 0) === workers, 'goload to listen (the line is not held back)', startDeadline)
  return { goload, port }
}

const isJson = (line: string) => { try { JSON.parse(line); return true } catch { return false } }
const accessLines = (stdout: string) => stdout.split('\n').filter((line) => line.includes('"goload: access"'))

t.test('the goload command: SIGTERM writes every gathered line before it exits, a request that ends while it drains too', async (t) => {
  let arrived = (): void => {}
  const slowArrived = new Promise<void>((resolve) => { arrived = resolve })
  const { goload, port } = await command(t, '  buffer: 65536\n  flush: 600000\n', 1, (request, response) => {
    if (request.url !== '/slow') return hello('a')(request, response)
    arrived()
    setTimeout(() => { response.end('slow') }, 300)
  })
  for (let n = 0; n < 20; n++) t.equal((await request(`http://127.0.0.1:${port}/${n}`)).status, 200)
  const slow = request(`http://127.0.0.1:${port}/slow`)
  await slowArrived
  goload.child.kill('SIGTERM')
  t.equal((await slow).status, 200, 'the request in flight is answered while goload drains')
  t.same(await deadline(goload.exited, startDeadline, 'goload to exit'), [0, null])
  const urls = accessLines(goload.stdout).map((line) => (JSON.parse(line) as { req: { url: string } }).req.url)
  t.same(urls, [...[...Array(20).keys()].map((n) => `/${n}`), '/slow'], 'all 21, in order')
  const lines = goload.stdout.split('\n')
  const closing = lines.findIndex((line) => line.includes('SIGTERM received, closing'))
  t.ok(closing > lines.findIndex((line) => line.includes('"url":"/19"')), 'the closing line came after the lines gathered before it')
  t.ok(closing < lines.findIndex((line) => line.includes('"url":"/slow"')), 'the drained request\'s line, written at exit, after it')
})

t.test('the goload command, --workers 2, one pipe for both: every line whole, none lost', async (t) => {
  const { goload, port } = await command(t, '  buffer: 65536\n  flush: 600000\n', 2)
  const total = 400
  const path = '/' + 'p'.repeat(200)
  for (let sent = 0; sent < total; sent += 20) {
    const answers = await Promise.all(Array.from({ length: 20 }, () => request(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' } })))
    t.ok(answers.every(({ status }) => status === 200), `requests ${sent}–${sent + 19} answered`)
  }
  goload.child.kill('SIGTERM')
  await deadline(goload.exited, startDeadline, 'goload to exit')
  // The primary's own lines are text; every worker's is a JSON object.
  const torn = goload.stdout.split('\n').filter((line) => line !== '' && !line.startsWith('goload: ') && !isJson(line))
  t.same(torn, [], 'every worker line is whole JSON')
  t.equal(accessLines(goload.stdout).length, total, 'one access line per request')
})
