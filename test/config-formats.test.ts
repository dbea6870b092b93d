/* eslint-disable no-template-curly-in-string -- config files hold ${NAME} references, written as such */
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { loadConfig } from '../lib/config/load.js'
import { configSchema } from '../lib/config/schema.js'
import { schemaFile, schemaJson, writeSchema } from '../lib/config/write-schema.js'
import { configFolder } from './helpers/config-files.js'

const env = { PORT: '8081', CANARY: 'yes' }

const yaml = `listeners:
  - port: \${PORT}
    routes:
      - host: api.example.com
        path: /v1
        rewritePrefix: /
        methods: [GET, POST]
        headers: { x-canary: 1, x-flag: true, x-env: "\${CANARY}" }
        preserveHost: true
        pool: api
      - pool: web
pools:
  api:
    strategy: peak-ewma
    backends: [http://10.0.0.1:3000, { url: http://10.0.0.2:3000, weight: 2 }]
    healthCheck: { path: /health, expectStatus: [2xx, 301] }
    passiveHealth: false
  web:
    backends: [http://10.0.0.3:3000]
log:
  level: info
`

const toml = `[[listeners]]
port = "\${PORT}"
[[listeners.routes]]
host = "api.example.com"
path = "/v1"
rewritePrefix = "/"
methods = ["GET", "POST"]
headers = { x-canary = 1, x-flag = true, x-env = "\${CANARY}" }
preserveHost = true
pool = "api"
[[listeners.routes]]
pool = "web"
[pools.api]
strategy = "peak-ewma"
backends = ["http://10.0.0.1:3000", { url = "http://10.0.0.2:3000", weight = 2 }]
healthCheck = { path = "/health", expectStatus = ["2xx", 301] }
passiveHealth = false
[pools.web]
backends = ["http://10.0.0.3:3000"]
[log]
level = "info"
`

const json = JSON.stringify({
  listeners: [{
    port: '${PORT}',
    routes: [
      { host: 'api.example.com', path: '/v1', rewritePrefix: '/', methods: ['GET', 'POST'], headers: { 'x-canary': 1, 'x-flag': true, 'x-env': '${CANARY}' }, preserveHost: true, pool: 'api' },
      { pool: 'web' }
    ]
  }],
  pools: {
    api: { strategy: 'peak-ewma', backends: ['http://10.0.0.1:3000', { url: 'http://10.0.0.2:3000', weight: 2 }], healthCheck: { path: '/health', expectStatus: ['2xx', 301] }, passiveHealth: false },
    web: { backends: ['http://10.0.0.3:3000'] }
  },
  log: { level: 'info' }
}, null, 2)

// What a pool left without options is given: the loaded config is the effective one (as --print-config shows it).
const poolDefaults = {
  strategy: 'least-busy',
  timeout: 60_000,
  connectTimeout: 10_000,
  pipelining: 1,
  retries: 1,
  retryNonIdempotent: false,
  passiveHealth: { maxFails: 3, window: 10_000, ejectFor: 30_000, maxEjectedPercent: 50, consecutive5xx: 0, failurePercentage: 0, minRequests: 20 },
  slowStart: 0,
  queue: { max: 1000, timeout: 5000 },
  closeTimeout: 10_000,
  tunnelIdleTimeout: 0,
  ewmaDecay: 10_000,
  bufferBody: 65_536,
  clientTimeout: 30_000,
  clientMinRate: 500,
  allowH2: false
}
const routeDefaults = { path: '/', preserveHost: false, websocket: true, accessLog: true }

t.test('the same content in YAML, TOML and JSON gives the same config', async (t) => {
  const write = await configFolder(t)
  const fromYaml = await loadConfig(await write('goload.yaml', yaml), { env })
  t.same(fromYaml, {
    listeners: [{
      port: 8081,
      host: '0.0.0.0',
      routes: [
        { ...routeDefaults, host: 'api.example.com', path: '/v1', rewritePrefix: '/', methods: ['GET', 'POST'], headers: { 'x-canary': '1', 'x-flag': 'true', 'x-env': 'yes' }, preserveHost: true, pool: 'api' },
        { ...routeDefaults, pool: 'web' }
      ]
    }],
    pools: {
      api: { ...poolDefaults, strategy: 'peak-ewma', backends: ['http://10.0.0.1:3000', { url: 'http://10.0.0.2:3000', weight: 2 }], healthCheck: { path: '/health', expectStatus: ['2xx', 301], interval: 5000, timeout: 2000, healthyAfter: 2, unhealthyAfter: 3 }, passiveHealth: false },
      web: { ...poolDefaults, backends: ['http://10.0.0.3:3000'] }
    },
    log: { level: 'info', format: 'json' }
  }, 'port and header values coerced as the schema says, defaults filled in')
  t.strictSame(await loadConfig(await write('goload.toml', toml), { env }), fromYaml, 'TOML')
  t.strictSame(await loadConfig(await write('goload.json', json), { env }), fromYaml, 'JSON')
})

t.test('$${ stands for a literal ${, and a reference may sit inside a string', async (t) => {
  const write = await configFolder(t)
  const file = await write('goload.yaml', yaml.replace('[http://10.0.0.3:3000]', '["http://${WEB_HOST}:3000"]').replace('path: /v1', () => 'path: /$${v}'))
  const config = await loadConfig(file, { env: { ...env, WEB_HOST: '10.0.0.9' } })
  t.same(config.pools.web.backends, ['http://10.0.0.9:3000'])
  t.equal(config.listeners[0].routes![0].path, '/${v}')
})

t.test('env defaults to process.env', async (t) => {
  const write = await configFolder(t)
  process.env.GOLOAD_TEST_PORT = '9090'
  t.teardown(() => { delete process.env.GOLOAD_TEST_PORT })
  process.env.CANARY = 'yes'
  t.teardown(() => { delete process.env.CANARY })
  const config = await loadConfig(await write('goload.yaml', yaml.replace('${PORT}', '${GOLOAD_TEST_PORT}')))
  t.equal(config.listeners[0].port, 9090)
})

t.test('the example samples in YAML and TOML give the same config', async (t) => {
  const fromYaml = await loadConfig(new URL('../example/goload.yaml', import.meta.url).pathname, { env: {} })
  const fromToml = await loadConfig(new URL('../example/goload.toml', import.meta.url).pathname, { env: {} })
  t.strictSame(fromToml, fromYaml)
  t.same(fromYaml.listeners, [{ port: 8080, host: '0.0.0.0', routes: [{ ...routeDefaults, pool: 'hello' }] }])
  t.same(Object.keys(fromYaml.pools), ['hello'])
  t.same(fromYaml.pools.hello.backends, ['http://127.0.0.1:3001', 'http://127.0.0.1:3002', { url: 'http://127.0.0.1:3003', weight: 1 }])
  t.match(await readFile(new URL('../example/goload.yaml', import.meta.url), 'utf8'), /^# yaml-language-server: \$schema=\.\.\/goload\.schema\.json\n/)
})

t.test('the shipped goload.schema.json is the schema', async (t) => {
  t.same(JSON.parse(await readFile(schemaFile, 'utf8')), JSON.parse(JSON.stringify(configSchema)))
  t.equal(await readFile(schemaFile, 'utf8'), schemaJson(), 'as npm run build writes it')
  const write = await configFolder(t)
  const copy = await write('goload.schema.json', '')
  await writeSchema(copy)
  t.equal(await readFile(copy, 'utf8'), schemaJson())
})
