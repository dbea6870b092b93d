import type http from 'node:http'
import t from 'tap'
import { rawRequest } from './helpers/client.js'
import { startBackend, startBalancer } from './helpers/servers.js'

t.test('hop-by-hop headers, and those the Connection header names, are removed in both directions', async (t) => {
  let seen: http.IncomingHttpHeaders = {}
  const backend = await startBackend(t, (req, res) => {
    if (req.url === '/h') seen = req.headers
    req.resume()
    // Node writes these as given; a real backend may well send them.
    res.setHeader('connection', 'keep-alive, x-upstream-private')
    res.setHeader('keep-alive', 'timeout=5')
    res.setHeader('x-upstream-private', 'secret')
    res.setHeader('proxy-connection', 'keep-alive')
    res.setHeader('upgrade', 'h2c')
    res.setHeader('x-end-to-end', 'kept')
    res.end('ok')
  })
  const { port } = await startBalancer(t, { backends: [backend.url] })
  const answer = await rawRequest(port, [
    'GET /h HTTP/1.1',
    'Host: example.test',
    'Connection: keep-alive, X-Client-Private',
    'X-Client-Private: secret',
    'Keep-Alive: timeout=5',
    'Proxy-Connection: keep-alive',
    'TE: trailers, deflate',
    'Upgrade: websocket',
    'X-End-To-End: kept',
    '', ''
  ].join('\r\n') + 'GET /close HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n')

  for (const name of ['x-client-private', 'keep-alive', 'proxy-connection', 'te', 'upgrade', 'transfer-encoding']) {
    t.notOk(name in seen, `request header ${name} does not reach the backend`)
  }
  t.equal(seen['x-end-to-end'], 'kept')
  t.not(seen.connection, 'keep-alive, X-Client-Private', 'the client Connection header is not forwarded')

  const [firstResponse] = answer.split('\r\n\r\nok')
  t.match(firstResponse, /^HTTP\/1\.1 200 /)
  t.match(firstResponse, /x-end-to-end: kept/i)
  for (const name of ['x-upstream-private', 'proxy-connection', 'upgrade']) {
    t.notMatch(firstResponse, new RegExp(`^${name}:`, 'im'), `response header ${name} does not reach the client`)
  }
  // Node's server writes its own Keep-Alive for the client connection; the backend's must not replace it.
  t.notMatch(firstResponse, /^keep-alive: timeout=5/im, 'the backend Keep-Alive does not reach the client')
  t.notMatch(firstResponse, /connection:.*x-upstream-private/i, 'the backend Connection header is not passed on')
})

t.test('a single header named by the backend Connection header is removed too', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.setHeader('connection', 'X-Only-Hop')
    res.setHeader('x-only-hop', 'secret')
    res.end('ok')
  })
  const { port } = await startBalancer(t, { backends: [backend.url] })
  const answer = await rawRequest(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.match(answer, /^HTTP\/1\.1 200 /)
  t.notMatch(answer, /x-only-hop/i)
})
