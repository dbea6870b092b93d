// Splits and sticky cookies from the config file, through the built command: the 70/30/0 run, the admin's weight
// change seen by the next requests and undone by a reload, a sticky user kept and counted, the secret redacted.
import cluster, { type Worker } from 'node:cluster'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { countBodies, request } from './helpers/client.js'
import { configFile, freePort, runMain, spawnGoload } from './helpers/cli.js'
import { deadline, startDeadline } from './helpers/raw.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

const token = 'split-admin-token-of-32-chars-xx'
const auth = { authorization: `Bearer ${token}` }
const secret = 'sticky-secret-never-printed-0123'

async function splitConfig (t: Parameters<typeof startBackend>[0], port: number, adminPort: number): Promise<string> {
  const [stable, canary, dark] = await Promise.all(['stable', 'canary', 'dark'].map(async (name) => (await startBackend(t, hello(name))).url))
  return `listeners:
  - port: ${port}
    host: 127.0.0.1
    routes:
      - path: /
        pools: [{ pool: stable, weight: 70 }, { pool: canary, weight: 30 }, { pool: dark, weight: 0 }]
pools:
  stable:
    backends: [${stable}]
    sticky: { cookie: goload_web, secret: ${secret} }
  canary:
    backends: [${canary}]
    sticky: { cookie: goload_web, secret: ${secret}, maxAge: 3600 }
  dark:
    backends: [${dark}]
admin:
  port: ${adminPort}
  token: ${token}
`
}

t.test('built goload: 70/30/0 from the file, weights changed through the admin, a reload brings the file\'s back', async (t) => {
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = await configFile(t, await splitConfig(t, port, adminPort))
  const run = spawnGoload(t, ['--config', file])
  await waitFor(() => /goload listening/.test(run.stdout), 'goload to listen', startDeadline)
  const url = `http://127.0.0.1:${port}/`
  const admin = `http://127.0.0.1:${adminPort}`

  const counts = await countBodies(url)
  const share = (name: string): number => 100 * (counts.get(`Hello from ${name}`) ?? 0) / 500
  t.ok(Math.abs(share('stable') - 70) <= 5, `stable ${share('stable')}%`)
  t.ok(Math.abs(share('canary') - 30) <= 5, `canary ${share('canary')}%`)
  t.equal(counts.get('Hello from dark'), undefined, 'weight 0 gets nothing')

  const id = `${port}:/`
  t.equal((await request(`${admin}/routes`)).status, 401, 'the token is required')
  t.same(JSON.parse((await request(`${admin}/routes`, { headers: auth })).body), {
    routes: [{
      id,
      pools: [
        { pool: 'stable', weight: 70, configured: 70, requests: counts.get('Hello from stable') },
        { pool: 'canary', weight: 30, configured: 30, requests: counts.get('Hello from canary') },
        { pool: 'dark', weight: 0, configured: 0, requests: 0 }
      ]
    }]
  })
  const weights = `${admin}/routes/${encodeURIComponent(id)}/weights`
  const put = (body: string, headers = {}) => request(weights, { method: 'PUT', body, headers: { ...auth, 'content-type': 'application/json', ...headers } })
  t.equal((await request(weights, { method: 'PUT', body: '{"dark":1}', headers: { 'content-type': 'application/json' } })).status, 401)
  const refused = await put('{"stable":0,"canary":0}')
  t.equal(refused.status, 400)
  t.match(JSON.parse(refused.body), { code: 'FST_GOLOAD_INVALID_OPTION', message: /weights must give at least one pool a weight above 0/ })
  t.match(JSON.parse((await put('{"stabel":1}')).body), { message: /has no pool "stabel" \(its pools: stable, canary, dark\)/ })
  const unknown = await request(`${admin}/routes/${encodeURIComponent('1:/nowhere')}/weights`, { method: 'PUT', body: '{}', headers: { ...auth, 'content-type': 'application/json' } })
  t.equal(unknown.status, 404)
  t.match(JSON.parse(unknown.body), { code: 'FST_GOLOAD_UNKNOWN_ROUTE', message: new RegExp(`routes with pools: ${id}`) })

  const changed = await put('{"stable":0,"canary":1,"dark":1}')
  t.equal(changed.status, 200)
  t.match(JSON.parse(changed.body), { id, pools: [{ pool: 'stable', weight: 0, configured: 70 }, { pool: 'canary', weight: 1 }, { pool: 'dark', weight: 1 }] })
  const next = await Promise.all([1, 2, 3, 4].map(async () => (await request(url)).body))
  t.same(next.sort(), ['Hello from canary', 'Hello from canary', 'Hello from dark', 'Hello from dark'], 'the next requests follow the new weights')

  const stats = JSON.parse((await request(`${admin}/stats`, { headers: auth })).body) as { routes: unknown[], pools: Array<{ name: string, sticky: unknown }> }
  t.match(stats.routes, [{ id, pools: [{ pool: 'stable', weight: 0 }, { pool: 'canary', weight: 1 }, { pool: 'dark', weight: 1 }] }])
  t.same(stats.pools.map(({ name, sticky }) => [name, sticky === null]), [['stable', false], ['canary', false], ['dark', true]])
  const metrics = (await request(`${admin}/metrics`, { headers: auth })).body
  t.match(metrics, new RegExp(`goload_route_split_requests_total\\{route="${id}",pool="dark"\\} 2`))
  t.match(metrics, /goload_sticky_requests_total\{pool="canary",result="assigned"\} \d+/)

  run.child.kill('SIGHUP')
  await waitFor(() => /config reloaded/.test(run.stdout), 'the reload', startDeadline)
  t.match(JSON.parse((await request(`${admin}/routes`, { headers: auth })).body), { routes: [{ id, pools: [{ pool: 'stable', weight: 70 }, { pool: 'canary', weight: 30 }, { pool: 'dark', weight: 0 }] }] }, 'the file\'s weights again')
  run.child.kill('SIGTERM')
  await deadline(run.exited, startDeadline, 'goload to exit')
})

t.test('built goload: a sticky user stays on canary; the status counts it', async (t) => {
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = await configFile(t, await splitConfig(t, port, adminPort))
  const run = spawnGoload(t, ['--config', file])
  await waitFor(() => /goload listening/.test(run.stdout), 'goload to listen', startDeadline)
  const url = `http://127.0.0.1:${port}/`
  // 70/30 smooth: requests 1 and 2 go to stable, the third to canary.
  let onCanary
  for (let i = 0; i < 3 && onCanary === undefined; i++) {
    const answer = await request(url)
    if (answer.body === 'Hello from canary') onCanary = answer
  }
  t.match(onCanary?.headers['set-cookie']?.[0], /^goload_web=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=3600; HttpOnly; SameSite=Lax$/)
  const cookie = onCanary!.headers['set-cookie']![0].split(';')[0]
  const bodies = new Set<string>()
  for (let i = 0; i < 20; i++) bodies.add((await request(url, { headers: { cookie } })).body)
  t.same([...bodies], ['Hello from canary'])
  const stats = JSON.parse((await request(`http://127.0.0.1:${adminPort}/stats`, { headers: auth })).body) as { pools: Array<{ name: string, sticky: unknown }> }
  t.same(stats.pools.find((pool) => pool.name === 'canary')!.sticky, { cookie: 20, assigned: 1 })
  run.child.kill('SIGTERM')
  await deadline(run.exited, startDeadline, 'goload to exit')
})

t.test('--check: pool and pools, unknown pools in a split, weights all 0; --print-config hides the sticky secret', async (t) => {
  const file = await configFile(t, `listeners:
  - port: 8080
    routes:
      - path: /a
        pool: stable
        pools: [{ pool: stable, weight: 1 }]
      - path: /b
        pools: [{ pool: stabel, weight: 1 }, { pool: canary, weight: 0 }]
      - path: /c
        pools: [{ pool: stable, weight: 0 }]
      - path: /d
pools:
  stable:
    backends: [http://127.0.0.1:1]
    sticky: { cookie: goload_web, secret: ${secret} }
  canary:
    backends: [http://127.0.0.1:2]
`)
  const check = runMain(t, ['--check', '--config', file])
  t.equal(await check.code, 1)
  const errors = check.stderr()
  t.match(errors, /routes\[0\]: has pool and pools: give one of them/)
  t.match(errors, /routes\[1\]\.pools\[0\]\.pool: no pool named "stabel" \(did you mean stable\?\)/)
  t.match(errors, /routes\[2\]\.pools: must give at least one pool a weight above 0, got 0/)
  t.match(errors, /routes\[3\]\.pool: is required \(or pools: a weighted split\)/)

  const good = await configFile(t, `listeners:
  - port: 8080
    routes: [{ pools: [{ pool: stable, weight: 1 }] }]
pools:
  stable:
    backends: [http://127.0.0.1:1]
    sticky: { cookie: goload_web, secret: ${secret} }
`)
  const printed = runMain(t, ['--print-config', '--config', good])
  t.equal(await printed.code, 0)
  t.notMatch(printed.stdout(), secret)
  t.match(printed.stdout(), /secret: <redacted>/)
  t.match(printed.stdout(), /httpOnly: true/, 'defaults shown')
})

t.test('--workers 2 with a sticky pool without a secret: the primary says each worker would draw its own', async (t) => {
  const backend = await startBackend(t, hello('a'))
  const port = await freePort()
  const file = await configFile(t, `listeners:
  - port: ${port}
    host: 127.0.0.1
    routes: [{ pool: web }]
pools:
  web:
    backends: [${backend.url}]
    sticky: { cookie: goload_web }
  shared:
    backends: [${backend.url}]
    sticky: { cookie: goload_web, secret: ${secret} }
`)
  // The workers run the built command; their output comes back here.
  let output = ''
  const onFork = (worker: Worker): void => { worker.process.stdout?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk }) }
  cluster.on('fork', onFork)
  t.teardown(() => { cluster.off('fork', onFork) })
  cluster.setupPrimary({ exec: fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url)), args: ['--config', file, '--workers', '2'], execArgv: [], silent: true })
  const run = runMain(t, ['--config', file, '--workers', '2'])
  await waitFor(() => output.match(/goload listening/g)?.length === 2, 'both workers to listen', 60_000)
  t.match(run.stdout(), /goload: pools\.web\.sticky has no secret: each worker draws its own, so a client stays on its backend only while its connection stays on one worker; give sticky\.secret\n/)
  t.notMatch(run.stdout(), /pools\.shared\.sticky has no secret/)
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await deadline(run.code, startDeadline, 'the primary to return'), 0)
})
