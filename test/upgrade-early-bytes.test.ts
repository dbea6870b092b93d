// What a client sends before its backend has switched protocols is held back, not read into memory without end: a
// client streaming 32 MiB at a backend that answers its upgrade late costs goload at most earlyBytesLimit, other
// clients are answered meanwhile, and every byte reaches the backend once it has switched.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import type { Socket } from 'node:net'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { request } from './helpers/client.js'
import { connect, deadline, ResponseReader } from './helpers/raw.js'
import { closeServer, settled, startBalancer, waitFor } from './helpers/servers.js'
import { earlyBytesLimit } from '../lib/proxy/tunnel.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const MiB = 1024 * 1024

t.test('32 MiB sent before a late 101: goload holds at most the cap, others are served, the bytes all arrive intact after', async (t) => {
  const size = 32 * MiB
  const source = Buffer.alloc(size)
  for (let i = 0; i < size; i += 4) source.writeUInt32LE(i, i)
  const sent = createHash('sha256').update(source).digest('hex')

  // The backend answers plain requests at once, and an upgrade once it is told to; it counts what it gets before
  // and after its 101, and hashes the whole.
  let upgraded: Socket | undefined
  let switched = false
  let before = 0
  let after = 0
  const hash = createHash('sha256')
  const server = http.createServer((_request, response) => { response.end('plain') })
  server.on('upgrade', (_request, socket: Socket, head: Buffer) => {
    upgraded = socket
    socket.on('error', () => {})
    socket.on('end', () => { socket.end() })
    before += head.length
    hash.update(head)
    socket.on('data', (chunk: Buffer) => {
      hash.update(chunk)
      if (switched) after += chunk.length
      else before += chunk.length
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    upgraded?.destroy()
    await closeServer(server)
  })
  const balancer = await startBalancer(t, { backends: [`http://127.0.0.1:${(server.address() as { port: number }).port}`] })

  gc()
  const baseline = process.memoryUsage().arrayBuffers
  let most = 0
  const sampler = setInterval(() => { most = Math.max(most, process.memoryUsage().arrayBuffers - baseline) }, 10)
  t.teardown(() => { clearInterval(sampler) })

  const client = await connect(t, balancer.port)
  const reader = new ResponseReader(client)
  client.write('GET /stream HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x-stream\r\n\r\n')
  let flushed = 0
  const streaming = (async () => {
    for (let at = 0; at < size; at += 64 * 1024) {
      const piece = source.subarray(at, at + 64 * 1024)
      if (!client.write(piece, () => { flushed += piece.length })) await once(client, 'drain')
    }
  })()
  await waitFor(() => upgraded !== undefined, 'the upgrade to reach the backend')
  // Well past the cap: what goload did not read waits in the kernel's buffers, and the client's writes stall there.
  await waitFor(() => flushed >= earlyBytesLimit + MiB, 'the client to have sent 1 MiB more than the cap')
  const started = performance.now()
  t.equal((await request(balancer.url + '/plain')).body, 'plain', 'another client is answered meanwhile')
  t.ok(performance.now() - started < 1000, `promptly (${Math.round(performance.now() - started)} ms)`)
  // A late answer, but a real one: a second for goload to read what it would.
  await new Promise((resolve) => setTimeout(resolve, 1000))
  clearInterval(sampler)
  t.ok(flushed < size, `the client was held back (${(flushed / MiB).toFixed(1)} MiB of 32 sent before the 101)`)
  t.ok(most < 4 * MiB, `goload held ${(most / MiB).toFixed(2)} MiB more than before (the cap is ${earlyBytesLimit / 1024} KiB)`)
  t.equal(before, 0, 'nothing went to the backend before its 101')

  switched = true
  upgraded!.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x-stream\r\n\r\n')
  t.equal((await reader.next(5000)).status, 101)
  await deadline(streaming, 10_000, 'the client to send the rest')
  await waitFor(() => after === size, 'every byte at the backend', 10_000)
  t.equal(hash.digest('hex'), sent, 'in order and intact')
  client.destroy()
  await settled(balancer.app)
})

t.test('a client that half-closes or resets while its upgrade waits: the attempt is stopped and the count released', async (t) => {
  const waiting: Socket[] = []
  const server = http.createServer()
  server.on('upgrade', (_request, socket: Socket) => {
    waiting.push(socket)
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(async () => {
    for (const socket of waiting) socket.destroy()
    await closeServer(server)
  })
  // The handshake's timeout bounds a client that is no longer read (past the cap) and left without a word.
  const balancer = await startBalancer(t, { backends: [`http://127.0.0.1:${(server.address() as { port: number }).port}`], timeout: 1500 })
  const head = 'GET /w HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x-wait\r\n\r\n'
  for (const [how, bytes] of [['half-closes', 1000], ['resets', 1000], ['resets', 4 * earlyBytesLimit]] as const) {
    const client = await connect(t, balancer.port)
    client.on('error', () => {})
    client.write(head)
    client.write(Buffer.alloc(bytes))
    const arrived = waiting.length
    await waitFor(() => waiting.length > arrived && balancer.app.goload.stats().backends[0].pending === 1, 'the upgrade to wait at the backend')
    const attempt = waiting[arrived]
    // The backend's side of the connection goload closes: it ends (the server allows half-open).
    const stopped = once(attempt, 'end')
    if (how === 'half-closes') client.end()
    else client.resetAndDestroy()
    const left = performance.now()
    await settled(balancer.app)
    await deadline(stopped, 5000, 'the attempt to be stopped')
    t.pass(`a client that ${how} after ${bytes} bytes: released in ${Math.round(performance.now() - left)} ms`)
  }
})
