import Fastify from 'fastify'
import { expect, test } from 'tstyche'
import goload, { type BackendStats, type GoloadOptions, type GoloadPool, type PoolStats } from 'fastify-goload'

test('registers with backends as URLs or objects', async () => {
  const app = Fastify()
  await app.register(goload, { backends: ['http://10.0.0.1:3000', { url: 'http://10.0.0.2:3000', id: 'two', weight: 2 }] })
  await app.register(goload, { backends: ['http://10.0.0.3:3000'], prefix: '/api', name: 'api', strategy: 'round-robin', timeout: 5000, connections: 16, pipelining: 1 })
})

test('rejects options that are not the plugin\'s', () => {
  const app = Fastify()
  expect(app.register).type.not.toBeCallableWith(goload, {})
  expect(app.register).type.not.toBeCallableWith(goload, { backends: [42] })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], strategy: 'random' })
  expect(app.register).type.not.toBeCallableWith(goload, { backends: ['http://a:1'], timeout: '5s' })
})

test('decorates the instance with typed stats and pools', () => {
  const app = Fastify()
  expect(app.goload.stats()).type.toBe<PoolStats>()
  expect(app.goload.stats().strategy).type.toBe<'least-busy' | 'round-robin'>()
  expect(app.goload.stats().backends).type.toBe<BackendStats[]>()
  expect<BackendStats['pending']>().type.toBe<number>()
  expect(app.goload.pool('api')).type.toBe<GoloadPool>()
  expect(app.goload.pool('api').stats()).type.toBe<PoolStats>()
  expect(app.goload.names()).type.toBe<string[]>()
})

test('options are exported for users building them apart', () => {
  const options: GoloadOptions = { backends: ['http://a:1'] }
  expect(options.backends).type.toBe<Array<string | { url: string, id?: string, weight?: number }>>()
})
