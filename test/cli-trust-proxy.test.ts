// listeners[].trustProxy: the goload command believes X-Forwarded-For (and -Proto, -Host) from the peers it trusts,
// so the access line, the rate-limit key and hashOn: ip follow the client behind them; from any other peer the
// header changes none of these. Upstream, X-Forwarded-For always gets the connection's own peer appended.
// main() runs in this process, one goload with a listener per setting; requests come from 127.0.0.1.
import type http from 'node:http'
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import { ConfigError } from '../lib/config/errors.js'
import { loadConfig } from '../lib/config/load.js'
import { configFile, freePort, runMain, type MainRun } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { configFolder } from './helpers/config-files.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

const listener = (port: number, trustProxy: string | undefined) => `  - port: ${port}
    host: 127.0.0.1
${trustProxy === undefined ? '' : `    trustProxy: ${trustProxy}\n`}    routes:
      - { path: /limited, pool: seen, rateLimit: { max: 1, timeWindow: '1 minute' } }
      - { path: /hashed, pool: hashed }
`

const config = (listeners: Array<[number, string | undefined]>, seen: string, hashed: string[]) => `listeners:
${listeners.map(([port, trustProxy]) => listener(port, trustProxy)).join('')}pools:
  seen:
    backends: [${seen}]
  hashed:
    strategy: hash
    hashOn: ip
    backends: [${hashed.join(', ')}]
`

interface Setup {
  run: MainRun
  /** The headers the `seen` backend got last. */
  seen: () => http.IncomingHttpHeaders
  file: string
  write: (listeners: Array<[number, string | undefined]>) => Promise<void>
}

async function start (t: Parameters<typeof runMain>[0], listeners: Array<[number, string | undefined]>): Promise<Setup> {
  let seen: http.IncomingHttpHeaders = {}
  const seenBackend = await startBackend(t, (req, res) => { seen = req.headers; req.resume(); res.end() })
  const hashed = await Promise.all(['0', '1', '2', '3'].map(async (id) => (await startBackend(t, hello(id))).url))
  const file = await configFile(t, config(listeners, seenBackend.url, hashed))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  return { run, seen: () => seen, file, write: (next) => writeFile(file, config(next, seenBackend.url, hashed)) }
}

let requests = 0

/** A request to /limited as if forwarded for `forwardedFor`: its status, what the backend saw, its access line. */
async function limited (setup: Setup, port: number, forwardedFor: string): Promise<{ status: number, upstream: string | string[] | undefined, remoteAddress: string }> {
  const url = `/limited?n=${++requests}`
  const { status } = await request(`http://127.0.0.1:${port}${url}`, { headers: { 'x-forwarded-for': forwardedFor } })
  const upstream = status === 200 ? setup.seen()['x-forwarded-for'] : undefined
  let line: { req: { remoteAddress: string } } | undefined
  await waitFor(() => {
    line = setup.run.logs().split('\n').filter(Boolean).map((text) => JSON.parse(text)).find((entry) => entry.req?.url === url)
    return line !== undefined
  }, `the access line of ${url}`)
  return { status, upstream, remoteAddress: line!.req.remoteAddress }
}

/** The backends /hashed sends twelve client addresses to, each asked twice (the same address must go to the same one). */
async function hashedBackends (t: Parameters<typeof runMain>[0], port: number): Promise<Set<string>> {
  const chosen = new Set<string>()
  for (let i = 1; i <= 12; i++) {
    const headers = { 'x-forwarded-for': `203.0.113.${i}` }
    const first = await request(`http://127.0.0.1:${port}/hashed`, { headers })
    const again = await request(`http://127.0.0.1:${port}/hashed`, { headers })
    t.equal(again.body, first.body, `203.0.113.${i} goes to one backend`)
    chosen.add(first.body)
  }
  return chosen
}

t.test('trusted peers: the client in X-Forwarded-For is logged, rate-limited and hashed; others change nothing', async (t) => {
  const ports = await Promise.all([0, 1, 2, 3, 4].map(() => freePort()))
  const [off, all, listed, hop, elsewhere] = ports
  const setup = await start(t, [[off, undefined], [all, 'true'], [listed, "['10.0.0.0/8', 127.0.0.1]"], [hop, '1'], [elsewhere, '[10.0.0.0/8, 192.168.0.0/16, "::1"]']])

  const trusting: Array<[string, number]> = [['true', all], ['a list with 127.0.0.1', listed], ['a hop count', hop]]
  for (const [name, port] of trusting) {
    const first = await limited(setup, port, '203.0.113.7')
    t.same(first, { status: 200, upstream: '203.0.113.7, 127.0.0.1', remoteAddress: '203.0.113.7' }, `${name}: the client is 203.0.113.7`)
    t.equal((await limited(setup, port, '203.0.113.7')).status, 429, `${name}: its second request is over its limit`)
    t.same(await limited(setup, port, '203.0.113.8'), { status: 200, upstream: '203.0.113.8, 127.0.0.1', remoteAddress: '203.0.113.8' }, `${name}: another client has its own count`)
    t.ok((await hashedBackends(t, port)).size > 1, `${name}: clients are hashed apart`)
  }

  const untrusting: Array<[string, number]> = [['off', off], ['a list without 127.0.0.1', elsewhere]]
  for (const [name, port] of untrusting) {
    t.same(await limited(setup, port, '203.0.113.7'), { status: 200, upstream: '203.0.113.7, 127.0.0.1', remoteAddress: '127.0.0.1' }, `${name}: the client is the peer`)
    const other = await limited(setup, port, '203.0.113.8')
    t.same(other, { status: 429, upstream: undefined, remoteAddress: '127.0.0.1' }, `${name}: another header is the same client, over its limit`)
    t.equal((await hashedBackends(t, port)).size, 1, `${name}: every header hashes as the peer`)
  }

  // A hop count believes that many proxies from the peer back; `true`, every address given, so the first one.
  const chain = '198.51.100.9, 203.0.113.9'
  t.equal((await limited(setup, hop, chain)).remoteAddress, '203.0.113.9', 'one hop: the address the proxy appended')
  t.equal((await limited(setup, all, chain)).remoteAddress, '198.51.100.9', 'true: the first address')
  t.equal(setup.seen()['x-forwarded-for'], `${chain}, 127.0.0.1`)
})

t.test('X-Forwarded-Proto and -Host from a trusted peer are passed on; from others, goload writes its own', async (t) => {
  const [off, on] = [await freePort(), await freePort()]
  const setup = await start(t, [[off, undefined], [on, '[127.0.0.1]']])
  const headers = { host: 'real.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'front.example' }
  await request(`http://127.0.0.1:${on}/limited`, { headers })
  t.match(setup.seen(), { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'front.example' })
  await request(`http://127.0.0.1:${off}/limited`, { headers })
  t.match(setup.seen(), { 'x-forwarded-proto': 'http', 'x-forwarded-host': 'real.example' })
})

t.test('a reload that turns trustProxy on applies it to the port it keeps', async (t) => {
  const port = await freePort()
  const setup = await start(t, [[port, undefined]])
  t.equal((await limited(setup, port, '203.0.113.7')).remoteAddress, '127.0.0.1')
  await setup.write([[port, 'true']])
  setup.run.signals.emit('SIGHUP', 'SIGHUP')
  await setup.run.logged(/config reloaded/, 'the reload')
  t.same(await limited(setup, port, '203.0.113.7'), { status: 200, upstream: '203.0.113.7, 127.0.0.1', remoteAddress: '203.0.113.7' })
  t.equal((await limited(setup, port, '203.0.113.8')).status, 200, 'another client has its own count')
})

t.test('a bad trustProxy is reported at its line, naming the key', async (t) => {
  const write = await configFolder(t)
  const cases: Array<[string, string]> = [
    ['0', 'listeners[0].trustProxy: must be true, a hop count (1 or more) or a list of addresses and CIDRs, got 0'],
    ['yes', 'listeners[0].trustProxy: must be true, a hop count (1 or more) or a list of addresses and CIDRs, got "yes"'],
    ['[]', 'listeners[0].trustProxy: must not be empty'],
    ['[10.0.0.0/8, 5]', 'listeners[0].trustProxy[1]: must be a string, got 5'],
    ['[10.0.0.300]', 'listeners[0].trustProxy[0]: must be an IP address, a CIDR (10.0.0.0/8) or one of loopback, linklocal, uniquelocal, got "10.0.0.300"'],
    ['[10.0.0.0/33]', 'listeners[0].trustProxy[0]: must be an IP address, a CIDR (10.0.0.0/8) or one of loopback, linklocal, uniquelocal, got "10.0.0.0/33"'],
    ['[lb.internal]', 'listeners[0].trustProxy[0]: must be an IP address, a CIDR (10.0.0.0/8) or one of loopback, linklocal, uniquelocal, got "lb.internal"']
  ]
  for (const [trustProxy, expected] of cases) {
    const file = await write('goload.yaml', config([[8080, trustProxy]], 'http://127.0.0.1:3001', ['http://127.0.0.1:3002']))
    const error = await loadConfig(file, { env: {} }).then(() => undefined, (error: unknown) => error)
    t.ok(error instanceof ConfigError, trustProxy)
    t.equal((error as ConfigError).message, `${file}:4: ${expected}`, trustProxy)
  }
  const file = await write('goload.yaml', config([[8080, "[loopback, 10.0.0.0/8, '2001:db8::/32', 192.168.1.1]"]], 'http://127.0.0.1:3001', ['http://127.0.0.1:3002']))
  t.same((await loadConfig(file, { env: {} })).listeners[0].trustProxy, ['loopback', '10.0.0.0/8', '2001:db8::/32', '192.168.1.1'])
  const check = runMain(t, ['--check', '--config', await write('bad.yaml', config([[8080, '[10.0.0.300]']], 'http://127.0.0.1:3001', ['http://127.0.0.1:3002']))])
  t.equal(await check.code, 1, '--check fails')
  t.match(check.stderr(), /bad\.yaml:4: listeners\[0\]\.trustProxy\[0\]: must be an IP address/)
})
