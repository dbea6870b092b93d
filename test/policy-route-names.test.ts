// How the routes of issue 18's policies are named where no `name` was given: a split route by its host and prefix
// (what GET /routes and weights() take), a traced route's spans by its host and prefix (goload.route); and what an
// unknown route id answers. Real backends, a real OTLP/HTTP receiver.
import Fastify from 'fastify'
import t from 'tap'
import goload from '../lib/index.js'
import { request } from './helpers/client.js'
import { SERVER, startCollector } from './helpers/otlp.js'
import { startBackend, waitFor } from './helpers/servers.js'

t.test('a split route with a host and no name is known by its host and prefix; an unknown id names the ones there are', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  for (const name of ['stable', 'canary']) {
    const backend = await startBackend(t, (req, res) => { req.resume(); res.end(name) })
    await app.register(goload, { name, prefix: `/only-${name}`, backends: [backend.url] })
  }
  t.throws(() => app.goload.weights('a.test/app'), { code: 'FST_GOLOAD_UNKNOWN_ROUTE', message: /\(routes with pools: none\)/ }, 'before any split: none')
  await app.register(goload, { host: 'a.test', prefix: '/app', pools: [{ pool: 'stable', weight: 1 }, { pool: 'canary', weight: 0 }] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  t.same(app.goload.weights('a.test/app'), { stable: 1, canary: 0 })
  t.throws(() => app.goload.weights('/app'), { code: 'FST_GOLOAD_UNKNOWN_ROUTE', message: /"\/app" \(routes with pools: a\.test\/app\)/ })
  app.goload.setWeights('a.test/app', { stable: 0, canary: 1 })
  t.equal((await request(`http://127.0.0.1:${port}/app`, { headers: { host: 'a.test' } })).body, 'canary', 'the new weights, from the next request on')
})

t.test('a traced route with a host: its server span is named by method and prefix (http.route), goload.route adds the host', async (t) => {
  const collector = await startCollector(t)
  const backend = await startBackend(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(goload, { host: 'api.test', prefix: '/v1', backends: [backend.url], tracing: { otlp: collector.url, exportDelay: 10 } })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  t.equal((await request(`http://127.0.0.1:${port}/v1/users`, { headers: { host: 'api.test' } })).status, 200)
  await waitFor(() => collector.spans.some((each) => each.kind === SERVER), 'the server span')
  const server = collector.spans.find((each) => each.kind === SERVER)!
  t.equal(server.name, 'GET /v1', 'semantic conventions: {method} {http.route}')
  t.equal(server.attributes['http.route'], '/v1')
  t.equal(server.attributes['goload.route'], 'api.test/v1', 'which route of which host')
})

t.test('a mirror to a pool not registered before names the ones there are, or none', async (t) => {
  const backend = await startBackend(t)
  const first = Fastify()
  t.teardown(() => first.close())
  await t.rejects(async () => { await first.register(goload, { backends: [backend.url], mirror: { pool: 'next' } }).ready() }, { code: 'FST_GOLOAD_INVALID_OPTION', message: /mirror\.pool: no pool named "next" is registered before this route \(pools: none\)/ })
  const second = Fastify()
  t.teardown(() => second.close())
  await second.register(goload, { name: 'other', prefix: '/other', backends: [backend.url] })
  await t.rejects(async () => { await second.register(goload, { backends: [backend.url], mirror: { pool: 'next' } }).ready() }, { message: /\(pools: other\)/ })
})
