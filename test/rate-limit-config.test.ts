// rateLimit per route in the config file: checked with the file's lines, applied by `goload --config`, shared between
// goload processes through Redis, and what a reload does to the counts.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { ConfigError } from '../lib/config/errors.js'
import { loadConfig } from '../lib/config/load.js'
import { accepting, configFile, freePort, runMain } from './helpers/cli.js'
import { childEnv } from './helpers/child.js'
import { request } from './helpers/client.js'
import { configFolder } from './helpers/config-files.js'
import { startRedis, withoutRedis } from './helpers/redis.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

const config = (port: number, backend: string, rateLimit: string) => `listeners:
  - port: ${port}
    host: 127.0.0.1
    routes:
      - pool: api
        rateLimit: ${rateLimit}
pools:
  api:
    backends: [${backend}]
`

t.test('a bad rateLimit in the file is reported at its line, naming the key', async (t) => {
  const write = await configFolder(t)
  const cases: Array<[string, string]> = [
    ['{ timeWindow: 1000 }', 'listeners[0].routes[0].rateLimit.max: is required'],
    ['{ max: 0, timeWindow: 1000 }', 'listeners[0].routes[0].rateLimit.max: must be a positive integer, got 0'],
    ['{ max: 1, timeWindow: soon }', 'listeners[0].routes[0].rateLimit.timeWindow: must be a positive number of ms or a duration like \'1 minute\', got "soon"'],
    ['{ max: 1, timeWindow: 1000, allowList: [localhost] }', 'listeners[0].routes[0].rateLimit.allowList[0]: must be an IP address, got "localhost"'],
    ['{ max: 1, timeWindow: 1000, redis: "http://127.0.0.1:6379" }', 'listeners[0].routes[0].rateLimit.redis: must be a redis:// or rediss:// URL, got "http://127.0.0.1:6379"'],
    ['{ max: 1, timeWindow: 1000, cache: 0 }', 'listeners[0].routes[0].rateLimit.cache: must be a positive integer, got 0'],
    ['{ max: 1, timeWindow: 1000, redis: "redis://127.0.0.1:6379", cache: 10 }', 'listeners[0].routes[0].rateLimit.cache: only applies to counts kept in memory: with rateLimit.redis they live in Redis'],
    ['{ max: 1, timeWindow: 1000, keyGenerator: ip }', 'listeners[0].routes[0].rateLimit.keyGenerator: unknown key']
  ]
  for (const [rateLimit, expected] of cases) {
    const file = await write('goload.yaml', config(8080, 'http://127.0.0.1:3001', rateLimit))
    const error = await loadConfig(file, { env: {} }).then(() => undefined, (error: unknown) => error)
    t.ok(error instanceof ConfigError, rateLimit)
    t.equal((error as ConfigError).message, `${file}:6: ${expected}`)
  }
  const file = await write('goload.yaml', config(8080, 'http://127.0.0.1:3001', "{ max: 5, timeWindow: '1 minute', allowList: ['10.0.0.1', '::1'], cache: 500000 }"))
  const loaded = await loadConfig(file, { env: {} })
  t.same(loaded.listeners[0].routes![0].rateLimit, { max: 5, timeWindow: '1 minute', allowList: ['10.0.0.1', '::1'], cache: 500000 })
})

t.test('goload --config applies the route\'s rateLimit; a reload starts in-memory counts afresh', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const port = await freePort()
  const file = await configFile(t, config(port, backend.url, "{ max: 2, timeWindow: '1 minute' }"))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const url = `http://127.0.0.1:${port}/`
  t.same([(await request(url)).status, (await request(url)).status], [200, 200])
  const over = await request(url)
  t.equal(over.status, 429)
  t.equal(JSON.parse(over.body).code, 'FST_GOLOAD_RATE_LIMITED')
  t.equal(backend.received, 2)

  await writeFile(file, config(port, backend.url, "{ max: 3, timeWindow: '1 minute' }"))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => /config reloaded/.test(run.logs()), 'the reload')
  const answers = [(await request(url)).status, (await request(url)).status, (await request(url)).status, (await request(url)).status]
  t.same(answers, [200, 200, 200, 429], 'the new limit, counted from zero: the app holding the counts was rebuilt')
})

const root = fileURLToPath(new URL('..', import.meta.url))

/** The compiled goload command in a process of its own. */
function goloadProcess (t: Test, args: string[]) {
  const child = spawn(process.execPath, ['dist/cli/bin.js', ...args], { cwd: root, env: childEnv(), stdio: ['ignore', 'ignore', 'inherit'] })
  t.teardown(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  })
  return child
}

t.test('two goload processes sharing one redis-server enforce one limit; a reload keeps the counts', { skip: withoutRedis }, async (t) => {
  const redis = await startRedis(t)
  const backend = await startBackend(t, hello('a'))
  const [inProcess, child] = [await freePort(), await freePort()]
  const rateLimit = `{ max: 4, timeWindow: '1 minute', redis: '${redis.url}' }`
  const file = await configFile(t, config(inProcess, backend.url, rateLimit))
  const childFile = await configFile(t, config(child, backend.url, rateLimit))
  const run = runMain(t, ['--config', file])
  goloadProcess(t, ['--config', childFile])
  await run.logged(/goload listening/, 'goload to listen')
  await accepting(child)
  const at = async (port: number) => (await request(`http://127.0.0.1:${port}/`)).status
  t.same([await at(inProcess), await at(child), await at(inProcess)], [200, 200, 200])

  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => /config reloaded/.test(run.logs()), 'the reload')
  t.same([await at(child), await at(inProcess), await at(child)], [200, 429, 429], 'one limit across both processes and the reload')
  t.equal(backend.received, 4)
})
