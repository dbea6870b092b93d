/* eslint-disable no-template-curly-in-string -- config files hold ${NAME} references, written as such */
import t from 'tap'
import { ConfigError } from '../lib/config/errors.js'
import { loadConfig } from '../lib/config/load.js'
import { configFolder } from './helpers/config-files.js'

const valid = `listeners:
  - port: 8080
    routes:
      - pool: api
pools:
  api:
    backends: [http://127.0.0.1:3001]
`

// Each bad file, and the exact message: file, line where the format keeps it, key path, what was expected.
const cases: Array<[string, string, string, (file: string) => string]> = [
  ['an unknown key', 'goload.yaml', valid + '    timout: 100\n', (f) => `${f}:8: pools.api.timout: unknown option (did you mean timeout?)`],
  ['an unknown listener key', 'goload.yaml', valid.replace('    routes:', '    prot: 1\n    routes:'), (f) => `${f}:3: listeners[0].prot: unknown key (did you mean port?)`],
  ['a wrong type', 'goload.yaml', valid + '    timeout: "100"\n', (f) => `${f}:8: pools.api.timeout: must be a positive integer, got "100"`],
  ['a port out of range', 'goload.yaml', valid.replace('8080', '70000'), (f) => `${f}:2: listeners[0].port: must be a port number (1-65535) or \${NAME}, got 70000`],
  ['a bad URL', 'goload.yaml', valid.replace('http://127.0.0.1:3001', 'ftp://x'), (f) => `${f}:7: pools.api.backends[0] is not a valid http(s) or h2c URL: "ftp://x"`],
  ['a gRPC health check of an HTTP/1.1 backend', 'goload.yaml', valid + '    healthCheck:\n      grpc: true\n', (f) => `${f}:9: pools.api.healthCheck.grpc needs HTTP/2 to every backend, and backends[0] is http://127.0.0.1:3001: give h2c:// URLs, or https:// ones with allowH2: true`],
  ['h2c with tls', 'goload.yaml', valid.replace('[http://127.0.0.1:3001]', '[{ url: h2c://127.0.0.1:3001, tls: { rejectUnauthorized: false } }]'), (f) => `${f}:7: pools.api.backends[0].tls is for https:// backends, and this one is h2c://`],
  ['a missing pool', 'goload.yaml', valid.replace('pool: api', 'pool: ap'), (f) => `${f}:4: listeners[0].routes[0].pool: no pool named "ap" (did you mean api?)`],
  ['a missing required key', 'goload.yaml', valid.replace('      - pool: api', '      - path: /'), (f) => `${f}:4: listeners[0].routes[0].pool: is required (or pools: a weighted split)`],
  ['a missing env var', 'goload.yaml', valid.replace('8080', '${GOLOAD_TEST_UNSET}'), (f) => `${f}:2: listeners[0].port: environment variable GOLOAD_TEST_UNSET is not set`],
  ['an object or false', 'goload.yaml', valid + '    passiveHealth: true\n', (f) => `${f}:8: pools.api.passiveHealth: must be an object or false, got true`],
  ['a circuit breaker ratio of 0', 'goload.yaml', valid + '    circuitBreaker: { errorRatio: 0 }\n', (f) => `${f}:8: pools.api.circuitBreaker.errorRatio: must be a number above 0, up to 1, got 0`],
  ['a misspelt circuit breaker key', 'goload.yaml', valid + '    circuitBreaker: { halfOpenRequest: 2 }\n', (f) => `${f}:8: pools.api.circuitBreaker.halfOpenRequest: unknown option (did you mean halfOpenRequests?)`],
  ['a retry budget over 100%', 'goload.yaml', valid + '    retryBudget: { percent: 150 }\n', (f) => `${f}:8: pools.api.retryBudget.percent: must be a number from 0 to 100, got 150`],
  ['a failure percentage that is not whole', 'goload.yaml', valid + '    passiveHealth: { failurePercentage: 50.5 }\n', (f) => `${f}:8: pools.api.passiveHealth.failurePercentage: must be a whole number from 0 to 100, got 50.5`],
  ['a bad backend field', 'goload.yaml', valid.replace('[http://127.0.0.1:3001]', '[{ url: http://127.0.0.1:3001, wieght: 2 }]'), (f) => `${f}:7: pools.api.backends[0].wieght: unknown option (did you mean weight?)`],
  ['an empty list', 'goload.yaml', valid.replace(/ {4}routes:\n.*\n/, '    routes: []\n'), (f) => `${f}:3: listeners[0].routes: must not be empty`],
  ['a top level that is not a map', 'goload.yaml', '- a\n- b\n', (f) => `${f}:1: (top level): must be an object, got a list`],
  ['a YAML syntax error', 'goload.yaml', 'listeners:\n  - port: 8080\n   routes: [\n', (f) => `${f}:3:1: Sequence item without - indicator`],
  ['a TOML syntax error', 'goload.toml', '[[listeners]]\nport = \n', (f) => `${f}:2:8: invalid value`],
  ['a TOML problem without a line', 'goload.toml', '[[listeners]]\nport = 8080\n[[listeners.routes]]\npool = "api"\n[pools.api]\nbackends = ["http://127.0.0.1:3001"]\ntimout = 1\n', (f) => `${f}: pools.api.timout: unknown option (did you mean timeout?)`],
  ['a JSON syntax error', 'goload.json', '{\n  "listeners": [ },\n  "pools": {}\n}\n', (f) => `${f}:2:18: Unexpected token '}'`],
  ['a JSON error at a position', 'goload.json', '{\n  "listeners": []\n  "pools": {}\n}\n', (f) => `${f}:3:3: Expected ',' or '}' after property value`],
  ['a short JSON syntax error', 'goload.json', '{"a": tru}', (f) => `${f}:1:10: Unexpected token '}'`],
  ['a JSON file cut short', 'goload.json', '{"listeners": [', (f) => `${f}:1:16: Unexpected end of JSON input`],
  ['a JSON key given twice', 'goload.json', '{"pools": {}, "pools": {}}', (f) => `${f}:1:15: Map keys must be unique`],
  ['a JSON problem with a line', 'goload.json', '{\n  "listeners": [{ "port": 8080, "routes": [{ "pool": "api" }] }],\n  "pools": { "api": { "backends": ["http://127.0.0.1:3001"], "timout": 1 } }\n}\n', (f) => `${f}:3: pools.api.timout: unknown option (did you mean timeout?)`],
  ['an empty YAML file', 'goload.yaml', '# nothing yet\n', (f) => `${f}: the file is empty: expected listeners and pools`],
  ['an empty TOML file', 'goload.toml', '', (f) => `${f}: the file is empty: expected listeners and pools`],
  ['an empty JSON object', 'goload.json', '{}', (f) => `${f}:1: listeners: is required\n${f}:1: pools: is required`],
  ['an unknown format', 'goload.ini', 'x', (f) => `${f}: unknown format ".ini": use .yaml, .yml, .toml or .json`],
  ['a strategy that does not exist', 'goload.yaml', valid + '    strategy: fastest\n', (f) => `${f}:8: pools.api.strategy: must be one of "least-busy", "round-robin", "p2c", "peak-ewma", "hash", got "fastest"`],
  ['a method that is not a method name', 'goload.yaml', valid.replace('      - pool: api', '      - pool: api\n        methods: [GET/1]'), (f) => `${f}:5: listeners[0].routes[0].methods[0]: must be an HTTP method name, got "GET/1"`],
  ['a path with a wildcard', 'goload.yaml', valid.replace('      - pool: api', '      - pool: api\n        path: /api/*'), (f) => `${f}:5: listeners[0].routes[0].path: must be a plain path starting with "/" (no wildcards, parameters, query or fragment), got "/api/*"`],
  ['two routes told apart only by the case of a method', 'goload.yaml', valid.replace('      - pool: api', '      - pool: api\n        methods: [get]\n      - pool: api\n        methods: [GET]'), (f) => `${f}:6: listeners[0].routes[1]: same host, path, methods and headers as routes[0]: no request could reach both`],
  ['two routes no request could tell apart', 'goload.yaml', valid.replace('      - pool: api', '      - pool: api\n      - path: /\n        pool: api'), (f) => `${f}:5: listeners[0].routes[1]: same host, path, methods and headers as routes[0]: no request could reach both`],
  ['a pool name that needs quoting', 'goload.yaml', valid.replace('pool: api', 'pool: a b').replace('  api:', '  a b:') + '    timout: 1\n', (f) => `${f}:8: pools["a b"].timout: unknown option (did you mean timeout?)`]
]

for (const [name, fileName, text, expected] of cases) {
  t.test(name, async (t) => {
    const write = await configFolder(t)
    const file = await write(fileName, text)
    const error = await loadConfig(file, { env: {} }).then(() => undefined, (error: unknown) => error)
    t.ok(error instanceof ConfigError, 'a ConfigError')
    t.equal((error as ConfigError).code, 'FST_GOLOAD_INVALID_CONFIG')
    t.equal((error as ConfigError).message, expected(file))
  })
}

t.test('every problem gets its own line', async (t) => {
  const write = await configFolder(t)
  const file = await write('goload.yml', valid.replace('8080', '${NO_PORT}') + '    timout: 1\n    retries: -1\n')
  const error = await loadConfig(file, { env: {} }).catch((error: ConfigError) => error)
  t.same((error as ConfigError).problems, [
    `${file}:2: listeners[0].port: environment variable NO_PORT is not set`,
    `${file}:8: pools.api.timout: unknown option (did you mean timeout?)`,
    `${file}:9: pools.api.retries: must be a whole number (0 or more), got -1`
  ])
})

t.test('an unreadable file', async (t) => {
  const write = await configFolder(t)
  const file = (await write('x.yaml', '')).replace('x.yaml', 'missing.yaml')
  await t.rejects(loadConfig(file), { code: 'FST_GOLOAD_INVALID_CONFIG', message: new RegExp(`^${file}: cannot read the file: ENOENT`) })
})

t.test('every problem in one pass, in the file\'s order: schema errors, unknown pools, duplicate routes, ports; a misspelt key hides nothing beside it', async (t) => {
  const write = await configFolder(t)
  const file = await write('goload.yaml', `admin:
  port: 8080
listeners:
  - port: 8080
    routes:
      - pool: ap
      - path: /
        pool: api
  - port: 8081
    prot: 1
    routes: [{ pool: wbe }]
pools:
  api:
    backends: [http://127.0.0.1:3001, ftp://y]
    timout: 100
  web:
    backends: [ftp://x]
`)
  const error = await loadConfig(file, { env: {} }).catch((error: ConfigError) => error)
  t.same((error as ConfigError).problems, [
    `${file}:2: admin.port: 8080 is also the port of listeners[0]: give the admin a port of its own`,
    `${file}:6: listeners[0].routes[0].pool: no pool named "ap" (did you mean api?)`,
    `${file}:7: listeners[0].routes[1]: same host, path, methods and headers as routes[0]: no request could reach both`,
    `${file}:10: listeners[1].prot: unknown key (did you mean port?)`,
    `${file}:11: listeners[1].routes[0].pool: no pool named "wbe" (did you mean web?)`,
    `${file}:14: pools.api.backends[1] is not a valid http(s) or h2c URL: "ftp://y"`,
    `${file}:15: pools.api.timout: unknown option (did you mean timeout?)`,
    `${file}:17: pools.web.backends[0] is not a valid http(s) or h2c URL: "ftp://x"`
  ])
})

t.test('a name far from every known one gets no suggestion', async (t) => {
  const write = await configFolder(t)
  const file = await write('goload.yaml', valid.replace('pool: api', 'pool: zzzzzz') + '    frobnicate: 1\n')
  const error = await loadConfig(file, { env: {} }).catch((error: ConfigError) => error)
  t.same((error as ConfigError).problems, [
    `${file}:4: listeners[0].routes[0].pool: no pool named "zzzzzz" (pools: api)`,
    `${file}:8: pools.api.frobnicate: unknown option`
  ])
})
