// Each registration is a route: host (exact, wildcard, RegExp) first, as nginx picks a server, then the longest
// prefix, then method and header conditions, then the order given. Real backends, real requests with a Host header.
import type http from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import t from 'tap'
import type { Test } from 'tap'
import goload, { type GoloadOptions, type SharedPoolOptions } from '../lib/index.js'
import { rawRequest, request } from './helpers/client.js'
import { settled, startBackend, waitFor } from './helpers/servers.js'

/** A backend that answers its name, the target it was sent and the Host it saw, as JSON. */
async function named (t: Test, name: string) {
  return await startBackend(t, (req: http.IncomingMessage, res: http.ServerResponse) => {
    req.resume()
    res.end(JSON.stringify({ name, url: req.url, host: req.headers.host }))
  })
}

async function app (t: Test, registrations: Array<GoloadOptions | SharedPoolOptions>, setup?: (app: FastifyInstance) => void) {
  const app = Fastify()
  setup?.(app)
  for (const options of registrations) await app.register(goload, options)
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

async function ask (url: string, path: string, headers: Record<string, string> = {}, method = 'GET') {
  const answer = await request(url + path, { headers, method })
  return { status: answer.status, ...(answer.status === 200 ? JSON.parse(answer.body) : {}) }
}

t.test('host first: exact beats the longest wildcard, which beats a RegExp, which beats no host; the port is ignored', async (t) => {
  const [exact, wildcard, longer, regexp, any] = await Promise.all(['exact', 'wildcard', 'longer', 'regexp', 'any'].map((name) => named(t, name)))
  const { url } = await app(t, [
    { backends: [any.url] },
    { host: /^api\d\.example\.com$/, backends: [regexp.url] },
    { host: '*.example.com', backends: [wildcard.url] },
    { host: '*.eu.example.com', backends: [longer.url] },
    { host: 'api.example.com', backends: [exact.url] }
  ])
  t.equal((await ask(url, '/', { host: 'api.example.com:8080' })).name, 'exact')
  t.equal((await ask(url, '/', { host: 'API.Example.com.' })).name, 'exact', 'case and a trailing dot do not matter')
  t.equal((await ask(url, '/', { host: 'api2.example.com' })).name, 'wildcard', 'a wildcard beats a RegExp')
  t.equal((await ask(url, '/', { host: 'x.eu.example.com' })).name, 'longer', 'the longest wildcard wins')
  t.equal((await ask(url, '/', { host: 'a.b.example.com' })).name, 'wildcard', 'a wildcard takes several labels')
  t.equal((await ask(url, '/', { host: 'example.com' })).name, 'any', 'but not none')
  t.equal((await ask(url, '/', { host: 'other.test' })).name, 'any')
})

t.test('host first even when Fastify matched a longer prefix: a.test/api goes to the a.test route at /', async (t) => {
  const [hosted, api] = await Promise.all([named(t, 'hosted'), named(t, 'api')])
  const { url } = await app(t, [{ host: 'a.test', backends: [hosted.url] }, { prefix: '/api', backends: [api.url] }])
  t.equal((await ask(url, '/api/users', { host: 'a.test' })).name, 'hosted')
  t.equal((await ask(url, '/api/users', { host: 'b.test' })).name, 'api')
  t.equal((await ask(url, '/other', { host: 'b.test' })).status, 404, 'no route: the app\'s own 404')
})

t.test('rewritePrefix replaces the matched prefix, byte for byte, query kept', async (t) => {
  const [root, v2] = await Promise.all([named(t, 'root'), named(t, 'v2')])
  const { url, app: server } = await app(t, [
    { prefix: '/api', rewritePrefix: '/', backends: [root.url] },
    { prefix: '/old', rewritePrefix: '/v2', backends: [v2.url] }
  ])
  t.equal((await ask(url, '/api/users?x=1')).url, '/users?x=1')
  t.equal((await ask(url, '/api')).url, '/')
  t.equal((await ask(url, '/api?x=1')).url, '/?x=1')
  t.equal((await ask(url, '/old/users?x=1')).url, '/v2/users?x=1')
  t.equal((await ask(url, '/old')).url, '/v2')
  const port = (server.server.address() as AddressInfo).port
  const encoded = await rawRequest(port, 'GET /%61pi/a%2Fb?q=%7E HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.match(encoded, /"url":"\/a%2Fb\?q=%7E"/, 'an encoded prefix is cut where it ends in the raw target; the rest is kept as sent')
})

t.test('methods and headers: a canary pool for x-canary: 1, a write pool for POST, the rest to the main pool', async (t) => {
  const [main, canary, writes] = await Promise.all([named(t, 'main'), named(t, 'canary'), named(t, 'writes')])
  const { url } = await app(t, [
    { backends: [main.url] },
    { headers: { 'X-Canary': '1' }, backends: [canary.url] },
    { methods: ['post', 'PUT'], backends: [writes.url] }
  ])
  t.equal((await ask(url, '/')).name, 'main')
  t.equal((await ask(url, '/', { 'x-canary': '1' })).name, 'canary')
  t.equal((await ask(url, '/', { 'x-canary': '2' })).name, 'main', 'a string is compared whole')
  t.equal((await ask(url, '/', {}, 'POST')).name, 'writes')
  t.equal((await ask(url, '/', {}, 'DELETE')).name, 'main')
})

t.test('preserveHost: the backend sees the client\'s Host; by default its own host:port', async (t) => {
  const [kept, own] = await Promise.all([named(t, 'kept'), named(t, 'own')])
  const { url } = await app(t, [
    { prefix: '/kept', preserveHost: true, backends: [kept.url] },
    { prefix: '/own', backends: [own.url] }
  ])
  t.equal((await ask(url, '/kept', { host: 'shop.example.com' })).host, 'shop.example.com')
  t.equal((await ask(url, '/own', { host: 'shop.example.com' })).host, new URL(own.url).host)
})

t.test('two routes sharing one pool share its counts: a slow request through one makes the other pick the idle backend', async (t) => {
  const held: Array<() => void> = []
  const slowFirst = await startBackend(t, (req, res) => {
    req.resume()
    if (req.url === '/a/slow') held.push(() => res.end(JSON.stringify({ name: 'first' })))
    else res.end(JSON.stringify({ name: 'first' }))
  })
  const second = await named(t, 'second')
  const { url, app: server } = await app(t, [
    { prefix: '/a', name: 'shared', backends: [slowFirst.url, second.url] },
    { prefix: '/b', pool: 'shared' }
  ])
  const slow = request(url + '/a/slow')
  await waitFor(() => held.length === 1, 'the slow request at the first backend')
  t.same(server.goload.pool('shared').stats().backends.map((b) => b.pending), [1, 0])
  t.equal((await ask(url, '/b/x')).name, 'second', 'route B sees route A\'s request in flight')
  held[0]()
  t.equal((await slow).status, 200)
  await settled(server)
  t.same(server.goload.names(), ['shared'], 'one pool')
})

t.test('bad routes fail at register, naming the problem', async (t) => {
  const backend = await named(t, 'any')
  const cases: Array<[Array<GoloadOptions | SharedPoolOptions>, RegExp]> = [
    [[{ prefix: '/x', backends: [backend.url] }, { prefix: '/x', backends: [backend.url], name: 'other' }], /same host, prefix, methods and headers/],
    [[{ pool: 'nope' }], /pool: no pool named "nope"/],
    [[{ backends: [backend.url] }, { pool: 'default', backends: [backend.url] } as unknown as SharedPoolOptions], /backends belongs to the pool/],
    [[{ host: 'bad host!', backends: [backend.url] }], /host must be a host name/],
    [[{ rewritePrefix: 'v2', backends: [backend.url] }], /rewritePrefix must be a path/],
    [[{ methods: [], backends: [backend.url] }], /methods must not be empty/],
    [[{ methods: ['get', 'g e t'], backends: [backend.url] }], /methods\[1\] must be an HTTP method name, got "g e t"/],
    [[{ headers: { 'x-a': 5 as unknown as string }, backends: [backend.url] }, { headers: { 'x-b': {} as unknown as string }, backends: [backend.url], name: 'b' }], /headers.x-b must be a string or a RegExp, got an object/],
    [[{ headers: ['x-a'] as unknown as Record<string, string>, backends: [backend.url] }], /headers must be an object/],
    [[{ preserveHost: 'yes' as unknown as boolean, backends: [backend.url] }], /preserveHost must be a boolean/],
    [[{ pool: '' }], /pool must be the name of a pool/],
    [[{ host: 'a.test', backends: [backend.url] }, { host: 'b.test', backends: [backend.url] }], null as unknown as RegExp]
  ]
  for (const [registrations, expected] of cases) {
    const server = Fastify()
    let error: Error | undefined
    try {
      for (const options of registrations) await server.register(goload, options)
      await server.ready()
    } catch (caught) {
      error = caught as Error
    }
    await server.close()
    if (expected === null) t.equal(error, undefined, 'two routes at / on two hosts get names of their own')
    else t.match(error?.message, expected)
  }
})
