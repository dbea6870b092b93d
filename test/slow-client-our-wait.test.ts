// The slow-client watch blames only the client: time a request spends waiting on our side (in the queue, or held
// back by a backend slow to read) does not count against clientTimeout; and a client that stalls after the
// backend's answer has started is cut, since a 408 can no longer be sent.
import t from 'tap'
import { request } from './helpers/client.js'
import { connect, deadline, ResponseReader } from './helpers/raw.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

t.test('a streamed body that waits in the queue longer than clientTimeout is not cut: the wait is ours', async (t) => {
  const held: Array<() => void> = []
  const bodies: number[] = []
  const backend = await startBackend(t, (req, res) => {
    if (req.url === '/hold') {
      req.resume()
      held.push(() => res.end('held'))
      return
    }
    let bytes = 0
    req.on('data', (chunk: Buffer) => { bytes += chunk.length })
    req.on('end', () => {
      bodies.push(bytes)
      res.end('uploaded')
    })
  })
  const { app, port, url } = await startBalancer(t, { backends: [backend.url], maxPending: 1, clientTimeout: 300 })
  const first = request(url + '/hold')
  await waitFor(() => held.length === 1, 'the first request to hold the only slot')

  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
  // More than bufferBody, so the request goes to the queue with the rest of its body still to come.
  socket.write(Buffer.alloc(70_000, 'a'))
  await waitFor(() => app.goload.stats().queued === 1, 'the upload to wait in the queue')
  // Three times clientTimeout in the queue, with the client sending nothing: it is waiting for us.
  await new Promise((resolve) => setTimeout(resolve, 900))
  t.equal(app.goload.stats().queued, 1, 'still queued, not cut')
  held[0]()
  await waitFor(() => backend.received === 2, 'the upload to reach the backend once the slot frees')
  socket.write(Buffer.alloc(30_000, 'b'))
  const answer = await reader.next(5000)
  t.equal(answer.status, 200)
  t.equal(answer.body.toString(), 'uploaded')
  t.same(bodies, [100_000], 'the backend got the whole body')
  t.equal((await first).status, 200)
  await settled(app)
})

t.test('a client that stalls its body after the backend has started answering is cut, not answered 408', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    req.on('error', () => {})
    req.resume()
    // Answers at once, before the body is in.
    res.writeHead(200, { 'content-type': 'text/plain' })
    res.write('started')
  })
  const { app, port } = await startBalancer(t, { backends: [backend.url], clientTimeout: 300 })
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
  socket.write(Buffer.alloc(70_000, 'a'))
  await deadline(new Promise((resolve) => socket.on('close', resolve)), 5000, 'the balancer to cut the stalled client')
  const received = reader.received.toString('latin1')
  t.match(received, /^HTTP\/1\.1 200 /, 'the backend\'s answer had started')
  t.notMatch(received, /408/, 'no 408 after a status line')
  await settled(app)
  t.equal(app.goload.stats().backends[0].failed, 0, 'a slow client is not the backend\'s failure')
})

t.test('a streamed body that keeps coming for longer than clientTimeout is not cut: every byte counts, not only the first bufferBody', async (t) => {
  const bodies: number[] = []
  const backend = await startBackend(t, (req, res) => {
    let bytes = 0
    req.on('data', (chunk: Buffer) => { bytes += chunk.length })
    req.on('end', () => {
      bodies.push(bytes)
      res.end('uploaded')
    })
  })
  const { port } = await startBalancer(t, { backends: [backend.url], clientTimeout: 300, clientMinRate: 0 })
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
  socket.write(Buffer.alloc(70_000, 'a'))
  // The other 30000 bytes over about 1.5 s, five times clientTimeout, never idle for more than 50 ms.
  for (let sent = 0; sent < 30_000; sent += 1000) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    socket.write(Buffer.alloc(1000, 'b'))
  }
  const answer = await reader.next(5000)
  t.equal(answer.status, 200)
  t.same(bodies, [100_000])
})
