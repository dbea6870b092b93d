// Backend TLS in a config file names files (a private key is never pasted into the config): paths relative to the
// file's folder, read at each load, so a client certificate rotated on disk is what new connections present after
// SIGHUP. The backends here are real mutual-TLS servers that answer with the client certificate's name.
import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import t, { type Test } from 'tap'
import { configFile, freePort, runMain, type MainRun } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { waitFor } from './helpers/servers.js'
import { startTlsBackend, TestPki } from './helpers/tls.js'

const pki = new TestPki()
t.teardown(() => { pki.close() })
const ca = pki.ca('backend-ca')
const [first, second] = [pki.client(ca, 'client-1'), pki.client(ca, 'client-2')]

/** A backend that asks every client for a certificate signed by `ca` and answers with that certificate's CN. */
async function mutualTlsBackend (t: Test): Promise<string> {
  const server = pki.server(ca, { ip: ['127.0.0.1'] })
  const backend = await startTlsBackend(t, { ...server, ca: ca.cert, requestCert: true, rejectUnauthorized: true }, (request, response) => {
    response.end(`client ${String((request.socket as TLSSocket).getPeerCertificate().subject.CN)}`)
  })
  return backend.url
}

async function reload (run: MainRun, count: number): Promise<void> {
  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => (run.logs().match(/config reloaded|reload failed/g) ?? []).length >= count, `reload ${count} to be done`)
}

for (const where of ['pool', 'backend'] as const) {
  t.test(`${where} tls: ca, cert and key are files beside the config; a client certificate rotated on disk is presented after SIGHUP`, async (t) => {
    const url = await mutualTlsBackend(t)
    const port = await freePort()
    const tls = '{ ca: certs/ca.pem, cert: certs/client.pem, key: certs/client-key.pem }'
    const pool = where === 'pool' ? `    backends: [${url}]\n    tls: ${tls}\n` : `    backends: [{ url: ${url}, tls: ${tls} }]\n`
    const file = await configFile(t, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: api }]\npools:\n  api:\n${pool}`)
    const certs = join(dirname(file), 'certs')
    await mkdir(certs)
    await writeFile(join(certs, 'ca.pem'), ca.cert)
    await writeFile(join(certs, 'client.pem'), first.cert)
    await writeFile(join(certs, 'client-key.pem'), first.key)
    const run = runMain(t, ['--config', file])
    await run.logged(/goload listening/, 'goload to listen')
    t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'client client-1')

    await writeFile(join(certs, 'client.pem'), second.cert)
    await writeFile(join(certs, 'client-key.pem'), second.key)
    t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'client client-1', 'read at load only: no reload, no change')
    await reload(run, 1)
    t.notMatch(run.logs(), /reload failed/)
    t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'client client-2', 'a new connection, with the rotated certificate')
  })
}

t.test('PEM text written in the file is still taken as it is', async (t) => {
  const url = await mutualTlsBackend(t)
  const port = await freePort()
  const indent = (pem: string) => pem.trim().split('\n').join('\n        ')
  const file = await configFile(t, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: api }]\npools:\n  api:\n    backends: [${url}]\n    tls:\n      ca: |\n        ${indent(ca.cert)}\n      cert: |\n        ${indent(first.cert)}\n      key: |\n        ${indent(first.key)}\n`)
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'client client-1')
})

t.test('--check: a file that cannot be read, or is not PEM of its kind, is an error at its key, never showing its text', async (t) => {
  const file = await configFile(t, 'listeners:\n  - port: 8080\n    routes: [{ pool: api }]\npools:\n  api:\n    backends:\n      - url: https://127.0.0.1:8443\n        tls: { ca: [ca.pem, missing.pem], key: client.pem, cert: client.pem }\n')
  await writeFile(join(dirname(file), 'ca.pem'), ca.cert)
  await writeFile(join(dirname(file), 'client.pem'), first.cert)
  const run = runMain(t, ['--check', '--config', file])
  t.equal(await run.code, 1)
  const folder = dirname(file)
  t.equal(run.stderr(), [
    `${file}:8: pools.api.backends[0].tls.ca[1]: cannot read ${join(folder, 'missing.pem')}: ENOENT: no such file or directory, open '${join(folder, 'missing.pem')}'`,
    `${file}:8: pools.api.backends[0].tls.key: ${join(folder, 'client.pem')} is not PEM: expected -----BEGIN ... PRIVATE KEY-----`,
    ''
  ].join('\n'))
})
