// goload answers its own errors (FST_GOLOAD_*) itself; any other error on a proxied route, from the app's own hooks
// say, still goes to the app's error handler, as on the app's other routes.
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import goload from '../lib/index.js'
import { request } from './helpers/client.js'
import { startBackend } from './helpers/servers.js'

t.test('an error thrown by the app\'s own hook on a proxied request reaches the app\'s error handler', async (t) => {
  const backend = await startBackend(t)
  const app = Fastify()
  app.setErrorHandler((error: Error, _request, reply) => { reply.code(418).send({ handledBy: 'app', message: error.message }) })
  app.addHook('preHandler', async (request) => {
    if (request.headers['x-deny'] !== undefined) throw new Error('denied by the app')
  })
  await app.register(goload, { backends: [backend.url] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`

  const denied = await request(url + '/x', { headers: { 'x-deny': '1' } })
  t.equal(denied.status, 418)
  t.same(JSON.parse(denied.body), { handledBy: 'app', message: 'denied by the app' })
  t.equal(backend.received, 0, 'the backend never saw it')
  const allowed = await request(url + '/x')
  t.equal(allowed.status, 200, 'other requests are proxied')
})
