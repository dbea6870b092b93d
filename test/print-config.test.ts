/* eslint-disable no-template-curly-in-string -- config files hold ${NAME} references, written as such */
// The effective config, shown: `goload --print-config` (the built command, in a process of its own) and the admin's
// GET /config (over HTTP). Defaults filled in, ${NAME} replaced, every secret <redacted>.
import { writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import t from 'tap'
import { parse as parseYaml } from 'yaml'
import { request } from './helpers/client.js'
import { configFile, freePort, runMain, spawnGoload, startDeadline } from './helpers/cli.js'
import { deadline } from './helpers/raw.js'
import { hello, startBackend } from './helpers/servers.js'
import { TestPki } from './helpers/tls.js'

const pki = new TestPki()
t.teardown(() => pki.close())
const ca = pki.ca('print-config CA')
const server = pki.server(ca, { ip: ['127.0.0.1'] })
const client = pki.client(ca, 'goload')

const token = 'admin-token-of-16-chars-or-more'
const redisPassword = 'redis-pass-word'

t.test('--print-config prints the effective config as YAML: defaults, ${NAME} values, secrets <redacted>; exit 0', async (t) => {
  const file = await configFile(t, JSON.stringify({
    listeners: [{
      port: '${PORT}',
      tls: { certificates: [{ cert: 'server.crt', key: 'server.key' }] },
      routes: [{ pool: 'api', rateLimit: { max: 10, timeWindow: 1000, redis: 'redis://:${REDIS_PASSWORD}@127.0.0.1:6379/0' } }]
    }],
    pools: { api: { backends: ['https://127.0.0.1:3001'], tls: { ca: ca.cert, cert: client.cert, key: client.key } } },
    admin: { port: 9090, token: '${GOLOAD_ADMIN_TOKEN}' }
  }), 'goload.json')
  await writeFile(join(dirname(file), 'server.crt'), server.cert)
  await writeFile(join(dirname(file), 'server.key'), server.key)
  const run = spawnGoload(t, ['--print-config', '--config', file], { PORT: '8443', GOLOAD_ADMIN_TOKEN: token, REDIS_PASSWORD: redisPassword })
  t.same(await deadline(run.exited, startDeadline, 'goload --print-config to exit'), [0, null])
  t.equal(run.stderr, '')
  const printed = parseYaml(run.stdout)
  t.equal(printed.listeners[0].port, 8443, '${PORT} replaced, as a number')
  t.equal(printed.listeners[0].host, '0.0.0.0', 'a listener default')
  t.match(printed.listeners[0].routes[0], { path: '/', websocket: true, accessLog: true, pool: 'api' }, 'route defaults')
  t.match(printed.pools.api, { strategy: 'least-busy', timeout: 60_000, retries: 1, queue: { max: 1000, timeout: 5000 }, passiveHealth: { maxFails: 3 } }, 'pool defaults')
  t.equal(printed.admin.host, '127.0.0.1')
  t.equal(printed.admin.token, '<redacted>', 'the admin token')
  t.equal(printed.pools.api.tls.key, '<redacted>', 'a backend TLS private key')
  t.equal(printed.pools.api.tls.cert, client.cert, 'a certificate is no secret')
  t.equal(printed.listeners[0].routes[0].rateLimit.redis, 'redis://:<redacted>@127.0.0.1:6379/0', 'a Redis password, the address kept')
  t.equal(printed.listeners[0].tls.certificates[0].key, join(dirname(file), 'server.key'), 'a key file\'s path is kept: it says where the key is')
  for (const secret of [token, redisPassword, 'PRIVATE KEY']) t.notOk(run.stdout.includes(secret), `${secret} is not printed`)
})

t.test('--print-config of an invalid config: exit 1, the --check lines, nothing printed', async (t) => {
  const file = await configFile(t, 'listeners:\n  - port: 8080\n    routes: [{ pool: ap }]\npools:\n  api:\n    backends: [http://127.0.0.1:3001]\n    timout: 1\n')
  const print = spawnGoload(t, ['--print-config', '--config', file])
  const check = spawnGoload(t, ['--check', '--config', file])
  t.same(await deadline(print.exited, startDeadline, 'goload --print-config to exit'), [1, null])
  t.same(await deadline(check.exited, startDeadline, 'goload --check to exit'), [1, null])
  t.equal(print.stdout, '')
  t.equal(print.stderr, check.stderr, 'the --check output')
  t.equal(print.stderr, `${file}:3: listeners[0].routes[0].pool: no pool named "ap" (did you mean api?)\n${file}:7: pools.api.timout: unknown option (did you mean timeout?)\n`)
})

t.test('the admin\'s GET /config: token-protected, the same redaction as JSON, the config a reload applied', async (t) => {
  const a = await startBackend(t, hello('a'))
  const [port, adminPort] = [await freePort(), await freePort()]
  const text = (timeout: number): string => `listeners:
  - port: ${port}
    host: 127.0.0.1
    routes: [{ pool: web, rateLimit: { max: 10, timeWindow: 1000, redis: "redis://:\${REDIS_PASSWORD}@127.0.0.1:6379" } }]
pools:
  web:
    backends: [${a.url}]
    timeout: ${timeout}
admin:
  port: ${adminPort}
  token: \${GOLOAD_ADMIN_TOKEN}
`
  const file = await configFile(t, text(1000))
  const run = runMain(t, ['--config', file], { GOLOAD_ADMIN_TOKEN: token, REDIS_PASSWORD: redisPassword })
  await run.logged(/goload listening/, 'goload to listen')
  const url = `http://127.0.0.1:${adminPort}/config`
  t.equal((await request(url)).status, 401, 'no token, no config')
  const auth = { authorization: `Bearer ${token}` }
  const answer = await request(url, { headers: auth })
  t.equal(answer.status, 200)
  t.match(answer.headers['content-type'], /^application\/json/)
  const shown = JSON.parse(answer.body)
  t.match(shown, { admin: { port: adminPort, host: '127.0.0.1', token: '<redacted>' }, pools: { web: { timeout: 1000, retries: 1, strategy: 'least-busy' } } })
  t.equal(shown.listeners[0].routes[0].rateLimit.redis, 'redis://:<redacted>@127.0.0.1:6379')
  for (const secret of [token, redisPassword]) t.notOk(answer.body.includes(secret), `${secret} is not shown`)

  await writeFile(file, text(2000))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/config reloaded/, 'the reload')
  t.equal(JSON.parse((await request(url, { headers: auth })).body).pools.web.timeout, 2000, 'what the reload applied')
})
