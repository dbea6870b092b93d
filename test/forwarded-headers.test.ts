import type http from 'node:http'
import t from 'tap'
import type { Test } from 'tap'
import { request } from './helpers/client.js'
import { startBackend, startBalancer } from './helpers/servers.js'

async function seenHeaders (t: Test, headers: http.OutgoingHttpHeaders, trustProxy = false): Promise<http.IncomingHttpHeaders> {
  let seen: http.IncomingHttpHeaders = {}
  const backend = await startBackend(t, (req, res) => { seen = req.headers; req.resume(); res.end() })
  const { url } = await startBalancer(t, { backends: [backend.url] }, { trustProxy })
  await request(url + '/', { headers })
  return seen
}

t.test('X-Forwarded-For, -Proto and -Host tell the backend who asked and how', async (t) => {
  const seen = await seenHeaders(t, { host: 'shop.example:8443' })
  t.equal(seen['x-forwarded-for'], '127.0.0.1')
  t.equal(seen['x-forwarded-proto'], 'http')
  t.equal(seen['x-forwarded-host'], 'shop.example:8443')
  t.match(seen.host, /^127\.0\.0\.1:\d+$/, 'Host is the backend\'s own')
})

t.test('an existing X-Forwarded-For is appended to', async (t) => {
  const seen = await seenHeaders(t, { 'x-forwarded-for': '203.0.113.7' })
  t.equal(seen['x-forwarded-for'], '203.0.113.7, 127.0.0.1')
})

t.test('a client cannot claim another protocol or host unless the app trusts its proxy', async (t) => {
  const untrusted = await seenHeaders(t, { host: 'real.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'fake.example' })
  t.equal(untrusted['x-forwarded-proto'], 'http')
  t.equal(untrusted['x-forwarded-host'], 'real.example')
  const trusted = await seenHeaders(t, { host: 'real.example', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'front.example' }, true)
  t.equal(trusted['x-forwarded-proto'], 'https')
  t.equal(trusted['x-forwarded-host'], 'front.example')
})
