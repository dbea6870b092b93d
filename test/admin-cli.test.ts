// The admin listener as the goload command runs it: --admin with GOLOAD_ADMIN_TOKEN, the config file's admin block,
// the non-loopback rule, reloads, shutdown with an open event stream. main() runs in this process.
import { writeFile } from 'node:fs/promises'
import http from 'node:http'
import t from 'tap'
import type { Snapshot } from '../lib/admin/snapshot.js'
import { openEvents } from './helpers/admin.js'
import { request } from './helpers/client.js'
import { accepting, configFile, freePort, runMain } from './helpers/cli.js'
import { deadline, startDeadline } from './helpers/raw.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

const exit = (run: { code: Promise<number> }) => deadline(run.code, startDeadline, 'goload to exit')
const stats = async (url: string, headers = {}): Promise<Snapshot> => JSON.parse((await request(`${url}/stats`, { headers })).body) as Snapshot

function config (port: number, backends: string[], admin = ''): string {
  return `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backends.join(', ')}]\n${admin}`
}

t.test('--admin HOST:PORT serves the status page and /stats of the live pools; SIGTERM with an open event stream exits promptly', async (t) => {
  const a = await startBackend(t, hello('a'))
  const [port, adminPort] = [await freePort(), await freePort()]
  const run = runMain(t, ['--backend', a.url, '--port', String(port), '--host', '127.0.0.1', '--admin', `127.0.0.1:${adminPort}`])
  await run.logged(/goload listening/, 'goload to listen')
  t.match(run.logs(), new RegExp(`"msg":"goload admin on http://127\\.0\\.0\\.1:${adminPort}"`))
  const url = `http://127.0.0.1:${adminPort}`
  t.equal((await request(url + '/')).status, 200)
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from a')
  t.match(await stats(url), { pools: [{ name: 'default', requests: 1, backends: [{ id: a.url, served: 1 }] }] })
  const stream = await openEvents(t, url)
  await stream.first()
  const started = Date.now()
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await exit(run), 0)
  await deadline(stream.ended, 2000, 'the event stream to end')
  t.ok(Date.now() - started < 2000, `stopped in ${Date.now() - started} ms`)
})

t.test('--admin takes its token from GOLOAD_ADMIN_TOKEN, and a public host needs one', async (t) => {
  const a = await startBackend(t, hello('a'))
  const refused = runMain(t, ['--backend', a.url, '--port', String(await freePort()), '--admin', `0.0.0.0:${await freePort()}`])
  t.equal(await exit(refused), 1)
  t.match(refused.stderr(), /^goload: --admin 0\.0\.0\.0:\d+: the admin listener on 0\.0\.0\.0 is reachable from other machines: set a token \(GOLOAD_ADMIN_TOKEN\), or listen on 127\.0\.0\.1\n$/)
  const empty = runMain(t, ['--backend', a.url, '--port', String(await freePort()), '--admin', `[::]:${await freePort()}`], { GOLOAD_ADMIN_TOKEN: '' })
  t.equal(await exit(empty), 1, 'an empty token is none')

  const adminPort = await freePort()
  const run = runMain(t, ['--backend', a.url, '--port', String(await freePort()), '--admin', `0.0.0.0:${adminPort}`], { GOLOAD_ADMIN_TOKEN: 's3cret-of-16-chars-or-more' })
  await run.logged(/goload listening/, 'goload to listen')
  const url = `http://127.0.0.1:${adminPort}`
  t.equal((await request(url + '/stats')).status, 401)
  t.equal((await request(url + '/stats', { headers: { authorization: 'Bearer s3cret-of-16-chars-or-more' } })).status, 200)
  t.equal((await request(url + '/')).status, 200, 'the page needs no token')
})

t.test('bad --admin values and --check --admin are usage errors', async (t) => {
  for (const [argv, message] of [
    [['--backend', 'http://127.0.0.1:1', '--admin', '9090'], /^goload: --admin must be HOST:PORT, like 127\.0\.0\.1:9090, got "9090"\n$/],
    [['--backend', 'http://127.0.0.1:1', '--admin', '127.0.0.1:70000'], /^goload: --admin must be HOST:PORT/],
    [['--backend', 'http://127.0.0.1:1', '--admin', '::1:9090'], /^goload: --admin must be HOST:PORT/],
    [['--check', '--config', 'x.yaml', '--admin', '127.0.0.1:9090'], /^goload: --check runs nothing: --admin does not apply\n$/]
  ] as Array<[string[], RegExp]>) {
    const run = runMain(t, argv)
    t.equal(await exit(run), 1, argv.join(' '))
    t.match(run.stderr(), message)
  }
  const help = runMain(t, ['--help'])
  await exit(help)
  t.match(help.stdout(), /--admin HOST:PORT/)
})

t.test('the config file\'s admin block: host defaults to 127.0.0.1, the token from the environment; --admin replaces it', async (t) => {
  const a = await startBackend(t, hello('a'))
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = await configFile(t, config(port, [a.url], `admin:\n  port: ${adminPort}\n  token: \${GOLOAD_ADMIN_TOKEN}\n`))
  const run = runMain(t, ['--config', file], { GOLOAD_ADMIN_TOKEN: 'from-the-environment' })
  await run.logged(/goload listening/, 'goload to listen')
  t.match(run.logs(), `goload admin on http://127.0.0.1:${adminPort}`)
  const url = `http://127.0.0.1:${adminPort}`
  t.equal((await request(url + '/stats')).status, 401)
  t.match(await stats(url, { authorization: 'Bearer from-the-environment' }), { pools: [{ name: 'web' }] })
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await exit(run), 0)

  const flagPort = await freePort()
  const flagged = runMain(t, ['--config', file, '--admin', `127.0.0.1:${flagPort}`], { GOLOAD_ADMIN_TOKEN: 'from-the-environment' })
  await flagged.logged(/goload listening/, 'goload to listen')
  t.match(flagged.logs(), `goload admin on http://127.0.0.1:${flagPort}`)
  t.equal((await request(`http://127.0.0.1:${flagPort}/stats`, { headers: { authorization: 'Bearer from-the-environment' } })).status, 200)
})

t.test('a config admin block on a public host without a token is an error at its line, for --check too', async (t) => {
  const file = await configFile(t, config(8080, ['http://127.0.0.1:1'], 'admin:\n  port: 9090\n  host: 0.0.0.0\n'))
  for (const argv of [['--check', '--config', file], ['--config', file]]) {
    const run = runMain(t, argv)
    t.equal(await exit(run), 1)
    t.equal(run.stderr(), `${file}:10: admin.host: the admin listener on 0.0.0.0 is reachable from other machines: set a token (GOLOAD_ADMIN_TOKEN), or listen on 127.0.0.1\n`)
  }
  const typo = await configFile(t, config(8080, ['http://127.0.0.1:1'], 'admin:\n  prot: 9090\n'))
  const run = runMain(t, ['--check', '--config', typo])
  t.equal(await exit(run), 1)
  t.match(run.stderr(), /admin\.prot: unknown key/)
  t.match(run.stderr(), /admin\.port: is required/)
})

t.test('an admin token shorter than 16 characters or with whitespace refuses to start: the file\'s admin.token at its line, GOLOAD_ADMIN_TOKEN for --admin', async (t) => {
  const short = 'must be at least 16 characters, has 15: use a random one, such as `openssl rand -hex 32`'
  const spaced = 'must not contain whitespace (a line break or a space copied with it?)'
  for (const [token, message] of [['fifteen-chars-x', short], ['sixteen chars xx', spaced], ['sixteen-chars-xx\n', spaced]]) {
    // eslint-disable-next-line no-template-curly-in-string -- the file's env reference, written as such
    const file = await configFile(t, config(8080, ['http://127.0.0.1:1'], 'admin:\n  port: 9090\n  token: ${GOLOAD_ADMIN_TOKEN}\n'))
    for (const argv of [['--check', '--config', file], ['--config', file]]) {
      const run = runMain(t, argv, { GOLOAD_ADMIN_TOKEN: token })
      t.equal(await exit(run), 1, `${JSON.stringify(token)}: ${argv.join(' ')}`)
      t.equal(run.stderr(), `${file}:10: admin.token: ${message}\n`)
    }
    const run = runMain(t, ['--backend', 'http://127.0.0.1:1', '--port', String(await freePort()), '--admin', `127.0.0.1:${await freePort()}`], { GOLOAD_ADMIN_TOKEN: token })
    t.equal(await exit(run), 1, `--admin with GOLOAD_ADMIN_TOKEN=${JSON.stringify(token)}`)
    t.equal(run.stderr(), `goload: GOLOAD_ADMIN_TOKEN ${message}\n`)
  }
  // Sixteen characters are enough.
  const adminPort = await freePort()
  const run = runMain(t, ['--backend', 'http://127.0.0.1:1', '--port', String(await freePort()), '--host', '127.0.0.1', '--admin', `127.0.0.1:${adminPort}`], { GOLOAD_ADMIN_TOKEN: 'sixteen-chars-xx' })
  await run.logged(/goload listening/, 'goload to listen')
  t.equal((await request(`http://127.0.0.1:${adminPort}/stats`, { headers: { authorization: 'Bearer sixteen-chars-xx' } })).status, 200)
})

t.test('a reload keeps the admin serving, over the reloaded pools; a changed admin block waits for a restart', async (t) => {
  const a = await startBackend(t, hello('a'))
  const b = await startBackend(t, hello('b'))
  const [port, adminPort] = [await freePort(), await freePort()]
  const admin = `admin:\n  port: ${adminPort}\n`
  const file = await configFile(t, config(port, [a.url], admin))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const url = `http://127.0.0.1:${adminPort}`
  const stream = await openEvents(t, url)
  await stream.first()

  await writeFile(file, config(port, [a.url, b.url], admin))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/config reloaded/, 'the reload')
  t.match((await stats(url)).pools[0].backends.map((backend) => backend.id), [a.url, b.url])
  await stream.next((snapshot) => snapshot.pools[0].backends.length === 2)
  t.notMatch(run.logs(), /admin block changed/)

  // A pool whose settings change is a new pool object: the admin follows it, and the actions reach it.
  await writeFile(file, config(port, [a.url, b.url], `${admin}    timeout: 5000\n`).replace(`${admin}    timeout: 5000\n`, `    timeout: 5000\n${admin}`))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => (run.logs().match(/config reloaded/g) ?? []).length === 2, 'the second reload')
  t.equal((await request(`${url}/pools/web/backends/${encodeURIComponent(b.url)}/drain`, { method: 'POST' })).status, 200)
  for (let i = 0; i < 3; i++) t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from a')
  await stream.next((snapshot) => snapshot.pools[0].backends[1].draining)

  await writeFile(file, config(port, [a.url], `admin:\n  port: ${await freePort()}\n`))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/the admin block changed: it applies once goload restarts/, 'the warning')
  t.equal((await request(url + '/stats')).status, 200, 'still on its port')
})

t.test('an admin port in use: goload exits 1 and frees the listeners\' ports', async (t) => {
  const busy = http.createServer()
  const [port, adminPort] = [await freePort(), await freePort()]
  await new Promise<void>((resolve) => busy.listen(adminPort, '127.0.0.1', resolve))
  t.teardown(() => new Promise((resolve) => busy.close(resolve)))
  const run = runMain(t, ['--backend', 'http://127.0.0.1:1', '--port', String(port), '--host', '127.0.0.1', '--admin', `127.0.0.1:${adminPort}`])
  t.equal(await exit(run), 1)
  t.match(run.stderr(), new RegExp(`^goload: admin: cannot listen on 127\\.0\\.0\\.1:${adminPort}: .*EADDRINUSE`))
  const again = runMain(t, ['--backend', 'http://127.0.0.1:1', '--port', String(port), '--host', '127.0.0.1'])
  await accepting(port)
  again.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await exit(again), 0)
})

t.test('the admin listener serves the command\'s metrics: the live pools and the reload pair, behind the token', async (t) => {
  const a = await startBackend(t, hello('a'))
  const [port, adminPort] = [await freePort(), await freePort()]
  const run = runMain(t, ['--backend', a.url, '--port', String(port), '--host', '127.0.0.1', '--admin', `127.0.0.1:${adminPort}`], { GOLOAD_ADMIN_TOKEN: 'm3trics-scraper-token' })
  await run.logged(/goload listening/, 'goload to listen')
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from a')
  const url = `http://127.0.0.1:${adminPort}/metrics`
  t.equal((await request(url)).status, 401, 'metrics need the token too')
  const scraped = await request(url, { headers: { authorization: 'Bearer m3trics-scraper-token' } })
  t.equal(scraped.status, 200)
  t.match(scraped.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(scraped.body, new RegExp(`goload_backend_requests_total\\{pool="default",backend="${a.url.replace(/[.]/g, '\\.')}",code="2xx"\\} 1\\n`))
  t.match(scraped.body, /goload_config_last_reload_success 1\n/)
})
