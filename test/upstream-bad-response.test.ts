import type net from 'node:net'
import t, { type Test } from 'tap'
import { connect, onRequestHeads, ResponseReader, startRawBackend, type RawResponse } from './helpers/raw.js'
import { pendingCounts, settled, startBalancer } from './helpers/servers.js'

// Until the first response byte reaches the client, every upstream failure is the balancer's own 502 with its
// own headers: nothing of a response that could not be delivered leaks out (a Cache-Control from it would let a
// cache keep our error for a day, a Set-Cookie would set a session).
const poisonedHead = 'HTTP/1.1 200 OK\r\nCache-Control: public, max-age=86400\r\nSet-Cookie: s=1\r\nX-Backend-Only: 1\r\n'

function isCleanBadGateway (t: Test, answer: RawResponse): void {
  t.equal(answer.status, 502, `answered 502: ${JSON.stringify(answer.head)}`)
  let code: unknown
  try { code = JSON.parse(answer.body.toString()).code } catch { code = `not JSON: ${JSON.stringify(answer.body.toString())}` }
  t.equal(code, 'FST_GOLOAD_BAD_GATEWAY', 'the JSON body carries code FST_GOLOAD_BAD_GATEWAY')
  for (const name of ['cache-control', 'set-cookie', 'x-backend-only']) {
    t.notOk(name in answer.headers, `no ${name} header from the failed backend response`)
  }
}

/** Sends one request on a fresh keep-alive connection and reads the one answer. */
async function ask (t: Test, port: number, request: string, bodyless = false): Promise<{ answer: RawResponse, reader: ResponseReader, socket: net.Socket }> {
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  socket.write(request)
  return { answer: await reader.next(5000, { bodyless }), reader, socket }
}

t.test('response headers with Content-Length 100, then a reset before any body byte: clean 502 FST_GOLOAD_BAD_GATEWAY without the backend headers, failed 1', async (t) => {
  const backend = await startRawBackend(t, (socket) => {
    onRequestHeads(socket, () => {
      // Handed to the kernel before the reset, so the balancer does get the headers.
      socket.write(poisonedHead + 'Content-Length: 100\r\n\r\n', () => setTimeout(() => socket.resetAndDestroy(), 50))
    })
  })
  const { app, port } = await startBalancer(t, { backends: [backend.url] })
  const { answer } = await ask(t, port, 'GET /reset HTTP/1.1\r\nHost: x\r\n\r\n')
  isCleanBadGateway(t, answer)
  await settled(app)
  t.equal(app.goload.stats().backends[0].failed, 1, 'failed is 1 for the backend')
})

t.test('chunked response headers, then a bad chunk size line "zz": clean 502 FST_GOLOAD_BAD_GATEWAY without the backend headers, failed 1', async (t) => {
  const backend = await startRawBackend(t, (socket) => {
    onRequestHeads(socket, () => { socket.write(poisonedHead + 'Transfer-Encoding: chunked\r\n\r\nzz\r\n') })
  })
  const { app, port } = await startBalancer(t, { backends: [backend.url] })
  const { answer } = await ask(t, port, 'GET /bad-chunk HTTP/1.1\r\nHost: x\r\n\r\n')
  isCleanBadGateway(t, answer)
  await settled(app)
  t.equal(app.goload.stats().backends[0].failed, 1, 'failed is 1 for the backend')
})

/**
 * A backend that sends its head and 50 body bytes ('b'), then resets once the test says the client has them.
 * Returns the function that tells it to.
 */
async function halfThenReset (t: Test, head: string, firstBody: string): Promise<{ url: string, cut: () => void }> {
  let cut = () => {}
  const backend = await startRawBackend(t, (socket) => {
    onRequestHeads(socket, () => {
      socket.write(head + firstBody)
      cut = () => socket.resetAndDestroy()
    })
  })
  return { url: backend.url, cut: () => cut() }
}

t.test('Content-Length 100 response cut after 50 body bytes that reached the client: the client sees 200, then the connection closes short of 100 bytes; failed 1', async (t) => {
  const backend = await halfThenReset(t, 'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n', 'b'.repeat(50))
  const { app, port } = await startBalancer(t, { backends: [backend.url] })
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  socket.write('GET /half HTTP/1.1\r\nHost: x\r\n\r\n')
  const bodyBytes = () => {
    const text = reader.received.toString('latin1')
    const headEnd = text.indexOf('\r\n\r\n')
    return headEnd === -1 ? -1 : text.length - headEnd - 4
  }
  await reader.until(() => bodyBytes() >= 50, 5000, 'the status line, headers and the first 50 body bytes')
  const text = reader.received.toString('latin1')
  t.match(text, /^HTTP\/1\.1 200 /, 'the client got the 200 status line')
  t.match(text, /^content-length: 100\r$/im, 'with the backend\'s Content-Length')
  backend.cut()
  await reader.closes(5000)
  t.ok(bodyBytes() < 100, `the connection closed with fewer body bytes than Content-Length (${bodyBytes()} of 100)`)
  await settled(app)
  t.same(pendingCounts(app), [0])
  t.equal(app.goload.stats().backends[0].failed, 1, 'failed is 1 for the backend')
})

t.test('chunked response cut after a first chunk that reached the client: the client sees 200, then the connection closes without the terminating 0-chunk; failed 1', async (t) => {
  const backend = await halfThenReset(t, 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n', '32\r\n' + 'b'.repeat(50) + '\r\n')
  const { app, port } = await startBalancer(t, { backends: [backend.url] })
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  socket.write('GET /half-chunked HTTP/1.1\r\nHost: x\r\n\r\n')
  const text = () => reader.received.toString('latin1')
  await reader.until(() => /\r\n\r\n/.test(text()) && (text().split('\r\n\r\n')[1].match(/b/g)?.length ?? 0) >= 50, 5000, 'the status line, headers and the first chunk')
  t.match(text(), /^HTTP\/1\.1 200 /, 'the client got the 200 status line')
  backend.cut()
  await reader.closes(5000)
  t.notMatch(text(), /\r\n0\r\n\r\n$/, 'no terminating 0-chunk: the client can tell the body is incomplete')
  await settled(app)
  t.same(pendingCounts(app), [0])
  t.equal(app.goload.stats().backends[0].failed, 1, 'failed is 1 for the backend')
})

/** A keep-alive raw backend: `answers` maps "METHOD /path" to the exact bytes it answers with. */
async function scriptedBackend (t: Test, answers: Record<string, string>) {
  return startRawBackend(t, (socket) => {
    onRequestHeads(socket, (head) => {
      const [method, target] = head.split(' ')
      socket.write(answers[`${method} ${target}`] ?? 'HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n')
    })
  })
}

const after = 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nafter'

for (const { name, method, path, raw, check } of [
  {
    name: '304 Not Modified with Content-Length: 1234 and no body passes through with its ETag and Content-Length',
    method: 'GET',
    path: '/not-modified',
    raw: 'HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 1234\r\nX-Backend: raw\r\n\r\n',
    check: (t: Test, answer: RawResponse) => {
      t.equal(answer.status, 304, `answered 304: ${JSON.stringify(answer.head)}`)
      t.same(answer.headers.etag, ['"v1"'], 'the ETag is kept')
      t.same(answer.headers['content-length'], ['1234'], 'Content-Length: 1234 is kept')
    }
  },
  {
    name: '204 No Content with Content-Length: 0 passes through',
    method: 'GET',
    path: '/no-content',
    raw: 'HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nX-Backend: raw\r\n\r\n',
    check: (t: Test, answer: RawResponse) => { t.equal(answer.status, 204, `answered 204: ${JSON.stringify(answer.head)}`) }
  },
  {
    name: 'a HEAD answered 200 with Content-Length: 1234 and no body passes through with its Content-Length',
    method: 'HEAD',
    path: '/head',
    raw: 'HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nContent-Type: text/plain\r\nX-Backend: raw\r\n\r\n',
    check: (t: Test, answer: RawResponse) => {
      t.equal(answer.status, 200, `answered 200: ${JSON.stringify(answer.head)}`)
      t.same(answer.headers['content-length'], ['1234'], 'Content-Length: 1234 is kept')
      t.same(answer.headers['content-type'], ['text/plain'])
    }
  }
]) {
  t.test(`${name}, and the keep-alive connection then answers a second request`, async (t) => {
    const backend = await scriptedBackend(t, { [`${method} ${path}`]: raw, 'GET /after': after })
    const { app, port } = await startBalancer(t, { backends: [backend.url] })
    const socket = await connect(t, port)
    const reader = new ResponseReader(socket)
    socket.write(`${method} ${path} HTTP/1.1\r\nHost: x\r\n\r\n`)
    const first = await reader.next(5000, { bodyless: method === 'HEAD' })
    check(t, first)
    t.same(first.headers['x-backend'], ['raw'], 'the backend headers come through')
    t.equal(first.body.length, 0, 'no body')
    // Any stray byte after the head would be read as the start of the next response and fail it.
    socket.write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n')
    const second = await reader.next(5000)
    t.equal(second.status, 200, `the second request on the same connection is answered: ${JSON.stringify(second.head)}`)
    t.equal(second.body.toString(), 'after')
    await settled(app)
    t.equal(app.goload.stats().backends[0].failed, 0, 'not counted as a backend failure')
  })
}

t.test('a response with two Connection header lines (keep-alive, X-Internal) does not pass X-Internal on to the client', async (t) => {
  const backend = await scriptedBackend(t, {
    'GET /two-connection-lines': 'HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: X-Internal\r\nX-Internal: secret\r\nX-Public: kept\r\nContent-Length: 2\r\n\r\nok'
  })
  const { port } = await startBalancer(t, { backends: [backend.url] })
  const { answer } = await ask(t, port, 'GET /two-connection-lines HTTP/1.1\r\nHost: x\r\n\r\n')
  t.equal(answer.status, 200)
  t.equal(answer.body.toString(), 'ok')
  t.same(answer.headers['x-public'], ['kept'], 'an end-to-end header still comes through')
  t.notOk('x-internal' in answer.headers, `X-Internal, named by the second Connection line, is removed: ${JSON.stringify(answer.head)}`)
})
