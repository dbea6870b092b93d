// Security regression: a route's rate limit held only for the path spelled as the route was. Beside a catch-all on the
// same pool, `//login`, `/login;jsessionid=x`, `/login%2f` or `/%2flogin` took the catch-all, unlimited, to backends
// that serve them as /login (Tomcat and Spring drop `;` parameters, many merge slashes or decode %2F). Routes match
// a normalised path; the target forwarded stays as received.
import t from 'tap'
import goload from '../lib/index.js'
import { rawRequest } from './helpers/client.js'
import { startBackend, startBalancer } from './helpers/servers.js'

function statusOf (answer: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)
}

function get (port: number, target: string): Promise<string> {
  return rawRequest(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
}

t.test('/login limited to 3 a minute beside a catch-all on the same pool: every spelling of /login counts, and is forwarded as sent', async (t) => {
  const seen: string[] = []
  const backend = await startBackend(t, (req, res) => { seen.push(req.url!); req.resume(); res.end('ok') })
  // The catch-all, then /login on its pool.
  const { port } = await startBalancer(t, { pool: 'app', prefix: '/login', rateLimit: { max: 3, timeWindow: '1 minute' } }, {}, async (app) => {
    await app.register(goload, { name: 'app', backends: [backend.url] })
  })

  const counted = ['//login', '/login;jsessionid=x', '/login%2f']
  for (const target of counted) {
    const answer = await get(port, target)
    t.equal(statusOf(answer), 200, `${target} answered 200`)
    t.match(answer, /x-ratelimit-remaining: \d/i, `${target} was counted by the /login route`)
  }
  t.same(seen, counted, 'the backend got each target byte for byte')

  for (const target of ['/login', '//login', '/login;jsessionid=x', '/login%2f', '/login%2F', '/%2flogin', '/%2Flogin', '/l%6Fgin', '/login/', '///login//', '/login\\', '/login%5c', '/login;a=b/']) {
    const answer = await get(port, target)
    t.equal(statusOf(answer), 429, `${target} is over /login's limit: ${JSON.stringify(answer.split('\r\n')[0])}`)
    t.match(answer, /FST_GOLOAD_RATE_LIMITED/)
  }
  for (const target of ['/login%00', '/%00login', '/login%0d%0a', '/login%7F', '/login%1f']) {
    const answer = await get(port, target)
    t.equal(statusOf(answer), 400, `${target} is refused: ${JSON.stringify(answer.split('\r\n')[0])}`)
    t.match(answer, /FST_GOLOAD_BAD_REQUEST_TARGET/)
  }
  // Not UTF-8 (an overlong '/'), or not an escape: refused before any route (by Fastify's router, which cannot decode
  // them). Raw control characters never get that far: Node's parser refuses them.
  for (const target of ['/login%C0%AF', '/login%zz', '/login\x00', '/login\x7f']) t.equal(statusOf(await get(port, target)), 400, JSON.stringify(target))
  t.same(seen, counted, 'nothing over the limit or refused reached the backend')

  // Case is kept, as nginx and Fastify match it: /LOGIN is another path, taken by the catch-all.
  t.equal(statusOf(await get(port, '/LOGIN')), 200)
  t.equal(statusOf(await get(port, '/loginx')), 200, 'a prefix ends at a segment boundary')
  t.same(seen.slice(counted.length), ['/LOGIN', '/loginx'])
})

t.test('a rewritten prefix is followed by the rest of the raw target, byte for byte', async (t) => {
  const seen: string[] = []
  const backend = await startBackend(t, (req, res) => { seen.push(req.url!); req.resume(); res.end('ok') })
  const other = await startBackend(t)
  // Fastify's router hands `//api//x` and `/api;v=1/x` to the catch-all's handler (alone, /api's handler would
  // not get them: a 404); the table then picks /api.
  const { port } = await startBalancer(t, { prefix: '/api', rewritePrefix: '/v2', backends: [backend.url] }, {}, async (app) => {
    await app.register(goload, { backends: [other.url] })
  })
  for (const target of ['/api;v=1/x?y=%2F', '//api//x', '/%61pi/x', '/api%2Fx']) t.equal(statusOf(await get(port, target)), 200, target)
  t.same(seen, ['/v2;v=1/x?y=%2F', '/v2//x', '/v2/x', '/v2%2Fx'])
  t.equal(other.received, 0)
})
