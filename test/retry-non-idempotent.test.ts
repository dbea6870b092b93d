// A port of nginx-tests proxy_non_idempotent.t: a POST (or PATCH…) that may have reached a backend is not sent to
// another one, unless retryNonIdempotent is on; one that cannot have reached it (connection refused) is. On top of
// nginx's rules, a streamed request body that was already read is never sent twice, whatever the method; a body
// small enough to be received whole before forwarding (bufferBody) is kept, and can be sent again, as nginx does.
// On a fresh pool every backend is level and the first one given goes first, so each test's first request meets
// the failing backend (see failingFirst).
import type http from 'node:http'
import t from 'tap'
import type { Test } from 'tap'
import type { GoloadOptions } from '../lib/index.js'
import { request } from './helpers/client.js'
import { deadUrl, echo, settled, startBackend, startBalancer } from './helpers/servers.js'

/** Reads the whole request body, then resets the connection without an answer. */
function readThenReset (bodies: string[]) {
  return (req: http.IncomingMessage) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      bodies.push(body)
      req.socket.destroy()
    })
  }
}

/** Resets the connection as soon as the request head arrives. */
function resetAtOnce (req: http.IncomingMessage) {
  req.socket.destroy()
}

/**
 * The pool of every test here: the failing backend first (on a fresh pool the first one given goes first), then one
 * that echoes what it gets. Passive health is off so that no ejection gets in the way.
 */
async function failingFirst (t: Test, failingUrl: string, options: Partial<GoloadOptions> = {}) {
  const okBodies: string[] = []
  const other = await startBackend(t, echo(okBodies))
  const { app, url } = await startBalancer(t, {
    backends: [{ url: failingUrl, id: 'failing' }, { url: other.url, id: 'other' }],
    passiveHealth: false,
    ...options
  })
  return { app, url, other, okBodies }
}

t.test('a POST whose body reached a resetting backend is not retried: 502, seen once there, never elsewhere', async (t) => {
  const resetBodies: string[] = []
  const resetting = await startBackend(t, readThenReset(resetBodies))
  const { app, url, other } = await failingFirst(t, resetting.url)
  const answer = await request(url + '/orders', { method: 'POST', body: 'one order', headers: { 'content-type': 'text/plain' } })
  t.equal(answer.status, 502)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_BAD_GATEWAY')
  await settled(app)
  t.equal(resetting.received, 1, 'the resetting backend saw it exactly once')
  t.same(resetBodies, ['one order'], 'with its whole body')
  t.equal(other.received, 0, 'the other backend never saw it')
  const [resetStats, otherStats] = app.goload.stats().backends
  t.equal(resetStats.failed, 1)
  t.equal(resetStats.retried, 0)
  t.equal(otherStats.served, 0)
})

t.test('a POST to a refused backend (nothing sent) is retried on the other one, body intact', async (t) => {
  const { app, url, other, okBodies } = await failingFirst(t, await deadUrl())
  const body = 'payload '.repeat(1000)
  const answer = await request(url + '/orders', { method: 'POST', body, headers: { 'content-type': 'text/plain' } })
  t.equal(answer.status, 200)
  t.equal(answer.body, `POST ${body}`, 'the other backend got the whole body')
  await settled(app)
  t.equal(other.received, 1)
  t.same(okBodies, [body])
  const [deadStats, otherStats] = app.goload.stats().backends
  t.equal(deadStats.failed, 1, 'the refused backend was tried first')
  t.equal(deadStats.retried, 1)
  t.equal(otherStats.served, 1)
})

t.test('a POST with a body of a type Fastify does not parse, refused, is retried too', async (t) => {
  const { app, url } = await failingFirst(t, await deadUrl())
  // No content type at all: the body is streamed through as it is.
  const answer = await request(url + '/orders', { method: 'POST', body: 'untyped' })
  t.equal(answer.status, 200)
  t.equal(answer.body, 'POST untyped')
  await settled(app)
  t.equal(app.goload.stats().backends[0].retried, 1)
})

t.test('without retryNonIdempotent, a POST without a body to a resetting backend is not retried', async (t) => {
  const resetting = await startBackend(t, resetAtOnce)
  const { app, url, other } = await failingFirst(t, resetting.url)
  const answer = await request(url + '/ping', { method: 'POST', headers: { 'content-length': '0' } })
  t.equal(answer.status, 502)
  await settled(app)
  t.equal(resetting.received, 1)
  t.equal(other.received, 0)
})

t.test('with retryNonIdempotent: true, a POST without a body to a resetting backend is retried', async (t) => {
  const resetting = await startBackend(t, resetAtOnce)
  const { app, url, other } = await failingFirst(t, resetting.url, { retryNonIdempotent: true })
  const answer = await request(url + '/ping', { method: 'POST', headers: { 'content-length': '0' } })
  t.equal(answer.status, 200)
  t.equal(answer.body, 'POST ')
  await settled(app)
  t.equal(resetting.received, 1, 'the resetting backend saw it once')
  t.equal(other.received, 1, 'and the other one answered it')
  const [resetStats, otherStats] = app.goload.stats().backends
  t.equal(resetStats.failed, 1)
  t.equal(resetStats.retried, 1)
  t.equal(otherStats.served, 1)
})

t.test('a PUT (idempotent) without a body to a resetting backend is retried', async (t) => {
  const resetting = await startBackend(t, resetAtOnce)
  const { app, url, other } = await failingFirst(t, resetting.url)
  const answer = await request(url + '/item/1', { method: 'PUT', headers: { 'content-length': '0' } })
  t.equal(answer.status, 200)
  t.equal(answer.body, 'PUT ')
  await settled(app)
  t.equal(resetting.received, 1)
  t.equal(other.received, 1)
  t.equal(app.goload.stats().backends[0].retried, 1)
})

t.test('a PUT whose streamed body a resetting backend already read is not retried: the body cannot be replayed', async (t) => {
  const resetBodies: string[] = []
  const resetting = await startBackend(t, readThenReset(resetBodies))
  const { app, url, other } = await failingFirst(t, resetting.url, { bufferBody: 0 })
  const answer = await request(url + '/item/1', { method: 'PUT', body: 'new state', headers: { 'content-type': 'text/plain' } })
  t.equal(answer.status, 502)
  t.equal(JSON.parse(answer.body).code, 'FST_GOLOAD_BAD_GATEWAY')
  await settled(app)
  t.same(resetBodies, ['new state'], 'the resetting backend read the body')
  t.equal(resetting.received, 1)
  t.equal(other.received, 0, 'the body was not sent again, to anyone')
  t.equal(app.goload.stats().backends[0].retried, 0)
})

t.test('a PUT whose buffered body a resetting backend already read is sent again, whole, to another backend', async (t) => {
  const resetBodies: string[] = []
  const resetting = await startBackend(t, readThenReset(resetBodies))
  const { app, url, other, okBodies } = await failingFirst(t, resetting.url)
  const answer = await request(url + '/item/1', { method: 'PUT', body: 'new state', headers: { 'content-type': 'text/plain' } })
  t.equal(answer.status, 200)
  t.equal(answer.body, 'PUT new state')
  await settled(app)
  t.same(resetBodies, ['new state'], 'the resetting backend read the body')
  t.same(okBodies, ['new state'], 'the other backend got the same body')
  t.equal(other.received, 1)
  t.equal(app.goload.stats().backends[0].retried, 1)
})

t.test('even with retryNonIdempotent: true, a streamed POST body already read is not sent twice', async (t) => {
  const resetBodies: string[] = []
  const resetting = await startBackend(t, readThenReset(resetBodies))
  const { app, url, other } = await failingFirst(t, resetting.url, { retryNonIdempotent: true, bufferBody: 0 })
  const answer = await request(url + '/orders', { method: 'POST', body: 'one order', headers: { 'content-type': 'text/plain' } })
  t.equal(answer.status, 502)
  await settled(app)
  t.equal(resetting.received, 1)
  t.equal(other.received, 0)
})
