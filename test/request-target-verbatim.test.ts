import t, { type Test } from 'tap'
import { rawRequest } from './helpers/client.js'
import { startBackend, startBalancer } from './helpers/servers.js'

// The request target is forwarded byte for byte: a signed URL (S3, a CDN token) or an odd query must reach the
// backend as the client sent it, never as WHATWG URL would rewrite it (percent-encoding `"<>`, resolving `..`,
// turning `\` into `/`). Node's own parser (node:http IncomingMessage.url) keeps the target raw, and accepts every
// target below, so each one is checked against what the balancer does, not against the parser.

/** A backend that records "METHOD target" of each request exactly as it arrived. */
async function recordingBackend (t: Test) {
  const seen: string[] = []
  const backend = await startBackend(t, (req, res) => {
    seen.push(`${req.method} ${req.url}`)
    req.resume()
    res.end('ok')
  })
  return Object.assign(backend, { seen })
}

function statusOf (answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)
}

function codeOf (answer: string): unknown {
  const body = answer.slice(answer.indexOf('\r\n\r\n') + 4)
  try { return JSON.parse(body).code } catch { return `not JSON: ${JSON.stringify(body)}` }
}

const verbatim = [
  '/a/.../b',
  '/x?q=100%',
  '/x?path=../x',
  '/x?name=Jos%E9',
  '/s3/obj%2Fkey?X-Amz-Signature=abc&x="<>{}'
]

for (const target of verbatim) {
  t.test(`the target ${target} reaches the backend byte for byte, answered 200`, async (t) => {
    const backend = await recordingBackend(t)
    const { port } = await startBalancer(t, { backends: [backend.url] })
    const answer = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    t.equal(statusOf(answer), 200, `answered 200: ${JSON.stringify(answer.split('\r\n')[0])}`)
    t.same(backend.seen, [`GET ${target}`], 'the backend saw exactly the target sent')
  })
}

const refusedUnderApi = [
  '/api/x\\..\\..\\admin',
  '/api/..',
  '/api/./x',
  '/api/%2e%2e/admin',
  '/api/%2E/x',
  '/api/.%2e/x',
  // A dot segment before a ';' parameter: Tomcat and Jetty resolve it as '..'.
  '/api/..;/admin',
  '/api/a\\.\\b',
  'http://x/api/../admin',
  // Routes match the decoded path, where %2F is a separator: a backend that decodes before resolving climbs out.
  '/api/a%2F..%2F..%2Fadmin',
  '/api/a%5C..%5Cadmin'
]

for (const target of refusedUnderApi) {
  t.test(`with prefix /api, the target ${target} (dot segment) is refused with 400 FST_GOLOAD_BAD_REQUEST_TARGET before any backend`, async (t) => {
    const backend = await recordingBackend(t)
    const { port } = await startBalancer(t, { prefix: '/api', backends: [backend.url] })
    const answer = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    t.equal(statusOf(answer), 400, `answered 400: ${JSON.stringify(answer.split('\r\n')[0])}`)
    t.equal(codeOf(answer), 'FST_GOLOAD_BAD_REQUEST_TARGET', 'the JSON body carries code FST_GOLOAD_BAD_REQUEST_TARGET')
    t.equal(backend.received, 0, `no backend received it (saw: ${JSON.stringify(backend.seen)})`)
  })
}

t.test('without a prefix, the target /a\\.\\b (dot segment between backslashes) is refused with 400 FST_GOLOAD_BAD_REQUEST_TARGET before any backend', async (t) => {
  const backend = await recordingBackend(t)
  const { port } = await startBalancer(t, { backends: [backend.url] })
  const answer = await rawRequest(port, 'GET /a\\.\\b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(statusOf(answer), 400, `answered 400: ${JSON.stringify(answer.split('\r\n')[0])}`)
  t.equal(codeOf(answer), 'FST_GOLOAD_BAD_REQUEST_TARGET', 'the JSON body carries code FST_GOLOAD_BAD_REQUEST_TARGET')
  t.equal(backend.received, 0, `no backend received it (saw: ${JSON.stringify(backend.seen)})`)
})

t.test('with prefix /api, the absolute-form target http://other-host/api/users?x=1 reaches the backend as /api/users?x=1 exactly', async (t) => {
  const backend = await recordingBackend(t)
  const { port } = await startBalancer(t, { prefix: '/api', backends: [backend.url] })
  const answer = await rawRequest(port, 'GET http://other-host/api/users?x=1 HTTP/1.1\r\nHost: other-host\r\nConnection: close\r\n\r\n')
  t.equal(statusOf(answer), 200, `answered 200: ${JSON.stringify(answer.split('\r\n')[0])}`)
  t.same(backend.seen, ['GET /api/users?x=1'])
})

for (const [target, expected] of [['http://other-host', '/'], ['http://other-host?x=1', '/?x=1'], ['https://other-host:8443/a\\b?c', '/a\\b?c']]) {
  t.test(`the absolute-form target ${target} reaches the backend as ${expected}`, async (t) => {
    const backend = await recordingBackend(t)
    const { port } = await startBalancer(t, { backends: [backend.url] })
    const answer = await rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: other-host\r\nConnection: close\r\n\r\n`)
    t.equal(statusOf(answer), 200, `answered 200: ${JSON.stringify(answer.split('\r\n')[0])}`)
    t.same(backend.seen, [`GET ${expected}`])
  })
}

t.test('OPTIONS * never reaches a backend as OPTIONS /: forwarded as OPTIONS *, or answered by the balancer (200/204 with Allow, or 400)', async (t) => {
  const backend = await recordingBackend(t)
  const { port } = await startBalancer(t, { backends: [backend.url] })
  const answer = await rawRequest(port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  const status = statusOf(answer)
  t.notOk(backend.seen.includes('OPTIONS /'), `the backend never saw OPTIONS / (saw: ${JSON.stringify(backend.seen)})`)
  const forwarded = backend.seen.includes('OPTIONS *') && status === 200
  const answeredHere = backend.received === 0 && (((status === 200 || status === 204) && /^allow: /im.test(answer)) || status === 400)
  t.ok(forwarded || answeredHere, `forwarded as OPTIONS *, or answered 200/204 with Allow or 400 by the balancer: got ${JSON.stringify(answer.split('\r\n\r\n')[0])}, backend saw ${JSON.stringify(backend.seen)}`)
})

t.test('a target that is not a path (GET *) is refused with 400 FST_GOLOAD_BAD_REQUEST_TARGET', async (t) => {
  const backend = await recordingBackend(t)
  const { port } = await startBalancer(t, { backends: [backend.url] })
  const answer = await rawRequest(port, 'GET * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(statusOf(answer), 400)
  t.match(answer, /FST_GOLOAD_BAD_REQUEST_TARGET/)
  t.equal(backend.received, 0)
})
