import type http from 'node:http'
import t, { type Test } from 'tap'
import { connect, ResponseReader, type RawResponse } from './helpers/raw.js'
import { pendingCounts, settled, startBackend, startBalancer, waitFor, type Backend } from './helpers/servers.js'

interface Upload { bytes: number, ended: boolean, aborted: boolean }

/** A backend that reads each request body, answers 'ok' at its end, and records how each upload went. */
async function uploadBackend (t: Test): Promise<Backend & { uploads: Upload[] }> {
  const uploads: Upload[] = []
  const backend = await startBackend(t, (req: http.IncomingMessage, res: http.ServerResponse) => {
    const upload: Upload = { bytes: 0, ended: false, aborted: false }
    uploads.push(upload)
    req.on('error', () => {})
    req.on('data', (chunk: Buffer) => { upload.bytes += chunk.length })
    req.on('end', () => { upload.ended = true; res.end('ok') })
    req.on('close', () => { if (!req.complete) upload.aborted = true })
  })
  return Object.assign(backend, { uploads })
}

function isClientTimeout (t: Test, answer: RawResponse): void {
  t.equal(answer.status, 408, `answered 408: ${JSON.stringify(answer.head)}`)
  let code: unknown
  try { code = JSON.parse(answer.body.toString()).code } catch { code = `not JSON: ${JSON.stringify(answer.body.toString())}` }
  t.equal(code, 'FST_GOLOAD_CLIENT_TIMEOUT', 'the JSON body carries code FST_GOLOAD_CLIENT_TIMEOUT')
}

t.test('clientTimeout: a small body that stalls after 10 of its 100 bytes gets 408 FST_GOLOAD_CLIENT_TIMEOUT; no backend ever saw it, pending 0', async (t) => {
  const backend = await uploadBackend(t)
  const { app, port } = await startBalancer(t, { backends: [backend.url], clientTimeout: 500 })
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  const started = Date.now()
  socket.write('POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n' + 'a'.repeat(10))
  const answer = await reader.next(5000)
  const took = Date.now() - started
  isClientTimeout(t, answer)
  t.ok(took >= 400, `not before clientTimeout (answered after ${took} ms)`)
  t.ok(took < 3000, `within a few seconds of clientTimeout (answered after ${took} ms)`)
  await settled(app)
  t.same(pendingCounts(app), [0])
  t.equal(backend.received, 0, 'a body under bufferBody that never completed never reached the backend')
  t.equal(app.goload.stats().backends[0].failed, 0, 'a slow client is not a backend failure')
})

t.test('clientTimeout: a streamed body (200000 bytes > bufferBody) that stalls gets 408; the backend got part of it and saw its request aborted, pending 0', async (t) => {
  const backend = await uploadBackend(t)
  const { app, port } = await startBalancer(t, { backends: [backend.url], clientTimeout: 500 })
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  const started = Date.now()
  socket.write('POST /large HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n')
  // More than bufferBody (64 KiB), so the body streams to the backend, then nothing more.
  socket.write(Buffer.alloc(70_000, 'b'))
  const answer = await reader.next(5000)
  const took = Date.now() - started
  isClientTimeout(t, answer)
  t.ok(took >= 400, `not before clientTimeout (answered after ${took} ms)`)
  t.ok(took < 3000, `within a few seconds of clientTimeout (answered after ${took} ms)`)
  t.equal(backend.received, 1, 'the large body was streamed to the backend')
  await waitFor(() => backend.uploads[0]?.aborted === true, 'the backend to see its request aborted', 3000)
  const [upload] = backend.uploads
  t.ok(upload.bytes > 0 && upload.bytes < 200000, `the backend got part of the body (${upload.bytes} bytes)`)
  t.notOk(upload.ended, 'the backend never saw the body end')
  await settled(app)
  t.same(pendingCounts(app), [0])
  t.equal(app.goload.stats().backends[0].failed, 0, 'a slow client is not a backend failure')
})

t.test('clientMinRate 1000 B/s: a body sent at 500 B/s gets 408 within ~3 s, one sent at 100 kB/s completes with 200', async (t) => {
  const backend = await uploadBackend(t)
  const { app, port } = await startBalancer(t, { backends: [backend.url], clientTimeout: 800, clientMinRate: 1000 })

  const slow = await connect(t, port)
  slow.on('error', () => {})
  const slowReader = new ResponseReader(slow)
  const fast = await connect(t, port)
  fast.on('error', () => {})
  const fastReader = new ResponseReader(fast)

  const started = Date.now()
  slow.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
  fast.write('POST /fast HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n')
  let fastSent = 0
  const timers = [
    setInterval(() => { if (!slow.destroyed) slow.write(Buffer.alloc(100, 's')) }, 200),
    setInterval(() => {
      if (fastSent >= 100000 || fast.destroyed) return
      fast.write(Buffer.alloc(10000, 'f'))
      fastSent += 10000
    }, 100)
  ]
  const stop = () => { for (const timer of timers) clearInterval(timer) }
  t.teardown(stop)

  // Both are awaited to the end, so a failure of one does not hide what happened to the other.
  const [slowResult, fastResult] = await Promise.allSettled([
    slowReader.next(6000).then((answer) => ({ answer, took: Date.now() - started })),
    fastReader.next(6000)
  ])
  stop()
  if (slowResult.status === 'fulfilled') {
    isClientTimeout(t, slowResult.value.answer)
    t.ok(slowResult.value.took < 3500, `the slow sender is answered within ~3 s (after ${slowResult.value.took} ms)`)
  } else {
    t.fail(`the slow sender gets 408: ${(slowResult.reason as Error).message}`)
  }
  if (fastResult.status === 'fulfilled') {
    t.equal(fastResult.value.status, 200, `the fast sender completes: ${JSON.stringify(fastResult.value.head)}`)
    t.equal(fastResult.value.body.toString(), 'ok')
  } else {
    t.fail(`the fast sender completes with 200: ${(fastResult.reason as Error).message}`)
  }
  const fastUpload = backend.uploads.find((upload) => upload.ended)
  t.equal(fastUpload?.bytes, 100000, 'the backend got the whole fast body')
  await settled(app)
  t.same(pendingCounts(app), [0])
})
