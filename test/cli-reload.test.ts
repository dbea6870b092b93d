// SIGHUP reloads the config file with nothing dropped and no count forgotten: pools of the same name keep their
// backends' counts, backends added take traffic, backends removed finish what they have and get nothing new, a bad
// file leaves the running config serving. main() runs in this process; its signals are an emitter.
import { execFileSync } from 'node:child_process'
import { rm, symlink, writeFile } from 'node:fs/promises'
import http from 'node:http'
import t from 'tap'
import type { Test } from 'tap'
import type { Snapshot } from '../lib/admin/snapshot.js'
import { request } from './helpers/client.js'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { deadline, startDeadline } from './helpers/raw.js'
import { hello, startBackend, waitFor, type Backend } from './helpers/servers.js'

function config (port: number, backends: Backend[], extra = ''): string {
  return `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backends.map((b) => b.url).join(', ')}]\n${extra}`
}

/** A backend that holds requests to /slow until the test lets them go. */
async function holding (t: Test, name: string) {
  const held: Array<() => void> = []
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    if (req.url === '/slow') held.push(() => res.end(`Hello from ${name}`))
    else res.end(`Hello from ${name}`)
  })
  return { backend, held }
}

/** goload on a file naming `initial` of the backends a (holding /slow) and b, with one request held at a. */
async function slowRequestAtA (t: Test, initial: (a: Backend, b: Backend) => Backend[]) {
  const a = await holding(t, 'a')
  const b = await startBackend(t, hello('b'))
  const port = await freePort()
  const file = await configFile(t, config(port, initial(a.backend, b)))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const url = `http://127.0.0.1:${port}`
  const slow = request(url + '/slow')
  await waitFor(() => a.held.length === 1, 'the slow request at a')
  return { a, b, port, file, run, url, slow }
}

async function reload (run: ReturnType<typeof runMain>, count: number): Promise<void> {
  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => (run.logs().match(/config reloaded|reload failed/g) ?? []).length >= count, `reload ${count} to be done`)
}

t.test('a backend added takes traffic, and the counts of requests in flight survive the reload', async (t) => {
  const { a, b, port, file, run, url, slow } = await slowRequestAtA(t, (a) => [a])

  await writeFile(file, config(port, [a.backend, b]))
  await reload(run, 1)
  // a still has one request in flight: least-busy sends the next ones to b. Had the reload forgotten it, a (listed
  // first) would take the next one.
  t.equal((await request(url + '/')).body, 'Hello from b')
  a.held[0]()
  t.equal((await slow).body, 'Hello from a', 'the request in flight across the reload finished')
  t.equal((await slow).status, 200)
})

t.test('a backend removed finishes the request it has and gets no new one', async (t) => {
  const { a, b, port, file, run, url, slow } = await slowRequestAtA(t, (a, b) => [a, b])

  await writeFile(file, config(port, [b]))
  await reload(run, 1)
  const received = a.backend.received
  for (let i = 0; i < 4; i++) t.equal((await request(url + '/')).body, 'Hello from b')
  t.equal(a.backend.received, received, 'the removed backend got nothing new')
  a.held[0]()
  const answer = await slow
  t.equal(answer.status, 200)
  t.equal(answer.body, 'Hello from a')
})

t.test('a bad file on SIGHUP leaves the running config serving, and says why', async (t) => {
  const a = await startBackend(t, hello('a'))
  const port = await freePort()
  const file = await configFile(t, config(port, [a]))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  await writeFile(file, config(port, [a], '    timout: 5\n'))
  await reload(run, 1)
  t.match(run.logs(), /reload failed, the running config stays: .*pools\.web\.timout: unknown option/)
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from a')
})

t.test('three reloads in a row under load: no request fails, and each reload\'s backends are the ones that serve', async (t) => {
  const backends = await Promise.all(['a', 'b', 'c'].map((name) => startBackend(t, hello(name))))
  const port = await freePort()
  const file = await configFile(t, config(port, [backends[0]]))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const url = `http://127.0.0.1:${port}`

  const state = { loading: true }
  const failures: string[] = []
  let sent = 0
  const load = (async () => {
    while (state.loading && sent < 5000) {
      sent++
      const answer = await request(url + '/').catch((error: Error) => ({ status: 0, body: error.message }))
      if (answer.status !== 200) failures.push(`${answer.status} ${answer.body}`)
    }
  })()
  const sets = [[backends[1]], [backends[1], backends[2]], [backends[0]]]
  for (const [index, set] of sets.entries()) {
    await writeFile(file, config(port, set))
    await reload(run, index + 1)
    const names = set.map((backend) => `Hello from ${'abc'[backends.indexOf(backend)]}`)
    for (let i = 0; i < 6; i++) {
      const body = (await request(url + '/')).body
      t.ok(names.includes(body), `after reload ${index + 1}, ${body} is one of ${names.join(', ')}`)
    }
  }
  state.loading = false
  await load
  t.ok(sent > 10, `requests kept coming during the reloads (${sent})`)
  t.same(failures, [], 'none failed')
})

t.test('a listener added on reload serves on its port; one removed stops accepting', async (t) => {
  const a = await startBackend(t, hello('a'))
  const [first, second] = [await freePort(), await freePort()]
  const file = await configFile(t, config(first, [a]))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  await writeFile(file, config(second, [a]))
  await reload(run, 1)
  t.equal((await request(`http://127.0.0.1:${second}/`)).body, 'Hello from a', 'the new port serves')
  await t.rejects(request(`http://127.0.0.1:${first}/`, { deadline: 2000 }), 'the old port is closed')
})

t.test('a keep-alive connection opened before a reload goes on serving after it, with the new config', async (t) => {
  const [a, b] = [await startBackend(t, hello('a')), await startBackend(t, hello('b'))]
  const port = await freePort()
  const file = await configFile(t, config(port, [a]))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const get = () => new Promise<{ body: string, socket: unknown }>((resolve, reject) => {
    http.get(`http://127.0.0.1:${port}/`, { agent }, (res) => {
      let body = ''
      res.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => { resolve({ body, socket: res.socket }) })
    }).on('error', reject)
  })
  const before = await get()
  t.equal(before.body, 'Hello from a')
  await writeFile(file, config(port, [b]))
  await reload(run, 1)
  const after = await get()
  t.equal(after.body, 'Hello from b', 'the new config serves it')
  t.equal(after.socket, before.socket, 'on the same connection')
})

t.test('a reload whose new port is in use changes nothing: the old listeners and backends go on serving', async (t) => {
  const [a, b] = [await startBackend(t, hello('a')), await startBackend(t, hello('b'))]
  const busy = Number(new URL(b.url).port)
  const port = await freePort()
  const file = await configFile(t, config(port, [a]))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  // The same listener, plus one on a port another process holds; the pool's backends changed too.
  await writeFile(file, config(port, [b]).replace('pools:', `  - port: ${busy}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:`))
  await reload(run, 1)
  t.match(run.logs(), new RegExp(`reload failed, the running config stays: listeners\\[1\\]: port ${busy} is in use`))
  for (let i = 0; i < 3; i++) t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from a', 'the old backend set serves')
})

t.test('a SIGHUP during start-up neither kills goload nor changes anything', async (t) => {
  const a = await startBackend(t, hello('a'))
  const port = await freePort()
  const file = await configFile(t, config(port, [a]))
  const run = runMain(t, ['--config', file])
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/goload listening/, 'goload to listen')
  t.match(run.stdout(), /SIGHUP received, reloading the config/, 'heard before the logger existed')
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from a')
})

t.test('a backend removed by one reload and given back by the next returns once its old requests have ended', async (t) => {
  const { a, b, port, file, run, url, slow } = await slowRequestAtA(t, (a, b) => [a, b])
  await writeFile(file, config(port, [b]))
  await reload(run, 1)
  await writeFile(file, config(port, [a.backend, b]))
  await reload(run, 2)
  t.equal((await request(url + '/')).body, 'Hello from b', 'a is still draining')
  a.held[0]()
  t.equal((await slow).status, 200)
  // Back in the pool once its last request ended: least-busy gives it its turn.
  const bodies = new Set<string>()
  for (let i = 0; i < 20 && !bodies.has('Hello from a'); i++) bodies.add((await request(url + '/')).body)
  t.ok(bodies.has('Hello from a'), `a serves again (saw ${[...bodies].join(', ')})`)
})

/** Requests one after the other until one is answered `body` (a backend coming back), failing after a few seconds. */
async function answers (url: string, body: string): Promise<void> {
  const seen = new Set<string>()
  const until = Date.now() + 5000
  for (;;) {
    const answer = await request(url)
    if (answer.body === body) return
    seen.add(`${answer.status} ${answer.body}`)
    if (Date.now() > until) throw new Error(`never answered "${body}" (saw ${[...seen].join(', ')})`)
  }
}

t.test('a reload that fails cancels nothing: a backend the running config gave back still returns once drained', async (t) => {
  const { a, b, port, file, run, url, slow } = await slowRequestAtA(t, (a) => [a])
  await writeFile(file, config(port, [b]))
  await reload(run, 1)
  // a is draining (its request is held); this config wants it back once it has left.
  await writeFile(file, config(port, [a.backend]))
  await reload(run, 2)
  const busy = Number(new URL(b.url).port)
  await writeFile(file, config(port, [a.backend]).replace('pools:', `  - port: ${busy}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:`))
  await reload(run, 3)
  t.match(run.logs(), new RegExp(`reload failed, the running config stays: listeners\\[1\\]: port ${busy} is in use`))
  a.held[0]()
  t.equal((await slow).status, 200)
  await answers(url + '/', 'Hello from a')
  t.pass('a is back in the pool')
})

t.test('a SIGHUP during shutdown is logged and ignored: no listener of a new config opens', async (t) => {
  const { a, file, run, slow } = await slowRequestAtA(t, (a) => [a])
  run.signals.emit('SIGTERM', 'SIGTERM')
  await run.logged(/SIGTERM received, closing/, 'the shutdown to start')
  const other = await freePort()
  await writeFile(file, config(other, [a.backend]))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/SIGHUP received while shutting down: not reloading/, 'the SIGHUP to be ignored')
  a.held[0]()
  t.equal((await slow).status, 200, 'the request in flight finished')
  t.equal(await deadline(run.code, startDeadline, 'goload to exit'), 0)
  await t.rejects(request(`http://127.0.0.1:${other}/`, { deadline: 2000 }), 'nothing listens on the new config\'s port')
  t.notOk(/config reloaded/.test(run.logs()))
})

t.test('a reload of a path that is no longer a regular file, or is too big, fails at once and the running config stays', async (t) => {
  const a = await startBackend(t, hello('a'))
  const port = await freePort()
  const file = await configFile(t, config(port, [a]))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const url = `http://127.0.0.1:${port}/`

  // Opened for reading, a FIFO waits for a writer: the reload, and any shutdown behind it, would wait for ever.
  await rm(file)
  execFileSync('mkfifo', [file])
  await reload(run, 1)
  t.match(run.logs(), /reload failed, the running config stays: \S+goload\.yaml: not a regular file \(a FIFO\)/)
  t.equal((await request(url)).body, 'Hello from a')

  // /dev/zero never ends.
  await rm(file)
  await symlink('/dev/zero', file)
  await reload(run, 2)
  t.match(run.logs(), /goload\.yaml: not a regular file \(a device or socket\)/)
  t.equal((await request(url)).body, 'Hello from a')

  await rm(file)
  await writeFile(file, config(port, [a]) + `# ${'x'.repeat(4 * 1024 * 1024)}\n`)
  await reload(run, 3)
  t.match(run.logs(), /goload\.yaml: \d+ bytes, more than a config file may have \(4 MiB\)/)
  t.equal((await request(url)).body, 'Hello from a')
})

t.test('a pool a reload retires serves its queue: a request waiting there gets the backend\'s answer, not a 503', async (t) => {
  const a = await holding(t, 'a')
  const [port, adminPort] = [await freePort(), await freePort()]
  const admin = `admin:\n  port: ${adminPort}\n`
  const file = await configFile(t, config(port, [a.backend], `    maxPending: 1\n${admin}`))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const url = `http://127.0.0.1:${port}`
  const slow = request(url + '/slow')
  await waitFor(() => a.held.length === 1, 'the slow request at a')
  const queued = request(url + '/')
  const stats = async () => JSON.parse((await request(`http://127.0.0.1:${adminPort}/stats`)).body) as Snapshot
  for (let i = 0; (await stats()).pools[0].queued === 0; i++) if (i === 1000) throw new Error('the request never queued')
  // Other settings: the pool is started anew beside the old one, which is retired.
  await writeFile(file, config(port, [a.backend], `    maxPending: 1\n    timeout: 30000\n${admin}`))
  await reload(run, 1)
  a.held[0]()
  t.equal((await slow).body, 'Hello from a')
  const answer = await queued
  t.equal(answer.status, 200, 'the queued request was served')
  t.equal(answer.body, 'Hello from a')
})
