import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mkdir, symlink, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import t from 'tap'
import { accepting, configFile, freePort, runMain } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadline, startDeadline } from './helpers/raw.js'
import { hello, startBackend, startSlowBackend } from './helpers/servers.js'

const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }
const exit = (run: { code: Promise<number> }) => deadline(run.code, startDeadline, 'goload to exit')

t.test('--version prints the package version; --help the usage; both exit 0', async (t) => {
  for (const flag of ['--version', '-v']) {
    const run = runMain(t, [flag])
    t.equal(await exit(run), 0)
    t.equal(run.stdout(), `${version}\n`)
  }
  const help = runMain(t, ['--help'])
  t.equal(await exit(help), 0)
  t.match(help.stdout(), /goload --config goload\.yaml/)
  t.match(help.stdout(), /--check --config/)
  t.match(help.stdout(), /--backend URL/)
  t.match(help.stdout(), /--workers N\|auto/)
})

t.test('bad flags exit 1 with one line naming the mistake, before anything listens', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--frobnicate'], /^goload: Unknown option '--frobnicate' \(goload --help lists the options\)\n$/],
    [['stray'], /^goload: Unexpected argument 'stray'/],
    [[], /^goload: nothing to run: give --config FILE, or --backend URL/],
    [['--check'], /^goload: --check needs --config FILE\n$/],
    [['--config', 'x.yaml', '--backend', 'http://127.0.0.1:1', '--port', '1'], /^goload: --config cannot be combined with --backend, --port: /],
    [['--check', '--config', 'x.yaml', '--workers', '2'], /^goload: --check runs nothing: --workers does not apply\n$/],
    [['--backend', 'http://127.0.0.1:1', '--port', '70000'], /^goload: --port must be a port number \(0-65535\), got "70000"\n$/],
    [['--backend', 'http://127.0.0.1:1', '--port', 'http'], /^goload: --port must be a port number/],
    [['--backend', 'http://127.0.0.1:1', '--workers', '0'], /^goload: --workers must be a positive integer or auto, got "0"\n$/],
    [['--backend', 'http://127.0.0.1:1', '--workers', 'many'], /^goload: --workers must be a positive integer or auto, got "many"\n$/]
  ]
  for (const [argv, message] of cases) {
    const run = runMain(t, argv)
    t.equal(await exit(run), 1, `goload ${argv.join(' ')} exits 1`)
    t.match(run.stderr(), message)
    t.equal(run.stderr().trim().split('\n').length, 1, 'one line')
    t.equal(run.logs(), '', 'nothing was started')
  }
})

const twoPools = (ports: number[], a: string, b: string) => `
listeners:
  - port: ${ports[0]}
    host: 127.0.0.1
    routes:
      - pool: a
  - port: ${ports[1]}
    host: 127.0.0.1
    routes:
      - pool: b
pools:
  a:
    backends: [${a}]
  b:
    backends: [${b}]
log:
  level: warn
`

t.test('--check --config: "FILE: ok" and exit 0 for a good file, one line per problem and exit 1 for a bad one, without binding', async (t) => {
  const ports = [await freePort(), await freePort()]
  const good = await configFile(t, twoPools(ports, 'http://127.0.0.1:1', 'http://127.0.0.1:2'))
  const ok = runMain(t, ['--check', '--config', good])
  t.equal(await exit(ok), 0)
  t.equal(ok.stdout(), `${good}: ok\n`)
  t.equal(ok.logs(), '', 'nothing built, nothing listening')

  const bad = await configFile(t, twoPools(ports, 'http://127.0.0.1:1', 'http://127.0.0.1:2').replace('backends: [http://127.0.0.1:1]', 'backends: [http://127.0.0.1:1]\n    timout: 5'))
  const failed = runMain(t, ['--check', '--config', bad])
  t.equal(await exit(failed), 1)
  t.equal(failed.stderr(), `${bad}:14: pools.a.timout: unknown option (did you mean timeout?)\n`, 'the file, the line, the key path')
  t.equal(failed.stdout(), '')

  const missing = runMain(t, ['--check', '--config', `${good}.missing.yaml`])
  t.equal(await exit(missing), 1)
  t.match(missing.stderr(), /^.*\.missing\.yaml: cannot read the file: ENOENT/)
})

t.test('a config path that is not a regular file, or is over 4 MiB, is refused at once: --check and at start', async (t) => {
  const dir = dirname(await configFile(t, ''))
  const fifo = join(dir, 'fifo.yaml')
  execFileSync('mkfifo', [fifo])
  const zero = join(dir, 'zero.yaml')
  await symlink('/dev/zero', zero)
  const folder = join(dir, 'folder.yaml')
  await mkdir(folder)
  const big = join(dir, 'big.yaml')
  await writeFile(big, `# ${'x'.repeat(4 * 1024 * 1024)}\n`)
  const cases: Array<[string, RegExp]> = [
    // A FIFO opened for reading waits for a writer, and /dev/zero never ends: each would hang goload.
    [fifo, /fifo\.yaml: not a regular file \(a FIFO\): a config file must be one\n$/],
    [zero, /zero\.yaml: not a regular file \(a device or socket\)/],
    [folder, /folder\.yaml: not a regular file \(a directory\)/],
    [big, /big\.yaml: 4194307 bytes, more than a config file may have \(4 MiB\)\n$/]
  ]
  for (const [file, message] of cases) {
    for (const argv of [['--check', '--config', file], ['--config', file]]) {
      const run = runMain(t, argv)
      t.equal(await exit(run), 1, argv.join(' '))
      t.match(run.stderr(), message)
    }
  }
})

t.test('--config with a bad file exits 1 with its problems before listening', async (t) => {
  const port = await freePort()
  const bad = await configFile(t, `listeners:\n  - port: ${port}\n    routes: [{ pool: ap }]\npools:\n  api:\n    backends: [http://127.0.0.1:1]\n`)
  const run = runMain(t, ['--config', bad])
  t.equal(await exit(run), 1)
  t.equal(run.stderr(), `${bad}:3: listeners[0].routes[0].pool: no pool named "ap" (did you mean api?)\n`)
  t.equal(run.logs(), '', 'nothing listened')
})

t.test('--backend URL --backend URL: one pool on --port, spread over both; SIGTERM closes and main returns 0', async (t) => {
  const backends = [await startBackend(t, hello('1')), await startBackend(t, hello('2'))]
  const port = await freePort()
  const run = runMain(t, ['--backend', backends[0].url, '--backend', backends[1].url, '--port', String(port), '--host', '127.0.0.1', '--strategy', 'round-robin'])
  await run.logged(new RegExp(`goload listening on port ${port}, pid ${process.pid}`), 'goload to listen')
  const bodies = []
  for (let i = 0; i < 4; i++) bodies.push((await request(`http://127.0.0.1:${port}/any/path`)).body)
  t.same(bodies.sort(), ['Hello from 1', 'Hello from 1', 'Hello from 2', 'Hello from 2'], 'round-robin over both backends')
  await run.logged(/("msg":"goload: access"[^]*){4}/, 'four access lines')
  t.notMatch(run.logs(), /"msg":"request completed"/, 'one access line per request at info by default, not Fastify\'s pair')

  run.signals.emit('SIGINT', 'SIGINT')
  t.equal(await exit(run), 0)
  t.match(run.logs(), /SIGINT received, closing/)
  await t.rejects(request(`http://127.0.0.1:${port}/`), { code: 'ECONNREFUSED' }, 'no longer listening')
})

t.test('--backend with a strategy the plugin does not know exits 1 with its message', async (t) => {
  const run = runMain(t, ['--backend', 'http://127.0.0.1:1', '--port', String(await freePort()), '--strategy', 'fastest'])
  t.equal(await exit(run), 1)
  t.match(run.stderr(), /^goload: strategy must be one of .*"fastest"/)
  t.equal(run.stderr().trim().split('\n').length, 1)
})

t.test('--config: two listeners on two ports, each routing to its own pool', async (t) => {
  const [a, b] = [await startBackend(t, hello('a')), await startBackend(t, hello('b'))]
  const ports = [await freePort(), await freePort()]
  const run = runMain(t, ['--config', await configFile(t, twoPools(ports, a.url, b.url))])
  await accepting(ports[0])
  await accepting(ports[1])
  for (let i = 0; i < 3; i++) {
    t.equal((await request(`http://127.0.0.1:${ports[0]}/x`)).body, 'Hello from a')
    t.equal((await request(`http://127.0.0.1:${ports[1]}/x`)).body, 'Hello from b')
  }
  t.notMatch(run.logs(), /request completed/, 'log.level warn leaves out the info lines')
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await exit(run), 0)
})

t.test('--config: host, path and rewritePrefix routes land on the right backend; a second route shares its pool', async (t) => {
  const echo = (id: string) => (req: { url?: string, headers: Record<string, unknown>, resume: () => void, on: (e: string, f: () => void) => void }, res: { end: (s: string) => void }) => {
    req.resume()
    req.on('end', () => { res.end(`${id} ${req.url} ${String(req.headers.host)}`) })
  }
  const [api, web, canary] = [await startBackend(t, echo('api')), await startBackend(t, echo('web')), await startBackend(t, echo('canary'))]
  const port = await freePort()
  const file = await configFile(t, `{
  "listeners": [{ "port": ${port}, "host": "127.0.0.1", "routes": [
    { "host": "api.test", "path": "/v1", "rewritePrefix": "/", "pool": "api" },
    { "path": "/", "pool": "web" },
    { "path": "/", "headers": { "x-canary": 1 }, "pool": "canary" },
    { "host": "*.api.test", "path": "/", "preserveHost": true, "pool": "api" }
  ] }],
  "pools": { "api": { "backends": ["${api.url}"] }, "web": { "backends": ["${web.url}"] }, "canary": { "backends": ["${canary.url}"] } },
  "log": { "level": "silent" }
}`, 'goload.json')
  const run = runMain(t, ['--config', file])
  await accepting(port)
  const get = async (path: string, headers: Record<string, string> = {}) => (await request(`http://127.0.0.1:${port}${path}`, { headers })).body
  t.equal(await get('/v1/users?x=1', { host: 'api.test:8080' }), `api /users?x=1 ${new URL(api.url).host}`, 'host + prefix, rewritten, query kept')
  t.equal(await get('/v1/users?x=1'), `web /v1/users?x=1 ${new URL(web.url).host}`, 'no host: the catch-all')
  t.equal(await get('/v2', { host: 'api.test' }), `web /v2 ${new URL(web.url).host}`, 'api.test outside /v1 is not the api route')
  t.equal(await get('/x', { 'x-canary': '1' }), `canary /x ${new URL(canary.url).host}`, 'header condition, from a number in the file')
  t.equal(await get('/y', { host: 'eu.api.test' }), 'api /y eu.api.test', 'wildcard host, second route of pool api, Host preserved')
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await exit(run), 0)
  t.equal(run.logs(), '', 'log.level silent')
})

t.test('a port in use exits 1 with "listeners[N]: port P is in use", closing the listeners already started', async (t) => {
  const busy = await startBackend(t, hello('busy'))
  const busyPort = Number(new URL(busy.url).port)
  const first = await freePort()
  const file = await configFile(t, twoPools([first, busyPort], 'http://127.0.0.1:1', 'http://127.0.0.1:2'))
  const run = runMain(t, ['--config', file])
  t.equal(await exit(run), 1)
  t.equal(run.stderr(), `goload: listeners[1]: port ${busyPort} is in use\n`)
  await t.rejects(request(`http://127.0.0.1:${first}/`), { code: 'ECONNREFUSED' }, 'listeners[0] was closed again')
})

t.test('an address that is not this machine exits 1 naming the listener', async (t) => {
  const run = runMain(t, ['--backend', 'http://127.0.0.1:1', '--host', '192.0.2.1', '--port', String(await freePort())])
  t.equal(await exit(run), 1)
  t.match(run.stderr(), /^goload: listeners\[0\]: cannot listen on 192\.0\.2\.1:\d+: .*EADDRNOTAVAIL/)
})

t.test('SIGTERM during a slow request: it finishes with 200, new connections are refused, main returns 0', async (t) => {
  const slow = await startSlowBackend(t, 500, 'slow but done')
  const port = await freePort()
  const run = runMain(t, ['--backend', slow.url, '--port', String(port), '--host', '127.0.0.1'])
  await run.logged(/goload listening/, 'goload to listen')
  const answer = request(`http://127.0.0.1:${port}/slow`)
  await deadline(slow.arrived, 5000, 'the request to reach the backend')
  run.signals.emit('SIGTERM', 'SIGTERM')
  const { status, body, headers } = await answer
  t.equal(status, 200)
  t.equal(body, 'slow but done')
  t.equal(headers.connection, 'close', 'answered with Connection: close while draining')
  t.equal(await exit(run), 0)
})

t.test('while draining, an idle keep-alive connection is closed at once rather than after keepAliveTimeout', async (t) => {
  const backend = await startBackend(t, hello('1'))
  const port = await freePort()
  const run = runMain(t, ['--backend', backend.url, '--port', String(port), '--host', '127.0.0.1'])
  await run.logged(/goload listening/, 'goload to listen')
  const { Agent } = await import('node:http')
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const answer = await request(`http://127.0.0.1:${port}/`, { agent })
  t.equal(answer.headers.connection, 'keep-alive')
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await deadline(run.code, 3000, 'close without waiting for the idle connection'), 0)
})

t.test('a signal during start-up is kept: goload starts, then closes and returns 0', async (t) => {
  const port = await freePort()
  const run = runMain(t, ['--backend', 'http://127.0.0.1:1', '--port', String(port), '--host', '127.0.0.1'])
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await exit(run), 0)
  t.match(run.logs(), /SIGTERM received, closing/)
})

t.test('parseCommand: --workers auto is one per core; --config with --port alone is refused too', async (t) => {
  const { parseCommand } = await import('../lib/cli/args.js')
  const { availableParallelism } = await import('node:os')
  t.match(parseCommand(['--backend', 'http://127.0.0.1:1', '--workers', 'auto']), { action: 'serve', workers: availableParallelism() })
  t.throws(() => parseCommand(['--config', 'x.yaml', '--port', '1']), { message: /^--config cannot be combined with --port: / })
})

t.test('serve(): a config object run until SIGTERM, onListening told the real ports', async (t) => {
  const { serve } = await import('../lib/cli/main.js')
  const { EventEmitter } = await import('node:events')
  const { PassThrough } = await import('node:stream')
  const backend = await startBackend(t, hello('1'))
  const signals = new EventEmitter()
  let listening: number[] = []
  const code = serve(async () => ({ listeners: [{ port: 0, host: '127.0.0.1', routes: [{ path: '/', pool: 'p' }] }], pools: { p: { backends: [backend.url] } }, log: { level: 'silent' } }), 1, {
    signals, logStream: new PassThrough(), onListening: (ports) => { listening = ports }
  })
  t.teardown(() => { signals.emit('SIGTERM', 'SIGTERM') })
  await deadline((async () => { while (listening.length === 0) await new Promise((resolve) => setTimeout(resolve, 5)) })(), startDeadline, 'onListening')
  t.equal((await request(`http://127.0.0.1:${listening[0]}/`)).body, 'Hello from 1')
  signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await deadline(code, startDeadline, 'serve to return'), 0)
})

t.test('--check names a pool whose name is not an identifier with brackets in the key path', async (t) => {
  const file = await configFile(t, 'listeners:\n  - port: 8080\n    routes: [{ pool: "a b" }]\npools:\n  "a b":\n    backends: [http://127.0.0.1:1]\n    timout: 1\n')
  const run = runMain(t, ['--check', '--config', file])
  t.equal(await exit(run), 1)
  t.equal(run.stderr(), `${file}:7: pools["a b"].timout: unknown option (did you mean timeout?)\n`)
})
