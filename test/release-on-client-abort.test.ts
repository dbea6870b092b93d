import net from 'node:net'
import t from 'tap'
import { deadline } from './helpers/raw.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

function connect (port: number): Promise<net.Socket> {
  return deadline(new Promise((resolve) => { const socket = net.connect(port, '127.0.0.1', () => resolve(socket)) }), 5000, 'a connection to the balancer')
}

t.test('client aborts mid-request body: released, the backend sees the upload cut, nothing counts as failed', async (t) => {
  let backendRequestClosed = false
  const backend = await startBackend(t, (req) => {
    req.on('error', () => {})
    req.resume()
    req.on('close', () => { backendRequestClosed = true })
  })
  const { app, port } = await startBalancer(t, { backends: [backend.url] })
  const socket = await connect(port)
  socket.write('POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n')
  // Past bufferBody (64 KiB), so the body streams to the backend as it comes.
  socket.write(Buffer.alloc(70_000))
  await waitFor(() => backend.received === 1, 'the backend to receive the request')
  t.same(app.goload.stats().backends[0].pending, 1)
  socket.destroy()
  await settled(app)
  await waitFor(() => backendRequestClosed, 'the upstream request to be cut')
  t.equal(app.goload.stats().backends[0].failed, 0, 'a client abort is not a backend failure')
})

t.test('client aborts while the backend is still working: released, and the upstream request is aborted', async (t) => {
  let backendResponseClosed = false
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.on('close', () => { backendResponseClosed = true })
    // never answers
  })
  const { app, port } = await startBalancer(t, { backends: [backend.url] })
  const socket = await connect(port)
  socket.write('GET /hang HTTP/1.1\r\nHost: x\r\n\r\n')
  await waitFor(() => backend.received === 1, 'the backend to receive the request')
  t.same(app.goload.stats().backends[0].pending, 1)
  socket.destroy()
  await settled(app)
  await waitFor(() => backendResponseClosed, 'the upstream connection to be closed')
  t.pass('the backend saw its client go away')
  t.equal(app.goload.stats().backends[0].failed, 0)
})

t.test('client aborts mid-response: released, and the upstream stream is torn down', async (t) => {
  let backendResponseClosed = false
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    res.write(Buffer.alloc(16 * 1024))
    res.on('close', () => { backendResponseClosed = true })
    // keeps the response open
  })
  const { app, port } = await startBalancer(t, { backends: [backend.url] })
  const socket = await connect(port)
  const firstBytes = new Promise((resolve) => socket.once('data', resolve))
  socket.write('GET /stream HTTP/1.1\r\nHost: x\r\n\r\n')
  await deadline(firstBytes, 10_000, 'the first bytes of the streamed response')
  t.same(app.goload.stats().backends[0].pending, 1, 'still pending while the body streams')
  socket.destroy()
  await settled(app)
  await waitFor(() => backendResponseClosed, 'the upstream response to be closed')
  t.pass('the backend saw the stream end')
  t.equal(app.goload.stats().backends[0].served, 1, 'it had answered')
})
