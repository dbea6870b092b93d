// Tracing costs nothing when off: the OpenTelemetry SDK (CommonJS, so in require's cache once loaded) is loaded by
// the first registration that asks for tracing, never by one without it. A file of its own: a fresh process.
import { createRequire } from 'node:module'
import Fastify from 'fastify'
import t from 'tap'
import goload from '../lib/index.js'
import { request } from './helpers/client.js'
import { startBackend, startBalancer } from './helpers/servers.js'

// @opentelemetry/api itself is prom-client's (metrics) too: the SDK's packages are the ones that must not load.
const loaded = () => Object.keys(createRequire(import.meta.url).cache).filter((file) => file.includes('/@opentelemetry/') && !file.includes('/@opentelemetry/api/'))

t.test('the OpenTelemetry SDK is loaded only once a registration has tracing', async (t) => {
  const backend = await startBackend(t)
  const { url } = await startBalancer(t, { backends: [backend.url] })
  t.equal((await request(url)).status, 200)
  t.same(loaded(), [], 'no OpenTelemetry SDK module after a request without tracing')
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(goload, { backends: [backend.url], tracing: { otlp: 'http://127.0.0.1:1' } })
  t.ok(loaded().some((file) => file.includes('/@opentelemetry/sdk-trace-base/')), 'loaded for the registration with tracing')
})
