import type http from 'node:http'
import t from 'tap'
import { rawRequest, request } from './helpers/client.js'
import { startBackend, startBalancer } from './helpers/servers.js'

interface Seen { method?: string, url?: string, headers: http.IncomingHttpHeaders, body: string }

t.test('method, path, query, end-to-end headers and body reach the backend as sent; its answer comes back as sent', async (t) => {
  const seen: Seen[] = []
  const backend = await startBackend(t, (req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body })
      res.writeHead(201, { 'x-backend': 'yes', 'set-cookie': ['a=1', 'b=2'], 'content-type': 'text/x-custom' })
      res.end('created')
    })
  })
  // Methods beyond Fastify's defaults are proxied once the app accepts them.
  const { url, port } = await startBalancer(t, { backends: [backend.url] }, {}, (app) => { app.addHttpMethod('PROPFIND', { hasBody: true }) })

  const answer = await request(url + '/some/path%20with/%E2%9C%93?b=2&a=1&a=3&empty=&flag', {
    method: 'PATCH',
    headers: { 'content-type': 'application/vnd.custom+json', 'x-request-id': 'abc', cookie: 'k=v', authorization: 'Bearer t' },
    body: '{"not":"parsed"'
  })
  t.equal(answer.status, 201)
  t.equal(answer.body, 'created')
  t.equal(answer.headers['x-backend'], 'yes')
  t.same(answer.headers['set-cookie'], ['a=1', 'b=2'])
  t.equal(answer.headers['content-type'], 'text/x-custom')

  const [first] = seen
  t.equal(first.method, 'PATCH')
  t.equal(first.url, '/some/path%20with/%E2%9C%93?b=2&a=1&a=3&empty=&flag')
  t.equal(first.body, '{"not":"parsed"', 'a body Fastify would reject as JSON passes through untouched')
  t.equal(first.headers['content-type'], 'application/vnd.custom+json')
  t.equal(first.headers['x-request-id'], 'abc')
  t.equal(first.headers.cookie, 'k=v')
  t.equal(first.headers.authorization, 'Bearer t')

  for (const method of ['GET', 'HEAD', 'DELETE', 'OPTIONS', 'PUT', 'POST', 'PROPFIND']) {
    const reply = await request(url + '/m', { method, body: method === 'GET' || method === 'HEAD' ? undefined : 'x' })
    t.equal(reply.status, 201, `${method} is proxied`)
    t.equal(seen.at(-1)?.method, method)
  }
  t.equal(seen.at(-1)?.body, 'x', 'a body without a known content type is streamed too')

  const deleteWithBody = await rawRequest(port, 'DELETE /d HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nConnection: close\r\n\r\ngone')
  t.match(deleteWithBody, /^HTTP\/1\.1 201 /)
  t.equal(seen.at(-1)?.body, 'gone', 'a DELETE body without content type is forwarded, not left hanging')
})

t.test('the backend status and headers come back for errors too', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.writeHead(503, { 'retry-after': '7' })
    res.end('busy')
  })
  const { url } = await startBalancer(t, { backends: [backend.url] })
  const answer = await request(url)
  t.equal(answer.status, 503)
  t.equal(answer.headers['retry-after'], '7')
  t.equal(answer.body, 'busy')
  t.equal(backend.received, 1, 'a 503 is passed on, not retried by reply-from')
})
