// The built goload command, in a process of its own, renews its certificates on SIGHUP while an HTTP/2 client goes
// on: the connection opened before the reload keeps its certificate and its session, a stream open across the
// reload finishes, and new handshakes get the new certificate. Real certificates (openssl), real node:http2 client.
import { once } from 'node:events'
import http2 from 'node:http2'
import t from 'tap'
import { spawnGoload, freePort, startDeadline } from './helpers/cli.js'
import { configFolder } from './helpers/config-files.js'
import { h2Connect, h2Request } from './helpers/h2-client.js'
import { startBackend, waitFor } from './helpers/servers.js'
import { TestPki } from './helpers/tls.js'

const pki = new TestPki()
t.teardown(() => { pki.close() })
const ca = pki.ca('goload test CA')

/** The certificate an HTTP/2 session was handshaken with. */
function fingerprintOf (session: http2.ClientHttp2Session): string {
  return (session.socket as unknown as { getPeerCertificate: () => { fingerprint256: string } }).getPeerCertificate().fingerprint256
}

t.test('SIGHUP re-reads the certificate files: new handshakes get the new certificate, an HTTP/2 connection opened before keeps working', async (t) => {
  // /slow is answered only once the test says so: its stream stays open across the reload.
  let arrived = (): void => {}
  const slowArrived = new Promise<void>((resolve) => { arrived = resolve })
  let answerSlow = (): void => {}
  const backend = await startBackend(t, (request, response) => {
    request.resume()
    if (request.url !== '/slow') {
      response.end('fast')
      return
    }
    answerSlow = () => { response.end('slow') }
    arrived()
  })
  const write = await configFolder(t)
  const first = pki.server(ca, { dns: ['a.example.com'] })
  await write('a.pem', first.cert)
  await write('a-key.pem', first.key)
  const port = await freePort()
  const file = await write('goload.yaml', `listeners:
  - port: ${port}
    host: 127.0.0.1
    tls:
      certificates: [{ cert: a.pem, key: a-key.pem }]
    routes: [{ pool: web }]
pools:
  web:
    backends: [${backend.url}]
`)
  const run = spawnGoload(t, ['--config', file])
  await waitFor(() => /goload listening/.test(run.stdout), 'goload to listen', startDeadline)

  const origin = `https://127.0.0.1:${port}`
  const trusted = { ca: ca.cert, servername: 'a.example.com' }
  const before = await h2Connect(t, origin, trusted)
  const old = fingerprintOf(before)
  t.equal((await h2Request(before, { ':path': '/before' })).body, 'fast')
  const across = h2Request(before, { ':path': '/slow' })
  await slowArrived

  const renewed = pki.server(ca, { dns: ['a.example.com', 'new.example.com'] })
  await write('a.pem', renewed.cert)
  await write('a-key.pem', renewed.key)
  run.child.kill('SIGHUP')
  await waitFor(() => /config reloaded/.test(run.stdout), 'the reload', startDeadline)

  const after = await h2Connect(t, origin, trusted)
  t.equal(after.alpnProtocol, 'h2')
  t.not(fingerprintOf(after), old, 'a new handshake gets the new certificate')
  t.match((after.socket as unknown as { getPeerCertificate: () => { subjectaltname: string } }).getPeerCertificate().subjectaltname, 'DNS:new.example.com')
  t.equal((await h2Request(after, { ':path': '/after' })).body, 'fast')

  t.equal((await h2Request(before, { ':path': '/still' })).body, 'fast', 'the connection from before the reload takes new streams')
  answerSlow()
  t.equal((await across).body, 'slow', 'a stream open across the reload finishes')
  t.notOk(before.destroyed || before.closed, 'one session throughout')
  t.equal(fingerprintOf(before), old, 'with the certificate it was opened with')

  const goaway = once(before, 'goaway')
  run.child.kill('SIGTERM')
  t.same(await run.exited, [0, null], 'the process exits cleanly')
  t.equal((await goaway)[0], http2.constants.NGHTTP2_NO_ERROR, 'having told the HTTP/2 client so with GOAWAY')
})
