// gRPC through the built goload command, in a process of its own, as an operator runs it: grpc-js clients on an h2c
// listener (`http2: true`) and on a TLS listener (h2 by ALPN), grpc-js servers at h2c:// backends probed with
// grpc.health.v1. Each call is balanced on its own, streams pass whole, and goload's own failure is a gRPC status.
import t from 'tap'
import { spawnGoload, freePort, startDeadline } from './helpers/cli.js'
import { configFolder } from './helpers/config-files.js'
import { Echo, grpc, startGrpcBackend, unary, type Note } from './helpers/grpc.js'
import { deadUrl, waitFor } from './helpers/servers.js'
import { TestPki } from './helpers/tls.js'

const pki = new TestPki()
t.teardown(() => { pki.close() })
const ca = pki.ca('goload test CA')

t.test('the goload command balances gRPC calls over h2c and TLS listeners, and answers its own failures as gRPC statuses', async (t) => {
  const backends = await Promise.all(['a', 'b', 'c'].map(async (name) => await startGrpcBackend(t, name)))
  const dead = (await deadUrl()).replace('http:', 'h2c:')
  const certificate = pki.server(ca, { dns: ['grpc.example.com'] })
  const write = await configFolder(t)
  await write('grpc.pem', certificate.cert)
  await write('grpc-key.pem', certificate.key)
  const [h2cPort, tlsPort] = [await freePort(), await freePort()]
  const routes = `
    routes:
      - { path: /goload.test.Echo/Unary, headers: { x-pool: gone }, pool: gone }
      - { pool: echo }`
  const file = await write('goload.yaml', `listeners:
  - port: ${h2cPort}
    host: 127.0.0.1
    http2: true${routes}
  - port: ${tlsPort}
    host: 127.0.0.1
    tls:
      certificates: [{ cert: grpc.pem, key: grpc-key.pem }]${routes}
pools:
  echo:
    backends: [${backends.map(({ url }) => url).join(', ')}]
    healthCheck: { grpc: true, interval: 100, healthyAfter: 1, unhealthyAfter: 1 }
  gone:
    backends: [${dead}]
    retries: 0
`)
  const run = spawnGoload(t, ['--config', file])
  await waitFor(() => /goload listening/.test(run.stdout) || run.child.exitCode !== null, 'goload to listen', startDeadline)
  t.equal(run.child.exitCode, null, run.stderr)

  const overH2c = new Echo(`127.0.0.1:${h2cPort}`, grpc.credentials.createInsecure())
  const overTls = new Echo(`127.0.0.1:${tlsPort}`, grpc.credentials.createSsl(Buffer.from(ca.cert)), { 'grpc.ssl_target_name_override': 'grpc.example.com' })
  t.teardown(() => { overH2c.close(); overTls.close() })

  for (const [name, client] of [['h2c', overH2c], ['TLS', overTls]] as const) {
    // One channel, so one HTTP/2 connection: the calls still spread, each balanced on its own.
    const served = await Promise.all(Array.from({ length: 30 }, async (_, i) => (await unary(client, { text: String(i) })).reply))
    t.ok(served.every(({ text }, i) => text === String(i)), `${name}: every call answered with its own message`)
    const by = new Set(served.map(({ backend }) => backend))
    t.same([...by].sort(), ['a', 'b', 'c'], `${name}: one connection's calls reached all three backends`)

    const stream = (client as unknown as Record<string, (note: Note) => grpc.ClientReadableStream<Note>>).ServerStream({ text: 'n', count: 0 })
    const status = await new Promise<grpc.StatusObject>((resolve) => { stream.on('data', () => {}).on('status', resolve) })
    t.equal(status.code, grpc.status.OK, `${name}: a server stream ends with its status (trailers passed)`)

    const metadata = new grpc.Metadata()
    metadata.set('x-pool', 'gone')
    const refused = await unary(client, { text: 'x' }, metadata).then(() => undefined, (error: grpc.ServiceError) => error)
    t.equal(refused?.code, grpc.status.UNAVAILABLE, `${name}: a backend that refuses is UNAVAILABLE to the client, not an HTTP 502`)
    t.match(refused?.details, /FST_GOLOAD_/, `${name}: the message names goload's code`)
  }

  // A backend that says NOT_SERVING leaves the rotation, as an HTTP health check would take it out.
  backends[2].health.setStatus('', 'NOT_SERVING')
  await waitFor(() => run.stdout.split('\n').some((line) => line.includes(backends[2].url) && line.includes('failed its health checks')), 'the health check to take c out', 10_000)
  const after = await Promise.all(Array.from({ length: 20 }, async () => (await unary(overH2c, { text: 'y' })).reply.backend))
  t.notOk(after.includes('c'), 'no call goes to a backend that is NOT_SERVING')

  run.child.kill('SIGTERM')
  const [code] = await run.exited
  t.equal(code, 0, 'SIGTERM ends it cleanly')
})
