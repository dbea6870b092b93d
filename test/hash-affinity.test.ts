// strategy: 'hash' through HTTP: a key (header, cookie or client address) keeps reaching one backend while loads
// are even; a hot key spreads past its bound; requests without a key, and retries, still find a backend.
import type http from 'node:http'
import type { Test } from 'tap'
import t from 'tap'
import type { GoloadOptions } from '../lib/index.js'
import { request, type Answer } from './helpers/client.js'
import { deadUrl, hello, settled, startBackend, startBalancer, waitFor, type Backend } from './helpers/servers.js'

async function fiveBackends (t: Test): Promise<string[]> {
  const urls: string[] = []
  for (let i = 0; i < 5; i++) urls.push((await startBackend(t, hello(`b${i}`))).url)
  return urls
}

/** Sends `rounds` requests for each key, one at a time, and returns the backends that answered each key. */
async function backendsByKey (url: string, keys: string[], rounds: number, headers: (key: string) => http.OutgoingHttpHeaders): Promise<Map<string, Set<string>>> {
  const seen = new Map<string, Set<string>>(keys.map((key) => [key, new Set()]))
  for (let round = 0; round < rounds; round++) {
    for (const key of keys) {
      const answer = await request(url, { headers: headers(key) })
      seen.get(key)!.add(answer.body)
    }
  }
  return seen
}

function checkAffinity (t: Test, seen: Map<string, Set<string>>): void {
  const split = [...seen].filter(([, backends]) => backends.size !== 1)
  t.same(split, [], 'each key reached one backend, every time')
  const used = new Set([...seen.values()].flatMap((backends) => [...backends]))
  t.ok(used.size >= 3, `the keys spread over the backends (${[...used].sort().join(', ')})`)
}

const keys = Array.from({ length: 50 }, (_, i) => `user-${i}`)

t.test('hashOn a header: 50 keys × 5 requests, each key on one backend; requests without it are not kept together', async (t) => {
  const backends = await fiveBackends(t)
  const { app, url } = await startBalancer(t, { backends, strategy: 'hash', hashOn: { header: 'X-Session' } })
  checkAffinity(t, await backendsByKey(url, keys, 5, (key) => ({ 'x-session': key })))

  const keyless: string[] = []
  for (let i = 0; i < 10; i++) keyless.push((await request(url)).body)
  t.ok(new Set(keyless).size >= 3, `no header: 10 requests spread as least-busy takes turns (${keyless.join(', ')})`)
  const empty: string[] = []
  for (let i = 0; i < 10; i++) empty.push((await request(url, { headers: { 'x-session': '' } })).body)
  t.ok(new Set(empty).size >= 3, 'an empty header is no key either')
  await settled(app)
})

t.test('hashOn a cookie: the named cookie among others is the key', async (t) => {
  const backends = await fiveBackends(t)
  const { url } = await startBalancer(t, { backends, strategy: 'hash', hashOn: { cookie: 'sid' } })
  checkAffinity(t, await backendsByKey(url, keys.slice(0, 30), 3, (key) => ({ cookie: `theme=dark; sid=${key}; lang=en` })))
  const others: string[] = []
  for (let i = 0; i < 10; i++) others.push((await request(url, { headers: { cookie: `theme=dark; lang=${i}` } })).body)
  t.ok(new Set(others).size >= 3, 'a Cookie header without sid is no key: the requests spread')
  const none: string[] = []
  for (let i = 0; i < 10; i++) none.push((await request(url)).body)
  t.ok(new Set(none).size >= 3, 'nor is a request without a Cookie header')
})

t.test("hashOn 'ip' is request.ip: with trustProxy the X-Forwarded-For address, without it the peer's", async (t) => {
  const backends = await fiveBackends(t)
  const addresses = Array.from({ length: 30 }, (_, i) => `198.51.100.${i + 1}`)
  const trusting = await startBalancer(t, { backends, strategy: 'hash' }, { trustProxy: true })
  checkAffinity(t, await backendsByKey(trusting.url, addresses, 3, (address) => ({ 'x-forwarded-for': address })))

  const direct = await startBalancer(t, { backends, strategy: 'hash', hashOn: 'ip' })
  const seen = await backendsByKey(direct.url, addresses, 1, (address) => ({ 'x-forwarded-for': address }))
  t.equal(new Set([...seen.values()].flatMap((backends) => [...backends])).size, 1, 'untrusted X-Forwarded-For is no key: every request is from 127.0.0.1, on one backend')
})

/** Backends that hold every request until release() answers them all. */
async function holdingBackends (t: Test, n: number): Promise<{ backends: Backend[], release: () => void }> {
  const held: http.ServerResponse[] = []
  const backends: Backend[] = []
  for (let i = 0; i < n; i++) {
    backends.push(await startBackend(t, (request, response) => {
      request.resume()
      held.push(response)
    }))
  }
  return { backends, release: () => { for (const response of held.splice(0)) response.end('done') } }
}

t.test('a hot key: its backend holds at most ceil(1.25 × total / 5) requests, the rest walk on to the next ones', async (t) => {
  const { backends, release } = await holdingBackends(t, 5)
  const options: GoloadOptions = { backends: backends.map((b, i) => ({ url: b.url, id: `b${i}` })), strategy: 'hash', hashOn: { header: 'x-tenant' } }
  const { app, url } = await startBalancer(t, options)
  const answers: Array<Promise<Answer>> = []
  const pendings: number[][] = []
  for (let i = 1; i <= 20; i++) {
    answers.push(request(url, { headers: { 'x-tenant': 'big-customer' } }))
    await waitFor(() => backends.reduce((sum, b) => sum + b.active, 0) === i, `request ${i} at a backend`)
    pendings.push(app.goload.stats().backends.map((b) => b.pending))
  }
  pendings.forEach((pending, i) => {
    const bound = Math.ceil(1.25 * (i + 1) / 5)
    if (pending.some((count) => count > bound)) t.fail(`with ${i + 1} in flight: ${pending.join(', ')} (bound ${bound})`)
  })
  const [first] = pendings
  const owner = first.indexOf(1)
  const final = pendings.at(-1)!
  t.equal(final[owner], 5, 'the key\'s own backend is at its bound: ceil(1.25 × 20 / 5)')
  t.equal(final.reduce((a, b) => a + b, 0), 20)
  t.ok(final.filter((count) => count > 0).length >= 4, `the overflow went to the other backends (${final.join(', ')})`)

  // Without the key: the least busy backend, whatever the ring says.
  const idle = final.indexOf(Math.min(...final))
  answers.push(request(url))
  await waitFor(() => backends[idle].active === final[idle] + 1, 'a request without the key at the least busy backend')
  answers.push(request(url, { headers: { 'x-tenant': '' } }))
  await waitFor(() => backends[idle].active === final[idle] + 2, 'one with an empty key there too')
  release()
  for (const answer of await Promise.all(answers)) t.equal(answer.status, 200)
  await settled(app)

  // Loads even again: the key is back on its own backend.
  const again = request(url, { headers: { 'x-tenant': 'big-customer' } })
  await waitFor(() => backends[owner].active === 1, 'the next request of the key at its own backend')
  release()
  t.equal((await again).status, 200)
})

t.test('a key whose backend is down is retried on the next one on the ring', async (t) => {
  const live = [await startBackend(t, hello('a')), await startBackend(t, hello('b'))]
  const { app, url } = await startBalancer(t, {
    backends: [live[0].url, await deadUrl(), live[1].url],
    strategy: 'hash',
    hashOn: { header: 'x-session' },
    balanceFactor: 1,
    passiveHealth: false
  })
  const seen = await backendsByKey(url, keys.slice(0, 30), 2, (key) => ({ 'x-session': key }))
  t.ok([...seen.values()].every((backends) => backends.size === 1), 'every key answered, and by one backend each time')
  t.ok(app.goload.stats().backends[1].failed > 0, 'some keys were on the dead backend, and were retried')
  await settled(app)
})
