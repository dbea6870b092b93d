import type { TLSSocket } from 'node:tls'
import Fastify from 'fastify'
import t from 'tap'
import goload from '../lib/index.js'
import { request } from './helpers/client.js'
import { capturedLogs } from './helpers/logs.js'
import { startBackend, startBalancer, waitFor, type Handler } from './helpers/servers.js'
import { startTlsBackend, TestPki } from './helpers/tls.js'

// Made for this run, never committed: a private CA and what it signs, and a second CA nobody trusts by default.
const pki = new TestPki()
const ca = pki.ca('goload test CA')
const otherCa = pki.ca('goload other CA')
const local = pki.server(ca, { dns: ['localhost'], ip: ['127.0.0.1'] })
const localByOther = pki.server(otherCa, { dns: ['localhost'], ip: ['127.0.0.1'] })
const internal = pki.server(ca, { dns: ['backend.internal'] })
const balancerCert = pki.client(ca, 'goload balancer')
pki.close()

interface Seen {
  /** The name the balancer sent in SNI. */
  servername: unknown
  /** The common name of the balancer's client certificate. */
  peer: unknown
}

/** Answers `name`, and records what the TLS connection it came on said: SNI name and client certificate. */
function answer (name: string, seen: Seen[] = []): Handler {
  return (request, response) => {
    const socket = request.socket as TLSSocket
    seen.push({ servername: socket.servername, peer: socket.getPeerCertificate().subject?.CN })
    request.resume()
    request.on('end', () => { response.end(`Hello from ${name}`) })
  }
}

t.test('a backend with a private CA\'s certificate answers when tls.ca trusts that CA', async (t) => {
  const backend = await startTlsBackend(t, local, answer('private'))
  const { url } = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert } })
  const reply = await request(url + '/x')
  t.equal(reply.status, 200)
  t.equal(reply.body, 'Hello from private')
  t.same(backend.versions, ['1.1'])
})

t.test('tls.ca as a Buffer in an array, beside another CA, works the same', async (t) => {
  const backend = await startTlsBackend(t, local, answer('private'))
  const { url } = await startBalancer(t, { backends: [backend.url], tls: { ca: [Buffer.from(otherCa.cert), Buffer.from(ca.cert)] } })
  t.equal((await request(url)).body, 'Hello from private')
})

t.test('without the CA the backend is not trusted: 502 FST_GOLOAD_BAD_GATEWAY, logged with the backend', async (t) => {
  const backend = await startTlsBackend(t, local, answer('private'))
  const logs = capturedLogs()
  const { app, url } = await startBalancer(t, { backends: [{ url: backend.url, id: 'private-one' }] }, { logger: logs.logger })
  const reply = await request(url)
  t.equal(reply.status, 502)
  t.equal(JSON.parse(reply.body).code, 'FST_GOLOAD_BAD_GATEWAY')
  t.same(backend.versions, [], 'the request never reached the backend')
  const entry = logs.lines.find((line) => line.backend === 'private-one')
  t.ok(entry, 'a warning names the backend')
  t.equal(entry?.level, 40)
  t.equal(entry?.code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'and says why: its certificate')
  t.equal(app.goload.stats().backends[0].failed, 1)
})

t.test('a CA other than the backend\'s is no better: 502', async (t) => {
  const backend = await startTlsBackend(t, localByOther, answer('other'))
  const { url } = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert } })
  t.equal((await request(url)).status, 502)
})

t.test('rejectUnauthorized: false accepts a certificate nobody vouches for', async (t) => {
  const backend = await startTlsBackend(t, local, answer('unchecked'))
  const { url } = await startBalancer(t, { backends: [backend.url], tls: { rejectUnauthorized: false } })
  const reply = await request(url)
  t.equal(reply.status, 200)
  t.equal(reply.body, 'Hello from unchecked')
})

t.test('servername: the name sent in SNI and checked in the certificate, whatever the URL says', async (t) => {
  const seen: Seen[] = []
  const backend = await startTlsBackend(t, internal, answer('internal', seen))
  const port = new URL(backend.url).port
  // 127.0.0.1 is not in the certificate, so without servername the backend is refused.
  const without = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert } })
  t.equal((await request(without.url)).status, 502, 'the certificate is for backend.internal, not 127.0.0.1')

  const byAddress = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert, servername: 'backend.internal' } })
  const reply = await request(byAddress.url)
  t.equal(reply.status, 200)
  t.equal(reply.body, 'Hello from internal')

  // By name, undici would send the URL's hostname (it reads it from the Host header): the option must win over it.
  const byName = await startBalancer(t, { backends: [`https://localhost:${port}`], tls: { ca: ca.cert, servername: 'backend.internal' } })
  t.equal((await request(byName.url)).status, 200)
  t.same(seen.map((entry) => entry.servername), ['backend.internal', 'backend.internal'], 'the backend got the name in SNI each time')
})

t.test('mutual TLS: a backend that asks for a client certificate', async (t) => {
  const seen: Seen[] = []
  const backend = await startTlsBackend(t, { ...local, ca: ca.cert, requestCert: true, rejectUnauthorized: true }, answer('mtls', seen))

  t.test('answers with tls.cert and tls.key', async (t) => {
    const { url } = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert, cert: balancerCert.cert, key: balancerCert.key } })
    const reply = await request(url)
    t.equal(reply.status, 200)
    t.equal(reply.body, 'Hello from mtls')
    t.equal(seen.at(-1)?.peer, 'goload balancer', 'the backend saw the balancer\'s certificate')
  })

  t.test('refuses the balancer without them: 502', async (t) => {
    const received = seen.length
    const { url } = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert } })
    const reply = await request(url)
    t.equal(reply.status, 502)
    t.equal(JSON.parse(reply.body).code, 'FST_GOLOAD_BAD_GATEWAY')
    t.equal(seen.length, received, 'the backend handled nothing')
  })
})

t.test('a backend\'s tls replaces the pool\'s field by field', async (t) => {
  const mtls = { ca: ca.cert, requestCert: true, rejectUnauthorized: true }
  // One backend with the private CA's certificate, one with the other CA's; both ask for the balancer's certificate.
  const first = await startTlsBackend(t, { ...local, ...mtls }, answer('first'))
  const second = await startTlsBackend(t, { ...localByOther, ...mtls }, answer('second'))
  const { url } = await startBalancer(t, {
    strategy: 'round-robin',
    backends: [first.url, { url: second.url, tls: { ca: otherCa.cert } }],
    tls: { ca: ca.cert, cert: balancerCert.cert, key: balancerCert.key }
  })
  const bodies = [(await request(url)).body, (await request(url)).body]
  t.same(bodies.sort(), ['Hello from first', 'Hello from second'], 'each backend trusted through its own CA, both with the pool\'s client certificate')
})

t.test('a backend added at run time connects with its own tls, or else the pool\'s', async (t) => {
  const plain = await startBackend(t)
  const own = await startTlsBackend(t, localByOther, answer('own'))
  const inherited = await startTlsBackend(t, local, answer('inherited'))
  const { app, url } = await startBalancer(t, { backends: [plain.url], tls: { ca: ca.cert } })
  app.goload.drain(plain.url)

  app.goload.add({ url: own.url, tls: { ca: otherCa.cert } })
  t.equal((await request(url)).body, 'Hello from own')

  app.goload.drain(own.url)
  app.goload.add(inherited.url)
  t.equal((await request(url)).body, 'Hello from inherited')
})

t.test('add() refuses a second backend at a URL with other tls settings', async (t) => {
  const backend = await startTlsBackend(t, local, answer('one'))
  const { app } = await startBalancer(t, { backends: [backend.url], tls: { ca: ca.cert } })
  t.throws(() => { app.goload.add({ url: backend.url, id: 'again', tls: { rejectUnauthorized: false } }) }, {
    code: 'FST_GOLOAD_INVALID_OPTION',
    message: /backend "again" has the URL of a backend in pool "default" with other tls settings/
  })
  t.throws(() => { app.goload.add({ url: backend.url, id: 'bad', tls: { ca: 'ca.pem' } }) }, {
    code: 'FST_GOLOAD_INVALID_OPTION',
    message: /backend\.tls\.ca must be PEM text .*, got "ca\.pem"/
  })
  app.goload.add({ url: backend.url, id: 'same', tls: { ca: ca.cert } })
  t.equal(app.goload.stats().backends.length, 2, 'the same settings at the same URL are fine')
})

t.test('health probes connect with the same tls: a private-CA backend is checked, found down, then healthy again', async (t) => {
  let up = false
  const backend = await startTlsBackend(t, { ...local, ca: ca.cert, requestCert: true, rejectUnauthorized: true }, (request, response) => {
    request.resume()
    response.statusCode = request.url === '/health' && !up ? 503 : 200
    response.end()
  })
  const { app } = await startBalancer(t, {
    backends: [backend.url],
    tls: { ca: ca.cert, cert: balancerCert.cert, key: balancerCert.key },
    healthCheck: { path: '/health', interval: 20, healthyAfter: 1, unhealthyAfter: 1 }
  })
  const healthy = () => app.goload.stats().backends[0].healthy
  await waitFor(() => !healthy(), 'the 503 probe to take the backend out')
  t.ok(backend.versions.length >= 1, 'the probe reached the backend over TLS')
  up = true
  await waitFor(healthy, 'a passing probe to bring it back')
  t.pass('healthy again')
})

t.test('a client key that is not its certificate\'s fails at register, naming the backend', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => {
    await app.register(goload, { backends: ['https://a:1', { url: 'https://b:1', tls: { key: local.key } }], tls: { cert: balancerCert.cert, key: balancerCert.key } })
  }, { code: 'FST_GOLOAD_INVALID_OPTION', message: /backends\[1\]\.tls cannot be used: .*key values mismatch/ })
})

t.test('a failed handshake sends the request on to another backend, even a POST, and counts against the backend', async (t) => {
  const untrusted = await startTlsBackend(t, localByOther, answer('untrusted'))
  const trusted = await startTlsBackend(t, local, answer('trusted'))
  const { app, url } = await startBalancer(t, {
    strategy: 'round-robin',
    backends: [{ url: untrusted.url, id: 'untrusted' }, { url: trusted.url, id: 'trusted' }],
    tls: { ca: ca.cert },
    passiveHealth: { maxFails: 1 }
  })
  const replies = [await request(url, { method: 'POST', body: 'one' }), await request(url, { method: 'POST', body: 'two' })]
  t.same(replies.map((reply) => [reply.status, reply.body]), [[200, 'Hello from trusted'], [200, 'Hello from trusted']])
  t.same(untrusted.versions, [], 'nothing reached the untrusted backend')
  const stats = app.goload.stats().backends.find((backend) => backend.id === 'untrusted')!
  t.equal(stats.failed, 1, 'round-robin tried it once in two requests, and then it was out')
  t.equal(stats.retried, 1)
  t.not(stats.ejectedUntil, null, 'passive health ejected it')
})

t.test('addresses found by DNS discovery connect with the pool\'s tls', async (t) => {
  const backend = await startTlsBackend(t, internal, answer('discovered'))
  const port = new URL(backend.url).port
  const { app, url } = await startBalancer(t, {
    backends: [{ url: `https://backend.internal:${port}`, id: 'api', resolve: { lookup: async () => ['127.0.0.1'] } }],
    tls: { ca: ca.cert, servername: 'backend.internal' }
  })
  t.same(app.goload.stats().backends.map((b) => b.url), [backend.url])
  const reply = await request(url)
  t.equal(reply.status, 200)
  t.equal(reply.body, 'Hello from discovered')
})
