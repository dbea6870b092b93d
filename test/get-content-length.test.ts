// A GET with a body: Fastify drops the body of a GET or HEAD, so its Content-Length must not reach the backend either,
// or the backend would wait for bytes that never come (or take the next request on the connection as that body).
// undici 7 writes the length of the body it is given, none for a GET, whatever header came with it; this test guards
// what the backend receives should that change (the HTTP/2 case is in http2-backends.test.ts).
import type http from 'node:http'
import t from 'tap'
import { rawRequest } from './helpers/client.js'
import { startBackend, startBalancer } from './helpers/servers.js'

t.test('a GET sent with Content-Length and a body reaches the backend without either', async (t) => {
  let seen: http.IncomingHttpHeaders | undefined
  let body = ''
  const backend = await startBackend(t, (req, res) => {
    seen = req.headers
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => { res.end('ok') })
  })
  const { port } = await startBalancer(t, { backends: [backend.url] })
  const answer = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello', 5000)

  t.match(answer, /^HTTP\/1\.1 200 /, 'answered')
  t.match(answer, /\r\n\r\nok$/)
  t.equal(backend.received, 1)
  t.equal(seen?.['content-length'], undefined, 'no Content-Length reaches the backend')
  t.equal(seen?.['transfer-encoding'], undefined, 'nor a chunked body')
  t.equal(body, '', 'nor the body')
})
