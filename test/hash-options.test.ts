// hashOn and balanceFactor: refused with a message naming the option when wrong or given to another strategy, in
// plugin options and in a config file alike.
import type { Test } from 'tap'
import t from 'tap'
import { normalizeOptions, type GoloadOptions } from '../lib/options.js'
import { loadConfig } from '../lib/config/load.js'
import { configFile, runMain } from './helpers/cli.js'

const backends = ['http://127.0.0.1:1']

t.test('invalid hash options are refused, naming the option', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ strategy: 'least-busy', hashOn: 'ip' }, /hashOn applies to strategy: 'hash' only \(strategy is 'least-busy'\)/],
    [{ hashOn: { header: 'x-user' } }, /hashOn applies to strategy: 'hash' only/],
    [{ strategy: 'p2c', balanceFactor: 2 }, /balanceFactor applies to strategy: 'hash' only \(strategy is 'p2c'\)/],
    [{ strategy: 'hash', balanceFactor: 0.9 }, /balanceFactor must be a number of 1 or more, got 0.9/],
    [{ strategy: 'hash', balanceFactor: '2' }, /balanceFactor must be a number of 1 or more, got "2"/],
    [{ strategy: 'hash', balanceFactor: Number.NaN }, /balanceFactor must be a number of 1 or more/],
    [{ strategy: 'hash', hashOn: 'cookie' }, /hashOn must be 'ip', \{ header: name \} or \{ cookie: name \}, got "cookie"/],
    [{ strategy: 'hash', hashOn: null }, /hashOn must be 'ip'/],
    [{ strategy: 'hash', hashOn: {} }, /hashOn must be 'ip'/],
    [{ strategy: 'hash', hashOn: { header: 'a', cookie: 'b' } }, /hashOn must be 'ip', \{ header: name \} or \{ cookie: name \}, got an object/],
    [{ strategy: 'hash', hashOn: { query: 'user' } }, /hashOn must be 'ip', \{ header: name \} or \{ cookie: name \}, got an object/],
    [{ strategy: 'hash', hashOn: { header: '' } }, /hashOn\.header must be a header name, got ""/],
    [{ strategy: 'hash', hashOn: { header: 'x user' } }, /hashOn\.header must be a header name, got "x user"/],
    [{ strategy: 'hash', hashOn: { cookie: 42 } }, /hashOn\.cookie must be a cookie name, got 42/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => normalizeOptions({ backends, ...options as object }), { code: 'FST_GOLOAD_INVALID_OPTION', message }, JSON.stringify(options))
  }
  const accepted: Array<[GoloadOptions, object]> = [
    [{ backends, strategy: 'hash' }, { hashOn: 'ip', balanceFactor: 1.25 }],
    [{ backends, strategy: 'hash', hashOn: 'ip', balanceFactor: 1 }, { hashOn: 'ip', balanceFactor: 1 }],
    [{ backends, strategy: 'hash', hashOn: { header: 'X-User' }, balanceFactor: Infinity }, { hashOn: { header: 'x-user' }, balanceFactor: Infinity }],
    [{ backends, strategy: 'hash', hashOn: { cookie: 'SID' } }, { hashOn: { cookie: 'SID' } }],
    [{ backends }, { hashOn: undefined }]
  ]
  for (const [options, normalized] of accepted) t.match(normalizeOptions(options), normalized, JSON.stringify(options))
})

/** A config file with one listener routing to pool `app`, whose YAML lines (indented 4) are `pool`. */
async function poolFile (t: Test, pool: string): Promise<string> {
  return await configFile(t, `listeners:
  - port: 8080
    routes:
      - pool: app
pools:
  app:${pool}`)
}

t.test('a config file with strategy hash loads, and --check names a hash option given to another strategy', async (t) => {
  const good = await poolFile(t, `
    strategy: hash
    hashOn:
      cookie: sid
    balanceFactor: 1.5
    backends: [http://127.0.0.1:3001, http://127.0.0.1:3002]
`)
  const config = await loadConfig(good)
  t.same(config.pools.app.hashOn, { cookie: 'sid' })
  t.equal(config.pools.app.balanceFactor, 1.5)

  const misplaced = await poolFile(t, `
    balanceFactor: 2
    backends: [http://127.0.0.1:3001]
`)
  const run = runMain(t, ['--check', '--config', misplaced])
  t.equal(await run.code, 1)
  t.match(run.stderr(), /pools\.app\.balanceFactor applies to strategy: 'hash' only \(strategy is 'least-busy'\)/)

  const wrong = await poolFile(t, `
    strategy: hash
    hashOn: { query: user }
    balanceFactor: 0.5
    backends: [http://127.0.0.1:3001]
`)
  await t.rejects(loadConfig(wrong), { message: /:8: pools\.app\.hashOn: must be 'ip', \{ header: name \} or \{ cookie: name \}[\s\S]*:9: pools\.app\.balanceFactor: must be a number of 1 or more, got 0\.5/ })
})
