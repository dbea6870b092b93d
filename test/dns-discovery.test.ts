import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import t from 'tap'
import { request } from './helpers/client.js'
import { closeServer, settled, startBalancer, waitFor } from './helpers/servers.js'

/** A backend on a given loopback address; 127.0.0.0/8 is all loopback on Linux. */
async function listenOn (t: Test, host: string, port: number, handler: http.RequestListener): Promise<http.Server> {
  const server = http.createServer(handler)
  await new Promise<void>((resolve) => server.listen(port, host, resolve))
  t.teardown(() => closeServer(server))
  return server
}

t.test('addresses that appear in DNS are added, and addresses that go are drained without dropping their requests', async (t) => {
  let release: (() => void) | undefined
  const first = await listenOn(t, '127.0.0.1', 0, (req, res) => {
    req.resume()
    if (req.url === '/hold') release = () => res.end('first, held')
    else res.end('first')
  })
  const { port } = first.address() as AddressInfo
  let releaseSecond: (() => void) | undefined
  await listenOn(t, '127.0.0.2', port, (req, res) => {
    req.resume()
    if (req.url === '/hold') releaseSecond = () => res.end('second, held')
    else res.end('second')
  })

  let answer = ['127.0.0.1']
  let lookups = 0
  const lookup = async (hostname: string) => {
    lookups++
    if (hostname !== 'api.internal') throw new Error(`unexpected hostname ${hostname}`)
    return answer
  }
  const { app, url } = await startBalancer(t, { backends: [{ url: `http://api.internal:${port}`, id: 'api', resolve: { interval: 30, lookup } }] })
  const ids = () => app.goload.stats().backends.map((b) => b.id)

  t.same(ids(), ['api#127.0.0.1'], 'resolved before the app is ready')
  t.equal((await request(url)).body, 'first')

  answer = ['127.0.0.1', '127.0.0.2']
  await waitFor(() => ids().length === 2, 'the second address to be added')
  const bodies = new Set<string>()
  for (let i = 0; i < 6; i++) bodies.add((await request(url)).body)
  t.same([...bodies].sort(), ['first', 'second'], 'both addresses take traffic')

  // A request in flight at the first address while DNS stops returning it. Both backends hold /hold, so with one
  // held at the second, least-busy sends the next to the first.
  const heldFirst = request(url + '/hold')
  await waitFor(() => release !== undefined || releaseSecond !== undefined, 'a /hold request to land')
  const heldSecond = release === undefined ? heldFirst : undefined
  const held = heldSecond === undefined ? heldFirst : request(url + '/hold')
  await waitFor(() => release !== undefined, 'a /hold request to land on the first address')
  releaseSecond?.()
  if (heldSecond !== undefined) t.equal((await heldSecond).body, 'second, held')

  answer = ['127.0.0.2']
  await waitFor(() => app.goload.stats().backends.find((b) => b.id === 'api#127.0.0.1')?.draining === true, 'the gone address to be drained')
  t.same(ids(), ['api#127.0.0.1', 'api#127.0.0.2'], 'still listed while its request is in flight')
  t.equal((await request(url)).body, 'second', 'new requests go to the address that remains')
  release!()
  t.equal((await held).body, 'first, held', 'the request in flight was not dropped')
  await waitFor(() => ids().length === 1, 'the drained address to leave the pool', 2000)
  t.same(ids(), ['api#127.0.0.2'])
  t.ok(lookups >= 3)
  await settled(app)
})

t.test('a failed lookup keeps the addresses already known', async (t) => {
  const server = await listenOn(t, '127.0.0.1', 0, (req, res) => { req.resume(); res.end('still here') })
  const { port } = server.address() as AddressInfo
  let fail = false
  let failedLookups = 0
  const lookup = async () => {
    if (fail) {
      failedLookups++
      throw Object.assign(new Error('SERVFAIL'), { code: 'ESERVFAIL' })
    }
    return ['127.0.0.1']
  }
  const { app, url } = await startBalancer(t, { backends: [{ url: `http://api.internal:${port}`, resolve: { interval: 20, lookup } }] })
  fail = true
  await waitFor(() => failedLookups >= 3, 'a few failed lookups')
  t.equal(app.goload.stats().backends.length, 1)
  t.equal((await request(url)).body, 'still here')
  await settled(app)
})

t.test('the system resolver is used by default', async (t) => {
  const server = await listenOn(t, '127.0.0.1', 0, (req, res) => { req.resume(); res.end('via localhost') })
  const { port } = server.address() as AddressInfo
  const { app, url } = await startBalancer(t, { backends: [{ url: `http://localhost:${port}`, id: 'local', resolve: { interval: 60_000 } }] })
  t.ok(app.goload.stats().backends.some((b) => b.id === 'local#127.0.0.1'), 'localhost resolved to 127.0.0.1')
  // ::1, when localhost also resolves to it, has no listener here: retries send the request on to 127.0.0.1.
  t.equal((await request(url)).body, 'via localhost')
  await settled(app)
})

t.test('resolve is read at register only: add() refuses it, naming it', async (t) => {
  const server = await listenOn(t, '127.0.0.1', 0, (req, res) => { req.resume(); res.end() })
  const { port } = server.address() as AddressInfo
  const { app } = await startBalancer(t, { backends: [`http://127.0.0.1:${port}`] })
  t.throws(() => app.goload.add({ url: `http://api.internal:${port}`, resolve: { interval: 1000 } }), {
    code: 'FST_GOLOAD_INVALID_OPTION',
    message: /backend\.resolve is read at register only/
  })
  t.equal(app.goload.stats().backends.length, 1, 'nothing was added')
})
