import type http from 'node:http'
import t from 'tap'
import type { Test } from 'tap'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { settled, startBackend, startBalancer, waitFor, type Backend } from './helpers/servers.js'

interface Holding {
  backend: Backend
  /** Responses to /hold requests, kept open until the test ends them. */
  held: http.ServerResponse[]
  /** Requests other than /hold. */
  traffic: number
}

/** A backend that answers "Hello from <id>" at once, except /hold, which it keeps open until the test answers. */
async function holdingBackend (t: Test, id: string): Promise<Holding> {
  const holding: Holding = { backend: undefined as unknown as Backend, held: [], traffic: 0 }
  holding.backend = await startBackend(t, (req, res) => {
    req.resume()
    if (req.url === '/hold') {
      holding.held.push(res)
      return
    }
    holding.traffic++
    req.on('end', () => { res.end(`Hello from ${id}`) })
  })
  return holding
}

/** `count` GETs one after another; the bodies in order. */
async function bodies (url: string, count: number): Promise<string[]> {
  const seen: string[] = []
  for (let i = 0; i < count; i++) {
    const answer = await request(url)
    if (answer.status !== 200) throw new Error(`expected 200, got ${answer.status}: ${answer.body}`)
    seen.push(answer.body)
  }
  return seen
}

t.test('add(url): the new backend takes traffic at once and shows in stats', async (t) => {
  const a = await holdingBackend(t, 'a')
  const b = await holdingBackend(t, 'b')
  const { app, url } = await startBalancer(t, { backends: [a.backend.url] })
  t.same(new Set(await bodies(url, 4)), new Set(['Hello from a']))

  app.goload.add(b.backend.url)
  const stats = app.goload.stats().backends
  t.same(stats.map((s) => s.url), [a.backend.url, b.backend.url])
  t.match(stats[1], { id: b.backend.url, url: b.backend.url, weight: 1, pending: 0, served: 0, failed: 0, retried: 0, healthy: true, ejectedUntil: null, draining: false })
  const seen = await bodies(url, 10)
  t.ok(seen.filter((body) => body === 'Hello from b').length >= 4, `b takes its share: ${seen.join(', ')}`)

  // The object form, with an id and a weight.
  const c = await holdingBackend(t, 'c')
  app.goload.add({ url: c.backend.url, id: 'c', weight: 2 })
  t.match(app.goload.stats().backends[2], { id: 'c', url: c.backend.url, weight: 2 })
  await bodies(url, 8)
  t.ok(c.traffic > 0, 'the backend added with an id takes traffic')
  await settled(app)
})

t.test('add() of a backend already in the pool throws FST_GOLOAD_INVALID_OPTION; a bad URL too', async (t) => {
  const a = await holdingBackend(t, 'a')
  const b = await holdingBackend(t, 'b')
  const { app } = await startBalancer(t, { backends: [a.backend.url, { url: b.backend.url, id: 'b' }] })
  t.throws(() => { app.goload.add(a.backend.url) }, { code: 'FST_GOLOAD_INVALID_OPTION' }, 'same URL')
  t.throws(() => { app.goload.add({ url: a.backend.url }) }, { code: 'FST_GOLOAD_INVALID_OPTION' }, 'same URL, object form')
  t.throws(() => { app.goload.add({ url: 'http://127.0.0.1:1', id: 'b' }) }, { code: 'FST_GOLOAD_INVALID_OPTION' }, 'same id')
  t.throws(() => { app.goload.add('ftp://127.0.0.1:1') }, { code: 'FST_GOLOAD_INVALID_OPTION' }, 'not http(s)')
  t.equal(app.goload.stats().backends.length, 2, 'nothing was added')
  await settled(app)
})

t.test('an unknown backend throws FST_GOLOAD_UNKNOWN_BACKEND', async (t) => {
  const a = await holdingBackend(t, 'a')
  const { app } = await startBalancer(t, { backends: [a.backend.url] })
  t.throws(() => { app.goload.drain('http://127.0.0.1:1') }, { code: 'FST_GOLOAD_UNKNOWN_BACKEND' })
  t.throws(() => { app.goload.undrain('nope') }, { code: 'FST_GOLOAD_UNKNOWN_BACKEND' })
  await t.rejects(async () => { await app.goload.remove('nope') }, { code: 'FST_GOLOAD_UNKNOWN_BACKEND' })
  t.throws(() => { app.goload.pool('default').drain('nope') }, { code: 'FST_GOLOAD_UNKNOWN_BACKEND' })
  t.equal(app.goload.stats().backends[0].draining, false, 'nothing else changed')
  await settled(app)
})

t.test('drain(id): no new requests, the one in flight finishes; undrain brings it back', async (t) => {
  const a = await holdingBackend(t, 'a')
  const b = await holdingBackend(t, 'b')
  const { app, url } = await startBalancer(t, { backends: [{ url: a.backend.url, id: 'a' }, { url: b.backend.url, id: 'b' }] })

  // Held open at a: least-busy sends it to the first of two idle backends.
  const held = request(`${url}/hold`)
  await waitFor(() => a.held.length === 1, 'a to hold a request')

  app.goload.drain('a')
  t.match(app.goload.stats().backends[0], { id: 'a', draining: true, pending: 1 })
  const aBefore = a.traffic
  t.same(new Set(await bodies(url, 10)), new Set(['Hello from b']), 'every new request goes to b')
  t.equal(a.traffic, aBefore, 'none reaches the drained backend')

  a.held[0].end('held done')
  const answer = await held
  t.equal(answer.status, 200, 'the request in flight finishes')
  t.equal(answer.body, 'held done')
  await settled(app)
  t.match(app.goload.stats().backends[0], { draining: true, pending: 0 }, 'drained stays drained')
  t.same(new Set(await bodies(url, 4)), new Set(['Hello from b']))

  app.goload.undrain('a')
  t.equal(app.goload.stats().backends[0].draining, false)
  const seen = await bodies(url, 6)
  t.ok(seen.includes('Hello from a'), `a takes traffic again: ${seen.join(', ')}`)
  await settled(app)
})

t.test('remove(url) resolves only after the request in flight ended; then the backend is gone', async (t) => {
  const a = await holdingBackend(t, 'a')
  const b = await holdingBackend(t, 'b')
  const { app, url } = await startBalancer(t, { backends: [a.backend.url, b.backend.url] })

  const held = request(`${url}/hold`)
  await waitFor(() => a.held.length === 1, 'a to hold a request')

  const order: string[] = []
  const removed = app.goload.remove(a.backend.url).then(() => { order.push('removed') })
  t.match(app.goload.stats().backends[0], { url: a.backend.url, draining: true, pending: 1 }, 'draining while it has a request')
  t.same(new Set(await bodies(url, 10)), new Set(['Hello from b']), 'no new request goes to it')
  t.same(order, [], 'remove() has not resolved while a request is in flight')
  t.equal(app.goload.stats().backends.length, 2, 'still listed while removing')

  const heldResponse = a.held[0]
  heldResponse.once('finish', () => { order.push('backend answered') })
  heldResponse.end('held done')
  const answer = await held
  t.equal(answer.status, 200, 'the request in flight finishes')
  t.equal(answer.body, 'held done')
  await deadline(removed, 5000, 'remove() to resolve')
  t.same(order, ['backend answered', 'removed'], 'resolved after the request ended')
  t.same(app.goload.stats().backends.map((s) => s.url), [b.backend.url], 'gone from stats')
  t.throws(() => { app.goload.drain(a.backend.url) }, { code: 'FST_GOLOAD_UNKNOWN_BACKEND' }, 'and unknown from now on')

  // An idle backend is removed at once, and may then be added again.
  app.goload.add(a.backend.url)
  await app.goload.remove(a.backend.url)
  t.equal(app.goload.stats().backends.length, 1)
  app.goload.add(a.backend.url)
  const seen = await bodies(url, 6)
  t.ok(seen.includes('Hello from a'), 'added again after removal, it takes traffic')
  await settled(app)
})

t.test('remove() called twice while a request is in flight: both promises resolve once it has ended', async (t) => {
  const a = await holdingBackend(t, 'a')
  const b = await holdingBackend(t, 'b')
  const { app, url } = await startBalancer(t, { backends: [a.backend.url, b.backend.url] })
  const held = request(`${url}/hold`)
  await waitFor(() => a.held.length === 1, 'a to hold a request')

  const resolved: string[] = []
  const first = app.goload.remove(a.backend.url).then(() => { resolved.push('first') })
  const second = app.goload.remove(a.backend.url).then(() => { resolved.push('second') })
  a.held[0].end('held done')
  t.equal((await held).status, 200)
  // Not `await Promise.all(...)`: a promise that never resolves should fail the test, not hang it.
  await waitFor(() => resolved.length === 2, 'both remove() promises to resolve')
  await Promise.all([first, second])
  t.same(resolved.sort(), ['first', 'second'], 'neither is left waiting forever')
  t.same(app.goload.stats().backends.map((s) => s.url), [b.backend.url])
  await settled(app)
})

t.test('undrain() while remove() is in progress does not bring the backend back: once removed it gets nothing', async (t) => {
  const a = await holdingBackend(t, 'a')
  const b = await holdingBackend(t, 'b')
  const { app, url } = await startBalancer(t, { backends: [a.backend.url, b.backend.url] })
  const held = request(`${url}/hold`)
  await waitFor(() => a.held.length === 1, 'a to hold a request')

  const removed = app.goload.remove(a.backend.url)
  app.goload.undrain(a.backend.url)
  t.equal(app.goload.stats().backends[0].draining, true, 'a removal in progress stays draining')
  t.same(new Set(await bodies(url, 4)), new Set(['Hello from b']), 'no new request goes to it')
  a.held[0].end('held done')
  t.equal((await held).status, 200)
  await deadline(removed, 5000, 'remove() to resolve')
  t.same(app.goload.stats().backends.map((s) => s.url), [b.backend.url], 'gone from stats')
  const before = a.traffic
  t.same(new Set(await bodies(url, 6)), new Set(['Hello from b']), 'every request goes to b')
  t.equal(a.traffic, before, 'the removed backend receives nothing')
  await settled(app)
})

t.test('with every backend drained or removed, new requests answer 503 FST_GOLOAD_NO_BACKEND', async (t) => {
  const a = await holdingBackend(t, 'a')
  const b = await holdingBackend(t, 'b')
  const { app, url } = await startBalancer(t, { backends: [{ url: a.backend.url, id: 'a' }, { url: b.backend.url, id: 'b' }] })

  app.goload.drain('a')
  app.goload.drain('b')
  let answer = await request(url)
  t.equal(answer.status, 503)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_NO_BACKEND')
  t.equal(app.goload.stats().queued, 0, 'not queued')

  app.goload.undrain('b')
  t.same(await bodies(url, 2), ['Hello from b', 'Hello from b'])

  // One drained, the other removed.
  await app.goload.remove('b')
  answer = await request(url)
  t.equal(answer.status, 503)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_NO_BACKEND')

  await app.goload.remove('a')
  t.same(app.goload.stats().backends, [], 'the pool is empty')
  answer = await request(url)
  t.equal(answer.status, 503)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_NO_BACKEND')

  app.goload.add(b.backend.url)
  t.same(await bodies(url, 2), ['Hello from b', 'Hello from b'], 'an empty pool takes traffic again once a backend is added')
  await settled(app)
})

t.test('the named-pool form: pool(name).add / drain / undrain / remove act on that pool only', async (t) => {
  const users = await holdingBackend(t, 'users')
  const orders1 = await holdingBackend(t, 'orders1')
  const orders2 = await holdingBackend(t, 'orders2')
  const { app, url } = await startBalancer(t, { prefix: '/orders', name: 'orders', backends: [orders1.backend.url] }, {}, async (app) => {
    await app.register((await import('../lib/index.js')).default, { prefix: '/users', backends: [users.backend.url] })
  })
  t.same(app.goload.names(), ['/users', 'orders'])

  const orders = app.goload.pool('orders')
  orders.add({ url: orders2.backend.url, id: 'o2' })
  t.same(orders.stats().backends.map((s) => s.id), [orders1.backend.url, 'o2'])
  t.same(app.goload.stats().backends.map((s) => s.url), [users.backend.url], 'the first pool is untouched')
  t.throws(() => { app.goload.drain('o2') }, { code: 'FST_GOLOAD_UNKNOWN_BACKEND' }, 'app.goload.* acts on the first pool')

  const seen = new Set<string>()
  for (let i = 0; i < 6; i++) seen.add((await request(`${url}/orders/x`)).body)
  t.same(seen, new Set(['Hello from orders1', 'Hello from orders2']), 'the added backend takes the pool\'s traffic')
  t.equal((await request(`${url}/users/x`)).body, 'Hello from users')

  orders.drain(orders1.backend.url)
  const before = orders1.traffic
  for (let i = 0; i < 4; i++) t.equal((await request(`${url}/orders/x`)).body, 'Hello from orders2')
  t.equal(orders1.traffic, before, 'the drained one gets nothing')
  orders.undrain(orders1.backend.url)
  await orders.remove('o2')
  t.same(orders.stats().backends.map((s) => s.url), [orders1.backend.url])
  for (let i = 0; i < 3; i++) t.equal((await request(`${url}/orders/x`)).body, 'Hello from orders1')
  await settled(app)
})
