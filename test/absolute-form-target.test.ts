import http from 'node:http'
import t from 'tap'
import { rawRequest } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { startBackend, startBalancer } from './helpers/servers.js'

// Security regression: nothing in the request may pick the upstream.
t.test('an absolute-form request target never steers the request to another host', async (t) => {
  let otherHostHits = 0
  const other = await startBackend(t, (req, res) => { otherHostHits++; req.resume(); res.end('wrong host') })
  const urls: string[] = []
  const backend = await startBackend(t, (req, res) => { urls.push(req.url ?? ''); req.resume(); res.end('configured backend') })
  const { port } = await startBalancer(t, { backends: [backend.url] })
  const otherAuthority = new URL(other.url).host

  const absolute = await rawRequest(port, `GET ${other.url}/steal?x=1 HTTP/1.1\r\nHost: ${otherAuthority}\r\nConnection: close\r\n\r\n`)
  t.match(absolute, /configured backend$/)
  t.equal(urls.at(-1), '/steal?x=1', 'only the path and query of the absolute URI are forwarded')

  const schemeRelative = await rawRequest(port, `GET //${otherAuthority}/steal HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
  t.match(schemeRelative, /configured backend$/)
  t.equal(urls.at(-1), `//${otherAuthority}/steal`, 'a path starting with // stays a path')

  const hostHeader = await rawRequest(port, `GET /steal HTTP/1.1\r\nHost: ${otherAuthority}\r\nConnection: close\r\n\r\n`)
  t.match(hostHeader, /configured backend$/)

  t.equal(otherHostHits, 0, 'the other host never saw a request')
})

t.test('the same holds through a proxy-style client', async (t) => {
  let otherHostHits = 0
  const other = await startBackend(t, (req, res) => { otherHostHits++; req.resume(); res.end('wrong host') })
  const backend = await startBackend(t, (req, res) => { req.resume(); res.end('configured backend') })
  const { port } = await startBalancer(t, { backends: [backend.url] })
  // What an HTTP client does when told to use the balancer as its forward proxy.
  const body = await deadline(new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: other.url + '/', agent: false }, (res) => {
      let data = ''
      res.on('data', (chunk) => { data += chunk })
      res.on('end', () => resolve(data))
    }).on('error', reject)
  }), 10_000, 'the answer to the proxy-style request')
  t.equal(body, 'configured backend')
  t.equal(otherHostHits, 0)
})
