// A CommonJS consumer (.cts, module NodeNext): the package's "require" entry and its types.
import Fastify = require('fastify')
import goload = require('fastify-goload')
import { expect, test } from 'tstyche'

test('require(\'fastify-goload\') is the plugin, and .default and .goload name it', async () => {
  const app = Fastify()
  await app.register(goload, { backends: ['http://10.0.0.1:3000'] })
  await app.register(goload.default, { backends: ['http://10.0.0.2:3000'], prefix: '/a', name: 'a' })
  await app.register(goload.goload, { backends: ['http://10.0.0.3:3000'], prefix: '/b', name: 'b' })
  expect(goload.goload).type.toBe(goload.default)
  expect(app.register).type.not.toBeCallableWith(goload, { backends: [42] })
})

test('the types come with the CommonJS entry', () => {
  const app = Fastify()
  expect(app.goload.stats()).type.toBe<goload.PoolStats>()
  // Optional beside discovery (GoloadOptions needs one of the two).
  expect<goload.GoloadOptions['backends']>().type.toBe<Array<string | goload.BackendOptions> | undefined>()
  expect(app.goload.pool('api')).type.toBe<goload.GoloadPool>()
  expect<goload.GoloadOptions['tls']>().type.toBe<goload.TlsOptions | undefined>()
  expect<goload.TlsOptions['ca']>().type.toBe<goload.Pem | goload.Pem[] | undefined>()
  expect<goload.RouteOptions['rateLimit']>().type.toBe<goload.RateLimitOptions | undefined>()
  expect<goload.GoloadOptions['hashOn']>().type.toBe<goload.HashOn | undefined>()
})
