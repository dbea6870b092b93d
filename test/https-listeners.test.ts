// A listener with `tls` serves HTTPS: SNI picks the certificate whose names match (the first is the default),
// minVersion holds, requests reach a real backend told `X-Forwarded-Proto: https`, and SIGHUP swaps the
// certificates for new handshakes while a connection opened before goes on. Real handshakes throughout.
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import https from 'node:https'
import { dirname } from 'node:path'
import tls from 'node:tls'
import t, { type Test } from 'tap'
import { configFolder } from './helpers/config-files.js'
import { freePort, runMain } from './helpers/cli.js'
import { deadline, getOnSocket } from './helpers/raw.js'
import { startBackend } from './helpers/servers.js'
import { TestPki, type KeyPair } from './helpers/tls.js'
import { Listeners } from '../lib/cli/listeners.js'

const pki = new TestPki()
t.teardown(() => { pki.close() })
const ca = pki.ca('goload test CA')
const a = pki.server(ca, { dns: ['a.example.com'] })
const b = pki.server(ca, { dns: ['*.b.example.com'] })
// Made for clients, but a certificate all the same: one with a CN and no SAN at all.
const cn = pki.client(ca, 'cn.example.com')

/** Who a certificate is for, as the client sees it. */
function nameOf (certificate: tls.PeerCertificate): string {
  return certificate.subjectaltname ?? `CN=${certificate.subject.CN}`
}

/** A TLS connection to goload, once its handshake is done. */
async function handshake (t: Test, port: number, options: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
  const socket = tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ...options })
  // Ended with the test: a connection left open could hold goload's close for its closeTimeout.
  t.teardown(() => { socket.destroy() })
  await deadline(once(socket, 'secureConnect'), 10_000, 'the TLS handshake')
  return socket
}

async function presented (t: Test, port: number, servername?: string): Promise<string> {
  const socket = await handshake(t, port, servername === undefined ? {} : { servername })
  const name = nameOf(socket.getPeerCertificate())
  socket.destroy()
  return name
}

/** goload with a TLS listener (certificates a, b, cn, written next to the config) and a TLSv1.3-only one. */
async function start (t: Test) {
  const backend = await startBackend(t, (request, response) => {
    response.setHeader('content-type', 'application/json')
    response.end(JSON.stringify({ proto: request.headers['x-forwarded-proto'] }))
  })
  const write = await configFolder(t)
  const files = async (name: string, pair: KeyPair) => {
    await write(`${name}.pem`, pair.cert)
    await write(`${name}-key.pem`, pair.key)
  }
  await files('a', a)
  await files('b', b)
  await files('cn', cn)
  const [port, modern] = [await freePort(), await freePort()]
  const file = await write('goload.yaml', `listeners:
  - port: ${port}
    host: 127.0.0.1
    tls:
      certificates:
        - { cert: a.pem, key: a-key.pem }
        - { cert: b.pem, key: b-key.pem }
        - { cert: cn.pem, key: cn-key.pem }
    routes: [{ pool: web }]
  - port: ${modern}
    host: 127.0.0.1
    tls:
      certificates: [{ cert: a.pem, key: a-key.pem }]
      minVersion: TLSv1.3
    routes: [{ pool: web }]
pools:
  web:
    backends: [${backend.url}]
`)
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  return { port, modern, run, folder: dirname(file), files }
}

t.test('SNI picks the certificate whose names match; the first is the default', async (t) => {
  const { port } = await start(t)
  t.equal(await presented(t, port, 'a.example.com'), 'DNS:a.example.com')
  t.equal(await presented(t, port, 'A.Example.COM'), 'DNS:a.example.com', 'names are matched without case')
  t.equal(await presented(t, port, 'x.b.example.com'), 'DNS:*.b.example.com', 'a wildcard covers one label')
  t.equal(await presented(t, port, 'cn.example.com'), 'CN=cn.example.com', 'the CN counts when there is no SAN')
  t.equal(await presented(t, port, 'y.x.b.example.com'), 'DNS:a.example.com', 'a wildcard covers one label only: the default')
  t.equal(await presented(t, port, 'b.example.com'), 'DNS:a.example.com', 'a wildcard does not cover its own base: the default')
  t.equal(await presented(t, port, 'unknown.test'), 'DNS:a.example.com', 'an unknown name gets the default')
  t.equal(await presented(t, port), 'DNS:a.example.com', 'no SNI gets the default')
})

t.test('minVersion: TLSv1.2 by default, TLSv1.3 when asked; older protocols are refused', async (t) => {
  const { port, modern } = await start(t)
  const socket = await handshake(t, port, { maxVersion: 'TLSv1.2' })
  t.equal(socket.getProtocol(), 'TLSv1.2', 'TLSv1.2 is served by default')
  socket.destroy()
  t.equal((await handshake(t, port)).getProtocol(), 'TLSv1.3')
  const refused = (options: tls.ConnectionOptions) => new Promise<Error>((resolve, reject) => {
    const socket = tls.connect({ port: options.port, host: '127.0.0.1', rejectUnauthorized: false, ...options })
    socket.once('secureConnect', () => { socket.destroy(); reject(new Error('the handshake succeeded')) })
    socket.once('error', resolve)
  })
  t.ok(await refused({ port, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }), 'TLSv1.1 is refused by default')
  t.ok(await refused({ port: modern, maxVersion: 'TLSv1.2' }), 'TLSv1.2 is refused with minVersion: TLSv1.3')
  t.equal((await handshake(t, modern)).getProtocol(), 'TLSv1.3')
})

t.test('an https request reaches a real backend, told X-Forwarded-Proto: https', async (t) => {
  const { port } = await start(t)
  const answer = await new Promise<{ status: number, body: string }>((resolve, reject) => {
    // The CA is trusted and the name checked: the certificate is a real one for a.example.com.
    https.get({ host: '127.0.0.1', port, path: '/', servername: 'a.example.com', ca: ca.cert, agent: false }, (response) => {
      let body = ''
      response.setEncoding('utf8').on('data', (chunk: string) => { body += chunk })
      response.on('end', () => { resolve({ status: response.statusCode!, body }) })
    }).on('error', reject)
  })
  t.equal(answer.status, 200)
  t.same(JSON.parse(answer.body), { proto: 'https' })
})

t.test('SIGHUP re-reads the files: new handshakes get the new certificate, a connection opened before goes on', async (t) => {
  const { port, run, files } = await start(t)
  const before = await handshake(t, port, { servername: 'a.example.com' })
  const old = before.getPeerCertificate().fingerprint256
  t.match(await getOnSocket(before, '/', 'a.example.com'), /^HTTP\/1\.1 200 /)

  const renewed = pki.server(ca, { dns: ['a.example.com', 'new.example.com'] })
  await files('a', renewed)
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/config reloaded/, 'the reload')

  t.equal(await presented(t, port, 'a.example.com'), 'DNS:a.example.com, DNS:new.example.com', 'SNI: the new certificate')
  t.equal(await presented(t, port), 'DNS:a.example.com, DNS:new.example.com', 'no SNI: the new default')
  t.not((await handshake(t, port, { servername: 'a.example.com' })).getPeerCertificate().fingerprint256, old)
  t.match(await getOnSocket(before, '/', 'a.example.com'), /^HTTP\/1\.1 200 /, 'the connection from before the reload still serves')
  t.equal(before.getPeerCertificate().fingerprint256, old, 'with the certificate it was opened with')
})

t.test('a reload whose certificate no longer matches its key fails, and the running certificates stay', async (t) => {
  const { port, run, folder } = await start(t)
  await writeFile(`${folder}/a-key.pem`, b.key)
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/reload failed/, 'the reload to fail')
  t.match(run.logs(), /listeners\[0\]\.tls\.certificates\[0\]\.cert: .*a\.pem does not match its key listeners\[0\]\.tls\.certificates\[0\]\.key/)
  t.equal(await presented(t, port, 'a.example.com'), 'DNS:a.example.com')
})

/** A config with one TLS listener on 127.0.0.1 serving `certificates` (YAML list lines); its pool is never asked. */
function oneListener (port: number, certificates: string): string {
  return `listeners:
  - port: ${port}
    host: 127.0.0.1
    tls:
      certificates:
${certificates}
    routes: [{ pool: web }]
pools:
  web:
    backends: [http://127.0.0.1:3001]
`
}

t.test('certificate files that cannot be served are errors at their line, for --check too', async (t) => {
  const write = await configFolder(t)
  await write('a.pem', a.cert)
  await write('a-key.pem', a.key)
  await write('b-key.pem', b.key)
  await write('der.pem', 'not a certificate\n')
  await write('garbled.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')
  await write('garbled-key.pem', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')
  const file = await write('goload.yaml', oneListener(8443, `        - { cert: a.pem, key: a-key.pem }
        - { cert: a.pem, key: b-key.pem }
        - { cert: missing.pem, key: a-key.pem }
        - { cert: der.pem, key: a-key.pem }
        - { cert: a.pem, key: a.pem }
        - { cert: garbled.pem, key: a-key.pem }
        - { cert: a.pem, key: garbled-key.pem }`))
  const folder = dirname(file)
  const run = runMain(t, ['--check', '--config', file])
  t.equal(await run.code, 1)
  const lines = run.stderr().split('\n')
  t.equal(lines.slice(0, 4).join('\n'), [
    `${file}:7: listeners[0].tls.certificates[1].cert: ${folder}/a.pem does not match its key listeners[0].tls.certificates[1].key (${folder}/b-key.pem)`,
    `${file}:8: listeners[0].tls.certificates[2].cert: cannot read ${folder}/missing.pem: ENOENT: no such file or directory, open '${folder}/missing.pem'`,
    `${file}:9: listeners[0].tls.certificates[3].cert: ${folder}/der.pem is not PEM: expected -----BEGIN CERTIFICATE-----`,
    `${file}:10: listeners[0].tls.certificates[4].key: ${folder}/a.pem is not PEM: expected -----BEGIN ... PRIVATE KEY-----`
  ].join('\n'))
  // What follows "not a valid" is OpenSSL's own reason, which its versions word differently.
  t.match(lines[4], `${file}:11: listeners[0].tls.certificates[5].cert: ${folder}/garbled.pem is not a valid PEM certificate: `)
  t.match(lines[5], `${file}:12: listeners[0].tls.certificates[6].key: ${folder}/garbled-key.pem is not a valid PEM private key (unencrypted): `)
  t.equal(lines.length, 7, 'one line a problem')

  const good = await write('good.yaml', oneListener(8443, '        - { cert: a.pem, key: a-key.pem }'))
  const check = runMain(t, ['--check', '--config', good])
  t.equal(await check.code, 0)
  t.equal(check.stderr(), '', 'a certificate within its dates: no warning')
})

t.test('a certificate file gone between the check and the listening: the start fails naming it', async (t) => {
  const listeners = new Listeners({ level: 'silent' })
  t.teardown(() => listeners.close())
  const missing = '/nonexistent/goload-test.pem'
  const config = { listeners: [{ port: 0, host: '127.0.0.1', tls: { certificates: [{ cert: missing, key: missing }] }, routes: [{ path: '/', pool: 'web' }] }], pools: { web: { backends: ['http://127.0.0.1:3001'] } } }
  await t.rejects(listeners.apply(config), { code: 'FST_GOLOAD_LISTEN', message: `listeners[0].tls: cannot read ${missing}: ENOENT: no such file or directory, open '${missing}'` })
})

t.test('an expired certificate is served, with a warning at its line: by --check and at start', async (t) => {
  const old = pki.expired(ca, 'old.example.com')
  const write = await configFolder(t)
  await write('old.pem', old.cert)
  await write('old-key.pem', old.key)
  const port = await freePort()
  const file = await write('goload.yaml', oneListener(port, '        - { cert: old.pem, key: old-key.pem }'))
  const warning = `goload: warning: ${file}:6: listeners[0].tls.certificates[0].cert: ${dirname(file)}/old.pem expired on 2020-01-02T00:00:00.000Z: clients will refuse it\n`
  const check = runMain(t, ['--check', '--config', file])
  t.equal(await check.code, 0, '--check passes')
  t.equal(check.stderr(), warning)
  const serving = runMain(t, ['--config', file])
  await serving.logged(/goload listening/, 'goload to listen')
  t.equal(serving.stderr(), warning, 'said at start')
  t.equal(await presented(t, port), 'DNS:old.example.com', 'and served')
})
