import t from 'tap'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { connect, ResponseReader } from './helpers/raw.js'
import { hello, startBackend } from './helpers/servers.js'

// A request no route takes is answered by goload, in its own shape, rather than Fastify's `Route GET:/ not found`:
// 404 where a route serves the host but not the path, 421 where no route of the listener serves the host.
t.test('the goload command answers what no route takes with FST_GOLOAD_NO_ROUTE: 404 for a path, 421 for a host, 400 for a Host that is not one', async (t) => {
  const [api, web] = [await startBackend(t, hello('api')), await startBackend(t, hello('web'))]
  const [named, open] = [await freePort(), await freePort()]
  const file = await configFile(t, `listeners:
  - port: ${named}
    host: 127.0.0.1
    routes:
      - { host: api.test, path: /v1, pool: api }
      - { host: "*.web.test", pool: web }
  - port: ${open}
    host: 127.0.0.1
    routes: [{ path: /api, pool: api }]
pools:
  api: { backends: [${api.url}] }
  web: { backends: [${web.url}] }
`)
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')

  const answers = async (port: number, heads: string[]) => {
    const reader = new ResponseReader(await connect(t, port))
    reader.socket.write(Buffer.from(heads.join(''), 'latin1'))
    const responses = []
    for (const head of heads) {
      const { status, body } = await reader.next(10_000, { bodyless: head.startsWith('HEAD') })
      responses.push({ status, body: body.length === 0 ? '' : head.includes('no-route') ? JSON.parse(body.toString()) : body.toString() })
    }
    return responses
  }
  const notFound = { statusCode: 404, code: 'FST_GOLOAD_NO_ROUTE', error: 'Not Found', message: 'Not found: no route on this listener takes this path for this host' }
  const misdirected = { statusCode: 421, code: 'FST_GOLOAD_NO_ROUTE', error: 'Misdirected Request', message: 'Misdirected request: no route on this listener serves this host' }
  const badHost = { statusCode: 400, code: 'FST_GOLOAD_BAD_HOST', error: 'Bad Request', message: 'Bad request: Host must be sent once, as a host name or address with an optional port' }

  t.same(await answers(named, [
    'GET /v1/x HTTP/1.1\r\nHost: api.test\r\n\r\n',
    'GET /no-route HTTP/1.1\r\nHost: api.test\r\n\r\n',
    'POST /no-route HTTP/1.1\r\nHost: API.Test.:8080\r\nContent-Length: 2\r\n\r\nhi',
    'GET /no-route HTTP/1.1\r\nHost: unknown.test\r\n\r\n',
    'GET /no-route HTTP/1.1\r\nHost: web.test\r\n\r\n',
    'GET /no-route HTTP/1.1\r\nHost: ex\xffample.test\r\n\r\n',
    'GET /no-route HTTP/1.1\r\nHost: a b\r\n\r\n',
    'GET /no-route HTTP/1.1\r\nHost: api.test\r\nHost: other.test\r\n\r\n',
    'GET / HTTP/1.1\r\nHost: a.web.test\r\n\r\n'
  ]), [
    { status: 200, body: 'Hello from api' },
    { status: 404, body: notFound },
    { status: 404, body: notFound },
    { status: 421, body: misdirected },
    { status: 421, body: misdirected },
    { status: 400, body: badHost },
    { status: 400, body: badHost },
    { status: 400, body: badHost },
    { status: 200, body: 'Hello from web' }
  ], 'one keep-alive connection: each answered, in order, none closing it')

  // HTTP/1.0 may come without a Host: no host route can serve it.
  t.same(await answers(named, ['GET /no-route HTTP/1.0\r\n\r\n']), [{ status: 421, body: misdirected }])
  // A route without a host takes every host: only the path can be missing.
  t.same(await answers(open, ['GET /no-route HTTP/1.1\r\nHost: anything.test\r\n\r\n', 'GET /api/x HTTP/1.1\r\nHost: anything.test\r\n\r\n']), [
    { status: 404, body: notFound },
    { status: 200, body: 'Hello from api' }
  ])
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await run.code, 0)
})
