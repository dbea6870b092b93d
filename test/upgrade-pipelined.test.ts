// An upgrade pipelined behind other requests on one connection: every response goes out in order, the upgrade is
// taken only once the responses before it are written, and every count returns to 0 whatever the client does.
import http from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import t, { type Test } from 'tap'
import goload from '../lib/index.js'
import { accepting, freePort, spawnGoload } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { connect, ResponseReader } from './helpers/raw.js'
import { startBalancer, startSlowBackend, waitFor } from './helpers/servers.js'

interface Seen {
  /** Requests and upgrades the backend received, by their `case` query parameter and order: `3 first`, `3 second`. */
  arrived: string[]
  /** Responses it finished, the same way. */
  answered: string[]
  /** Both, in the order they happened: `arrived 3 first`, `answered 3 first`. */
  events: string[]
}

/**
 * A backend for every case: `?slow` delays its answer, `?break` breaks off part-way, plain requests get back their method, path and body, and an
 * upgrade (any token) gets a 101, after which the bytes it is sent are echoed.
 */
async function startPipelineBackend (t: Test): Promise<{ url: string, seen: Seen }> {
  const seen: Seen = { arrived: [], answered: [], events: [] }
  const tunnels = new Set<Socket>()
  const name = (url: string) => `${new URL(url, 'http://x').searchParams.get('case') ?? '?'} ${url.split('?')[0].split('/').pop()!}`
  const server = http.createServer((request, response) => {
    seen.arrived.push(name(request.url!))
    seen.events.push(`arrived ${name(request.url!)}`)
    let body = ''
    request.setEncoding('latin1').on('data', (chunk: string) => { body += chunk })
    request.on('end', () => {
      const answer = () => {
        seen.answered.push(name(request.url!))
        seen.events.push(`answered ${name(request.url!)}`)
        response.end(`${request.method!} ${request.url!} ${body}`)
      }
      if (request.url!.includes('slow')) {
        setTimeout(answer, 100)
      } else if (request.url!.includes('break')) {
        // Headers and part of the body, then the connection breaks.
        response.writeHead(200, { 'content-length': 100 })
        response.write('partial', () => { response.socket!.destroy() })
      } else {
        answer()
      }
    })
  })
  server.on('upgrade', (request: http.IncomingMessage, socket: Socket, head: Buffer) => {
    seen.arrived.push(name(request.url!) + ' upgrade')
    seen.events.push(`arrived ${name(request.url!)} upgrade`)
    tunnels.add(socket)
    socket.on('error', () => {})
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: ${request.headers.upgrade!}\r\n\r\n`)
    if (head.length > 0) socket.write(head)
    socket.pipe(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    for (const socket of tunnels) socket.destroy()
    server.closeAllConnections()
    return new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, seen }
}

/** Every count of every pool back at 0: pending, upgraded, queued. */
async function allCountsZero (app: FastifyInstance): Promise<void> {
  const zero = () => app.goload.names().every((name) => {
    const stats = app.goload.pool(name).stats()
    return stats.queued === 0 && stats.backends.every((b) => b.pending === 0 && b.upgraded === 0)
  })
  await waitFor(zero, 'every pending, upgraded and queued count to return to 0')
}

const upgradeHeaders: Record<string, string> = {
  websocket: 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n',
  h2c: 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n',
  unknown: 'Connection: Upgrade\r\nUpgrade: x-unknown/1\r\n'
}

t.test('{GET, POST} × {websocket, h2c, unknown} × {websocket on, off} × {first fast, slow}: in order, counts back to 0', async (t) => {
  const backend = await startPipelineBackend(t)
  const balancer = await startBalancer(t, { name: 'on', prefix: '/on', backends: [backend.url] }, {}, async (app) => {
    await app.register(goload, { name: 'off', prefix: '/off', backends: [backend.url], websocket: false })
  })
  let id = 0
  for (const method of ['GET', 'POST']) {
    for (const token of ['websocket', 'h2c', 'unknown']) {
      for (const route of ['on', 'off']) {
        for (const first of ['fast', 'slow']) {
          const n = ++id
          await t.test(`${method} with Upgrade: ${token} to a route with websocket ${route}, behind a ${first} response`, async (t) => {
            const socket = await connect(t, balancer.port)
            const reader = new ResponseReader(socket)
            const body = method === 'POST' ? 'Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello' : '\r\n'
            socket.write(`GET /on/first?case=${n}${first === 'slow' ? '&slow' : ''} HTTP/1.1\r\nHost: a\r\n\r\n` +
              `${method} /${route}/second?case=${n} HTTP/1.1\r\nHost: a\r\n${upgradeHeaders[token]}${body}`)
            const one = await reader.next(5000)
            t.equal(one.status, 200)
            t.equal(one.body.toString(), `GET /on/first?case=${n}${first === 'slow' ? '&slow' : ''} `)
            const two = await reader.next(5000)
            const tunnelled = route === 'on' && token !== 'h2c'
            if (tunnelled) {
              t.equal(two.status, 101, 'the upgrade is switched')
              const { events } = backend.seen
              t.ok(events.indexOf(`arrived ${n} second upgrade`) > events.indexOf(`answered ${n} first`), 'it reached the backend after the first response was answered')
              if (method === 'POST') {
                await reader.until(() => reader.unread().toString() === 'hello', 5000, 'the POST body echoed through the tunnel')
              }
              t.same(balancer.app.goload.pool('on').stats().backends.map((b) => b.upgraded), [1], 'the tunnel is open')
            } else {
              t.equal(two.status, 200)
              t.equal(two.body.toString(), `${method} /${route}/second?case=${n} ${method === 'POST' ? 'hello' : ''}`)
              // The connection carries on as plain HTTP/1.1.
              socket.write(`GET /on/third?case=${n} HTTP/1.1\r\nHost: a\r\n\r\n`)
              t.equal((await reader.next(5000)).body.toString(), `GET /on/third?case=${n} `)
            }
            const mine = backend.seen.arrived.filter((name) => name.startsWith(`${n} `))
            t.same(mine.sort(), (tunnelled ? [`${n} first`, `${n} second upgrade`] : [`${n} first`, `${n} second`, `${n} third`]).sort(), 'the backend saw each request once')
            socket.end()
            await allCountsZero(balancer.app)
          })
        }
      }
    }
  }
})

t.test('a client that leaves while its upgrade waits behind two responses: nothing reaches the backend, every count returns to 0', async (t) => {
  const backend = await startPipelineBackend(t)
  const balancer = await startBalancer(t, { backends: [backend.url] })
  const socket = await connect(t, balancer.port)
  socket.write('GET /first?case=1&slow HTTP/1.1\r\nHost: a\r\n\r\nGET /second?case=1 HTTP/1.1\r\nHost: a\r\n\r\n' +
    `GET /third?case=1 HTTP/1.1\r\nHost: a\r\n${upgradeHeaders.websocket}\r\n`)
  await waitFor(() => backend.seen.arrived.length === 2, 'the two plain requests to reach the backend')
  socket.destroy()
  await allCountsZero(balancer.app)
  t.same(backend.seen.arrived.sort(), ['1 first', '1 second'], 'the upgrade never went upstream')
})

t.test('an upgrade pipelined behind a response that closes the connection: that response, then the end; the upgrade goes nowhere', async (t) => {
  const backend = await startPipelineBackend(t)
  const balancer = await startBalancer(t, { backends: [backend.url], prefix: '/api' }, {}, (app) => {
    app.get('/bye', async (_request, reply) => { await new Promise((resolve) => setTimeout(resolve, 50)); return reply.header('connection', 'close').send('bye') })
  })
  const socket = await connect(t, balancer.port)
  const reader = new ResponseReader(socket)
  socket.write(`GET /bye HTTP/1.1\r\nHost: a\r\n\r\nGET /api/second?case=1 HTTP/1.1\r\nHost: a\r\n${upgradeHeaders.websocket}\r\n`)
  t.equal((await reader.next(5000)).body.toString(), 'bye')
  await reader.closes(5000)
  t.equal(reader.unread().length, 0, 'nothing after it')
  await allCountsZero(balancer.app)
  t.same(backend.seen.arrived, [], 'the upgrade never went upstream')
})

t.test('an upgrade pipelined behind a response that breaks off part-way: the client\'s connection is cut, the upgrade dropped', async (t) => {
  const backend = await startPipelineBackend(t)
  const balancer = await startBalancer(t, { backends: [backend.url], retries: 0 })
  const socket = await connect(t, balancer.port)
  const reader = new ResponseReader(socket)
  socket.write(`GET /first?case=1&break HTTP/1.1\r\nHost: a\r\n\r\nGET /second?case=1 HTTP/1.1\r\nHost: a\r\n${upgradeHeaders.websocket}\r\n`)
  await reader.closes(5000)
  t.match(reader.received.toString(), /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\npartial$/, 'the 200 as far as it went, nothing after it')
  await allCountsZero(balancer.app)
  t.same(backend.seen.arrived, ['1 first'], 'the upgrade never went upstream')
})

t.test('pipelined plain requests whose client leaves before the first is answered: the one waiting behind it never goes upstream', async (t) => {
  const backend = await startPipelineBackend(t)
  const balancer = await startBalancer(t, { backends: [backend.url] })
  const socket = await connect(t, balancer.port)
  socket.write('GET /first?case=1&slow HTTP/1.1\r\nHost: a\r\n\r\nGET /second?case=1 HTTP/1.1\r\nHost: a\r\n\r\n')
  await waitFor(() => backend.seen.arrived.length === 1, 'the first request at the backend')
  socket.destroy()
  await allCountsZero(balancer.app)
  t.same(backend.seen.arrived, ['1 first'], 'the second waited its turn (see test/pipelining), and was dropped with its client')
})

t.test('the goload command, sent an upgrade pipelined behind a slow response, answers both in order and keeps serving', async (t) => {
  const slow = await startSlowBackend(t, 200, 'slow')
  const port = await freePort()
  const run = spawnGoload(t, ['--backend', slow.url, '--port', String(port), '--host', '127.0.0.1'])
  await accepting(port)
  const packet = 'GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n'
  // As `printf … > /dev/tcp/…` sends it: the packet, then the client's end.
  const printf = await connect(t, port)
  const printfReader = new ResponseReader(printf)
  printf.end(packet)
  t.equal((await printfReader.next(5000)).status, 200)
  // And from a client that stays: the backend, a plain HTTP server, answers the upgrade as a request, and that
  // refusal is the last answer on the connection.
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  socket.write(packet)
  t.equal((await reader.next(5000)).body.toString(), 'slow')
  const refusal = await reader.next(5000)
  t.equal(refusal.status, 200)
  t.same(refusal.headers.connection, ['close'])
  await reader.closes(5000)
  t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'slow', 'still serving')
  t.equal(run.child.exitCode, null, 'still running')
  t.notMatch(run.stderr, /ERR_HTTP_SOCKET_ASSIGNED/)
})
