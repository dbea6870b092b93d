// A client that pipelines HTTP/1.1 requests: goload takes them one at a time, as nginx and HAProxy do, so one
// connection never has more than one request at the backends; past 128 waiting, the rest are answered 503 at once.
// Raw bytes on a real socket, a real backend.
import t from 'tap'
import { maxWaiting } from '../lib/proxy/pipeline.js'
import { request } from './helpers/client.js'
import { connect, ResponseReader } from './helpers/raw.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

const get = (path: string): string => `GET ${path} HTTP/1.1\r\nHost: a\r\n\r\n`

t.test('300 requests pipelined in one write: one at a time at the backend, in order; past 128 waiting, 503 at once', async (t) => {
  const backend = await startBackend(t, (request, response) => {
    request.resume()
    setImmediate(() => response.end(request.url))
  })
  const { app, port } = await startBalancer(t, { backends: [backend.url] })
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  socket.write(Array.from({ length: 300 }, (_, i) => get(`/${i}`)).join(''))
  const answers = []
  for (let i = 0; i < 300; i++) answers.push(await reader.next(20_000))
  // The first is answered at once, 128 wait behind it; the other 171 came while those waited.
  const taken = 1 + maxWaiting
  t.same(answers.slice(0, taken).map(({ status, body }) => `${status} ${body.toString()}`), Array.from({ length: taken }, (_, i) => `200 /${i}`), 'the first 129 forwarded, answered in order')
  t.ok(answers.slice(taken).every(({ status, body }) => status === 503 && JSON.parse(body.toString()).code === 'FST_GOLOAD_PIPELINE_FULL'), 'the rest answered 503 FST_GOLOAD_PIPELINE_FULL')
  t.equal(backend.maxActive, 1, 'never more than one at the backend')
  t.equal(backend.received, taken)
  // The connection goes on: the next request is taken.
  socket.write(get('/after'))
  t.equal((await reader.next(5000)).body.toString(), '/after')
  await settled(app)
})

t.test('a client that leaves with requests waiting: the one being answered ends, the others never reach a backend', async (t) => {
  let release = (): void => {}
  const backend = await startBackend(t, (request, response) => {
    request.resume()
    if (request.url === '/held') release = () => response.end('held')
    else response.end(request.url)
  })
  const { app, port, url } = await startBalancer(t, { backends: [backend.url] })
  const socket = await connect(t, port)
  socket.write(get('/held') + get('/second') + get('/third'))
  await waitFor(() => backend.received === 1, 'the first request at the backend')
  socket.destroy()
  await waitFor(() => backend.active === 0, 'the held request to be ended upstream')
  release()
  await settled(app)
  t.equal(backend.received, 1, 'the waiting ones were never sent')
  t.equal((await request(url + '/next')).body, '/next', 'another client is answered')
})

t.test('separate connections are not held behind each other', async (t) => {
  const held: Array<() => void> = []
  const backend = await startBackend(t, (request, response) => {
    request.resume()
    if (request.url === '/held') held.push(() => response.end('held'))
    else response.end('ok')
  })
  const { app, port, url } = await startBalancer(t, { backends: [backend.url] })
  const first = new ResponseReader(await connect(t, port))
  first.socket.write(get('/held') + get('/behind'))
  await waitFor(() => held.length === 1, 'the held request')
  t.equal((await request(url + '/other')).body, 'ok', 'a request on another connection is answered while the first waits')
  t.equal(backend.received, 2, 'the pipelined one still waits')
  held[0]()
  t.equal((await first.next(5000)).body.toString(), 'held')
  t.equal((await first.next(5000)).body.toString(), 'ok')
  await settled(app)
})
