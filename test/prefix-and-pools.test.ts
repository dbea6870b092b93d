import Fastify from 'fastify'
import t from 'tap'
import goload from '../lib/index.js'
import { request } from './helpers/client.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

t.test('a prefix proxies only its own subtree, beside the app routes', async (t) => {
  const backend = await startBackend(t, (req, res) => { req.resume(); res.end(`backend saw ${req.url}`) })
  const app = Fastify()
  app.get('/health', async () => 'app route')
  await app.register(goload, { backends: [backend.url], prefix: '/api/' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  t.equal((await request(url + '/api')).body, 'backend saw /api')
  t.equal((await request(url + '/api/')).body, 'backend saw /api/')
  t.equal((await request(url + '/api/users?id=1')).body, 'backend saw /api/users?id=1', 'the path is forwarded with its prefix')
  t.equal((await request(url + '/health')).body, 'app route')
  t.equal((await request(url + '/apix')).status, 404, 'a sibling path is not under the prefix')
  t.equal((await request(url + '/other')).status, 404)
  t.equal(backend.received, 3)
})

t.test('without a prefix, the app routes still win over the proxy', async (t) => {
  const backend = await startBackend(t, hello('b'))
  const app = Fastify()
  app.get('/health', async () => 'app route')
  await app.register(goload, { backends: [backend.url] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  t.equal((await request(url + '/health')).body, 'app route')
  t.equal((await request(url + '/')).body, 'Hello from b')
  t.equal((await request(url + '/anything/else')).body, 'Hello from b')
})

t.test('two registrations are two independent pools, each reachable by name', async (t) => {
  const users = await startBackend(t, hello('users'))
  const orders1 = await startBackend(t, hello('orders-1'))
  const orders2 = await startBackend(t, hello('orders-2'))
  const app = Fastify()
  await app.register(goload, { backends: [users.url], prefix: '/users' })
  await app.register(goload, { backends: [orders1.url, orders2.url], prefix: '/orders', name: 'orders', strategy: 'round-robin' })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`

  t.equal((await request(url + '/users/1')).body, 'Hello from users')
  const orders = [(await request(url + '/orders/1')).body, (await request(url + '/orders/2')).body]
  t.same(orders.sort(), ['Hello from orders-1', 'Hello from orders-2'])

  t.same(app.goload.names(), ['/users', 'orders'], 'a pool is named by its name option, else by its prefix')
  t.same(app.goload.pool('/users').stats().backends.map((b) => b.served), [1])
  t.same(app.goload.pool('orders').stats().backends.map((b) => b.served), [1, 1])
  t.equal(app.goload.pool('orders').stats().strategy, 'round-robin')
  t.same(app.goload.stats(), app.goload.pool('/users').stats(), 'stats() is the first pool')
  t.throws(() => app.goload.pool('nope'), { code: 'FST_GOLOAD_UNKNOWN_POOL', message: /no pool is named "nope"/ })
})

t.test('a pool closes its upstream connections with the app', async (t) => {
  const backend = await startBackend(t, hello('b'))
  let open = 0
  backend.server.on('connection', (socket) => { open++; socket.on('close', () => { open-- }) })
  const app = Fastify()
  await app.register(goload, { backends: [backend.url] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  await Promise.all([request(url), request(url), request(url)])
  t.ok(open > 0, 'keep-alive connections to the backend are open')
  await app.close()
  await waitFor(() => open === 0, 'the backend connections to close')
  t.equal(open, 0, 'none is left after close')
})
