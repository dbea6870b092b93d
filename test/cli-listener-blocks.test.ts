// Several listener blocks on one port are one server, as nginx's `server` blocks are: their routes are merged, the
// host picks among them. What belongs to the server (tls, http2, trustProxy, proxyProtocol, redirectHttps,
// headersTimeout) must be the same in each block: a difference is a config error at the second block's line.
import { writeFile } from 'node:fs/promises'
import net from 'node:net'
import t from 'tap'
import { accepting, configFile, freePort, runMain, spawnGoload, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadline, getOnSocket } from './helpers/raw.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

const blocks = (port: number, a: string, b: string, second = '') => `listeners:
  - port: ${port}
    host: 127.0.0.1
    routes: [{ host: a.test, pool: a }]
  - port: ${port}
    host: 127.0.0.1${second}
    routes: [{ host: b.test, pool: b }]
pools:
  a:
    backends: [${a}]
  b:
    backends: [${b}]
`

t.test('the built goload serves two blocks on one port as one server, each host to its own pool', async (t) => {
  const [a, b] = await Promise.all([startBackend(t, hello('a')), startBackend(t, hello('b'))])
  const port = await freePort()
  const run = spawnGoload(t, ['--config', await configFile(t, blocks(port, a.url, b.url))])
  await Promise.race([accepting(port, 30_000), run.exited.then(() => { throw new Error(`goload exited: ${run.stderr}`) })])
  t.equal((await request(`http://127.0.0.1:${port}/`, { headers: { host: 'a.test' } })).body, 'Hello from a')
  t.equal((await request(`http://127.0.0.1:${port}/`, { headers: { host: 'b.test' } })).body, 'Hello from b')
  // Every route of the merged server names a host: one neither block names is misdirected (see cli-no-route).
  const misdirected = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'c.test' } })
  t.equal(misdirected.status, 421, 'a host neither block names')
  t.match(JSON.parse(misdirected.body), { code: 'FST_GOLOAD_NO_ROUTE' })
  run.child.kill('SIGTERM')
  t.same(await deadline(run.exited, startDeadline, 'goload to exit'), [0, null])
})

t.test('--check: a second block on one port with other trustProxy is an error at its line', async (t) => {
  const port = await freePort()
  const file = await configFile(t, blocks(port, 'http://127.0.0.1:1', 'http://127.0.0.1:2', '\n    trustProxy: true'))
  const run = runMain(t, ['--check', '--config', file])
  t.equal(await run.code, 1)
  t.equal(run.stderr(), `${file}:7: listeners[1].trustProxy: listeners[0] serves port ${port} too, with trustProxy false: blocks on one port are one server and must agree on tls, http2, trustProxy, proxyProtocol, redirectHttps and headersTimeout\n`)
})

t.test('--check: each setting of the server is compared, where the second block writes it or leaves it out', async (t) => {
  const cases: Array<[string, string, string, string]> = [
    ['http2 given to the second only', '\n    http2: true', 'http2', 'http2 false'],
    ['proxyProtocol', '\n    proxyProtocol: { timeout: 100 }', 'proxyProtocol', 'proxyProtocol false'],
    ['headersTimeout', '\n    headersTimeout: 100', 'headersTimeout', 'headersTimeout 60000'],
    ['an explicit default is the same', '\n    http2: false\n    headersTimeout: 60000', '', '']
  ]
  for (const [name, second, key, first] of cases) {
    const file = await configFile(t, blocks(8080, 'http://127.0.0.1:1', 'http://127.0.0.1:2', second))
    const run = runMain(t, ['--check', '--config', file])
    if (key === '') {
      t.equal(await run.code, 0, name)
      continue
    }
    t.equal(await run.code, 1, name)
    t.match(run.stderr(), `${file}:7: listeners[1].${key}: listeners[0] serves port 8080 too, with ${first}:`, name)
  }
})

t.test('--check: a TLS block beside a plain one on one port names tls at the second block', async (t) => {
  const file = await configFile(t, `listeners:
  - port: 8443
    routes: [{ pool: a }]
  - port: 8443
    tls: { certificates: [{ cert: c.pem, key: k.pem }] }
    routes: [{ host: b.test, pool: a }]
pools:
  a:
    backends: [http://127.0.0.1:1]
`)
  const run = runMain(t, ['--check', '--config', file])
  t.equal(await run.code, 1)
  t.match(run.stderr(), `${file}:5: listeners[1].tls: listeners[0] serves port 8443 too, without tls:`)
})

t.test('--check: one route in two blocks on one port is a duplicate; on another port it is not', async (t) => {
  const file = await configFile(t, `listeners:
  - port: 8080
    routes: [{ host: a.test, pool: a }]
  - port: 8081
    routes: [{ host: a.test, pool: a }]
  - port: 8080
    routes:
      - { path: /x, pool: a }
      - { host: a.test, pool: a }
pools:
  a:
    backends: [http://127.0.0.1:1]
`)
  const run = runMain(t, ['--check', '--config', file])
  t.equal(await run.code, 1)
  t.equal(run.stderr(), `${file}:9: listeners[2].routes[1]: same host, path, methods and headers as listeners[0].routes[0], on the same port: no request could reach both\n`)
})

t.test('--check: another host on a port a block listens on for every address is an error at its host', async (t) => {
  const file = await configFile(t, blocks(8080, 'http://127.0.0.1:1', 'http://127.0.0.1:2').replace('    host: 127.0.0.1\n', ''))
  const run = runMain(t, ['--check', '--config', file])
  t.equal(await run.code, 1)
  t.equal(run.stderr(), `${file}:5: listeners[1].host: listeners[0] listens on port 8080 of every address (0.0.0.0), which leaves the port to no other server: give this block host 0.0.0.0 (its routes then join that server) or another port\n`)
})

t.test('SIGHUP with merged blocks: a block added on the port serves its host, a kept connection goes on', async (t) => {
  const [a, b, c] = await Promise.all([startBackend(t, hello('a')), startBackend(t, hello('b')), startBackend(t, hello('c'))])
  const port = await freePort()
  const file = await configFile(t, blocks(port, a.url, b.url))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const socket = net.connect(port, '127.0.0.1')
  t.teardown(() => { socket.destroy() })
  t.match(await getOnSocket(socket, '/', 'b.test'), /Hello from b$/)

  const three = blocks(port, a.url, b.url).replace('pools:\n', `  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ host: c.test, pool: c }]\npools:\n`) + `  c:\n    backends: [${c.url}]\n`
  await writeFile(file, three)
  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => /config reloaded|reload failed/.test(run.logs()), 'the reload')
  t.notMatch(run.logs(), /reload failed/)
  t.equal((await request(`http://127.0.0.1:${port}/`, { headers: { host: 'c.test' } })).body, 'Hello from c')
  t.match(await getOnSocket(socket, '/', 'a.test'), /Hello from a$/, 'the connection opened before the reload is served by the new routes')
  t.equal((await request(`http://127.0.0.1:${port}/`, { headers: { host: 'b.test' } })).body, 'Hello from b')
})
