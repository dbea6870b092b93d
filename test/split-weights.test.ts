// A route split between pools by weight (Gateway API's HTTPRouteWeight conformance test): 500 requests, 10 at a
// time, weights 70/30/0 across three pools whose backends answer their pool's name.
import Fastify, { type FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import goload, { type SplitPoolOptions } from '../lib/index.js'
import type { Registry } from '../lib/registry.js'
import { startAdminOf } from './helpers/admin.js'
import { countBodies, request } from './helpers/client.js'
import { hello, startBackend } from './helpers/servers.js'

/** Pools stable, canary and dark (one backend each, answering "Hello from <pool>") and a split route at /app. */
async function splitBalancer (t: Test, pools: SplitPoolOptions[]): Promise<{ app: FastifyInstance, url: string }> {
  const app = Fastify()
  for (const name of ['stable', 'canary', 'dark']) {
    const backend = await startBackend(t, hello(name))
    // Each pool's own route is elsewhere: the split takes /app.
    await app.register(goload, { name, prefix: `/only-${name}`, backends: [backend.url] })
  }
  await app.register(goload, { prefix: '/app', pools, metrics: true })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  return { app, url: `http://127.0.0.1:${port}/app` }
}

t.test('70/30/0: each pool within 5 points of its share, weight 0 gets none', async (t) => {
  const { app, url } = await splitBalancer(t, [{ pool: 'stable', weight: 70 }, { pool: 'canary', weight: 30 }, { pool: 'dark', weight: 0 }])
  const counts = await countBodies(url)
  const share = (name: string): number => 100 * (counts.get(`Hello from ${name}`) ?? 0) / 500
  t.ok(Math.abs(share('stable') - 70) <= 5, `stable ${share('stable')}%`)
  t.ok(Math.abs(share('canary') - 30) <= 5, `canary ${share('canary')}%`)
  t.equal(counts.get('Hello from dark'), undefined, 'weight 0 gets nothing')
  const [split] = (app.goload as Registry).splits
  t.equal(split.id, '/app')
  t.same(split.pools.map(({ name, weight, requests }) => ({ name, weight, requests })), [
    { name: 'stable', weight: 70, requests: counts.get('Hello from stable') },
    { name: 'canary', weight: 30, requests: counts.get('Hello from canary') },
    { name: 'dark', weight: 0, requests: 0 }
  ], 'the split counts the requests it sent to each pool')
  const metrics = await app.goload.metrics!.metrics()
  t.match(metrics, `goload_route_split_requests_total{route="/app",pool="stable"} ${counts.get('Hello from stable')}`)
  t.match(metrics, 'goload_route_split_requests_total{route="/app",pool="dark"} 0')
  t.notMatch(metrics, 'goload_sticky_requests_total{', 'no sticky pool, no sticky samples')
})

t.test('smooth: 2/1 interleaves rather than sending runs', async (t) => {
  const { url } = await splitBalancer(t, [{ pool: 'stable', weight: 2 }, { pool: 'canary', weight: 1 }])
  const bodies: string[] = []
  for (let i = 0; i < 6; i++) bodies.push((await request(url)).body.replace('Hello from ', ''))
  t.same(bodies, ['stable', 'canary', 'stable', 'stable', 'canary', 'stable'], 'nginx\'s smooth weighted round-robin order')
})

t.test('new weights apply from the next request', async (t) => {
  const { app, url } = await splitBalancer(t, [{ pool: 'stable', weight: 1 }, { pool: 'canary', weight: 0 }])
  t.equal((await request(url)).body, 'Hello from stable')
  app.goload.setWeights('/app', { stable: 0, canary: 5 })
  t.same(app.goload.weights('/app'), { stable: 0, canary: 5 })
  for (let i = 0; i < 5; i++) t.equal((await request(url)).body, 'Hello from canary')
  t.throws(() => { app.goload.setWeights('/app', { canary: 0 }) }, { code: 'FST_GOLOAD_INVALID_OPTION', message: /weights must give at least one pool a weight above 0/ })
  t.throws(() => { app.goload.setWeights('/app', { canery: 1 }) }, { message: /has no pool "canery" \(its pools: stable, canary\)/ })
  t.throws(() => { app.goload.setWeights('/app', { canary: 1.5 }) }, { message: /weight of canary must be a whole number \(0 or more\), got 1.5/ })
  t.throws(() => { app.goload.setWeights('/', { canary: 1 }) }, { code: 'FST_GOLOAD_UNKNOWN_ROUTE', message: /no route that splits between pools has the id "\/" \(routes with pools: \/app\)/ })
  t.equal((await request(url)).body, 'Hello from canary', 'a refused change changes nothing')
})

t.test('a pool with every backend drained is passed over; with every pool so, the answer is 503', async (t) => {
  const { app, url } = await splitBalancer(t, [{ pool: 'stable', weight: 1 }, { pool: 'canary', weight: 1 }])
  app.goload.pool('canary').drain(app.goload.pool('canary').stats().backends[0].id)
  for (let i = 0; i < 4; i++) t.equal((await request(url)).body, 'Hello from stable')
  app.goload.pool('stable').drain(app.goload.pool('stable').stats().backends[0].id)
  const none = await request(url)
  t.equal(none.status, 503)
  t.match(JSON.parse(none.body), { code: 'FST_GOLOAD_NO_BACKEND' })
})

t.test('bad splits are refused at register, naming the key', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ pools: [{ pool: 'stable', weight: 0 }] }, /pools must give at least one pool a weight above 0, got 0/],
    [{ pools: [{ pool: 'stable', weight: -1 }] }, /pools\[0\]\.weight must be a whole number \(0 or more\), got -1/],
    [{ pools: [{ pool: 'stable', weight: 1 }, { pool: 'stable', weight: 2 }] }, /pools\[1\] names pool "stable" again/],
    [{ pools: [{ pool: 'stabel', weight: 1 }] }, /pools\[0\]\.pool: no pool named "stabel" is registered before this route \(did you mean stable\?\)/],
    [{ pools: [{ pool: 'stable', weight: 1 }], pool: 'stable' }, /pool and pools are two ways to say where a route sends: give one of them/],
    [{ pools: [{ pool: 'stable', weight: 1 }], timeout: 5 }, /timeout belongs to a pool: a route with pools \(a split\) takes only pools, name/],
    [{ pools: [] }, /pools must not be empty/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    const backend = await startBackend(t, hello('stable'))
    await app.register(goload, { name: 'stable', prefix: '/only', backends: [backend.url] })
    await t.rejects(async () => { await app.register(goload, { prefix: '/app', ...options as object } as never).ready() }, { code: 'FST_GOLOAD_INVALID_OPTION', message }, JSON.stringify(options))
    await app.close()
  }
})

t.test('split + sticky: a user on canary stays on canary (and its backend) for 50 requests, and moves when canary goes to 0', async (t) => {
  const app = Fastify()
  const sticky = { cookie: 'goload_web', secret: 'a shared secret of 32 characters' }
  for (const name of ['stable', 'canary']) {
    const backends = await Promise.all([1, 2].map(async (n) => ({ id: `${name}-${n}`, url: (await startBackend(t, hello(`${name}-${n}`))).url })))
    await app.register(goload, { name, prefix: `/only-${name}`, backends, sticky })
  }
  await app.register(goload, { prefix: '/app', pools: [{ pool: 'stable', weight: 1 }, { pool: 'canary', weight: 1 }] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/app`
  // Smooth 1/1 alternates: the first new user goes to stable, the second to canary.
  t.match((await request(url)).body, /stable/)
  const second = await request(url)
  t.match(second.body, /^Hello from canary-/)
  const cookie = second.headers['set-cookie']![0].split(';')[0]
  for (let i = 0; i < 50; i++) {
    const answer = await request(url, { headers: { cookie } })
    if (answer.body !== second.body || answer.headers['set-cookie'] !== undefined) {
      t.fail(`request ${i + 1} went to ${answer.body}`)
      return
    }
  }
  t.pass('50 requests on the same canary backend')
  // Its backend drained, the user stays on canary, on the other backend.
  const backend = second.body.replace('Hello from ', '')
  app.goload.pool('canary').drain(backend)
  const other = await request(url, { headers: { cookie } })
  t.match(other.body, /^Hello from canary-/)
  t.not(other.body, second.body)
  // Every canary backend drained: the user goes by weight, to stable.
  app.goload.pool('canary').drain(other.body.replace('Hello from ', ''))
  t.match((await request(url, { headers: { cookie } })).body, /^Hello from stable-/)
  app.goload.pool('canary').undrain(backend)
  t.equal((await request(url, { headers: { cookie } })).body, second.body, 'back with its backend')
  // Rolled back: canary's users let go of it, by weight, with a new cookie.
  app.goload.setWeights('/app', { canary: 0 })
  const moved = await request(url, { headers: { cookie } })
  t.match(moved.body, /^Hello from stable-/)
  t.match(moved.headers['set-cookie']?.[0], /^goload_web=/)
})

t.test('the admin API: GET /routes, PUT /routes/<id>/weights, its refusals', async (t) => {
  const { app, url } = await splitBalancer(t, [{ pool: 'stable', weight: 70 }, { pool: 'canary', weight: 30 }])
  const { port } = app.server.address() as { port: number }
  const admin = await startAdminOf(t, { app, port, url })
  await request(url)
  t.same(JSON.parse((await request(`${admin.url}/routes`)).body), {
    routes: [{ id: '/app', pools: [{ pool: 'stable', weight: 70, configured: 70, requests: 1 }, { pool: 'canary', weight: 30, configured: 30, requests: 0 }] }]
  })
  const put = (path: string, body: string) => request(`${admin.url}/routes/${path}`, { method: 'PUT', body, headers: { 'content-type': 'application/json' } })
  const changed = await put('%2Fapp/weights', '{"stable":1,"canary":1}')
  t.equal(changed.status, 200, 'the id URL-encoded')
  t.same(JSON.parse(changed.body).pools.map(({ weight }: { weight: number }) => weight), [1, 1])
  t.equal((await put('/app/weights', '{"canary":2}')).status, 200, 'or as it is')
  t.same(app.goload.weights('/app'), { stable: 1, canary: 2 })
  const notAnObject = await put('%2Fapp/weights', '[1, 2]')
  t.equal(notAnObject.status, 400)
  t.match(JSON.parse(notAnObject.body), { code: 'FST_GOLOAD_INVALID_OPTION', message: /weights must be an object of pool names to weights, like \{ "stable": 90 \}/ })
  t.match(JSON.parse((await put('%2Fapp/other', '{}')).body), { statusCode: 404, code: 'FST_GOLOAD_NO_ROUTE' })
  t.match(JSON.parse((await put('%2Fnone/weights', '{}')).body), { statusCode: 404, code: 'FST_GOLOAD_UNKNOWN_ROUTE' })
  const snapshot = JSON.parse((await request(`${admin.url}/stats`)).body) as { routes: unknown }
  t.match(snapshot.routes, [{ id: '/app', pools: [{ pool: 'stable', weight: 1 }, { pool: 'canary', weight: 2 }] }], 'the snapshots carry the routes')
})
