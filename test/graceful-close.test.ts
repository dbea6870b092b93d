import { spawn } from 'node:child_process'
import type http from 'node:http'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { childEnv } from './helpers/child.js'
import { request, type Answer } from './helpers/client.js'
import { deadline, startDeadline } from './helpers/raw.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

const root = fileURLToPath(new URL('..', import.meta.url))

t.test('fastify.close() lets a proxied request in flight finish: the backend answers after close began, the client gets 200', async (t) => {
  const held: http.ServerResponse[] = []
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    held.push(res)
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url] })

  const answer = request(`${url}/slow`)
  await waitFor(() => held.length === 1, 'the backend to receive the request')

  let closed = false
  const closing = app.close().then(() => { closed = true })
  // The balancer stops accepting at once; the request in flight keeps going.
  await waitFor(() => !app.server.listening, 'the balancer to stop listening')
  t.equal(app.goload.stats().backends[0].pending, 1, 'still in flight')
  t.notOk(closed, 'close() waits for it')

  held[0].end('finished after close')
  const { status, body } = await answer
  t.equal(status, 200)
  t.equal(body, 'finished after close')
  await deadline(closing, startDeadline, 'app.close() to resolve')
  t.ok(closed, 'close() resolves once it ended')
  await settled(app)
})

t.test('closeTimeout: a request whose backend never answers is cut, and close() resolves', async (t) => {
  const backend = await startBackend(t, (req) => { req.resume() }) // never answers
  const { app, url } = await startBalancer(t, { backends: [backend.url], closeTimeout: 200 })

  const answer: Promise<Answer | Error> = request(`${url}/hang`).catch((error: Error) => error)
  await waitFor(() => backend.received === 1, 'the backend to receive the request')

  const started = Date.now()
  const closeError = await app.close().then(() => undefined, (error: Error) => error)
  const elapsed = Date.now() - started
  t.equal(closeError, undefined, 'close() resolves, it does not reject')
  t.ok(elapsed >= 150, `it waited for closeTimeout first (${elapsed} ms)`)
  t.ok(elapsed < 5000, `close() settled within a bound (${elapsed} ms)`)

  const result = await answer
  if (result instanceof Error) {
    t.pass(`the client saw its request cut: ${result.message}`)
  } else {
    t.equal(result.status, 502, 'the client got 502')
    t.equal(JSON.parse(result.body).code, 'FST_GOLOAD_BAD_GATEWAY')
  }
  await settled(app)
  await waitFor(() => backend.active === 0, 'the upstream request to be closed at the backend')
  t.pass('the backend saw the upstream request go')
})

t.test('closeTimeout: requests waiting in the queue when the time runs out answer 503', async (t) => {
  const backend = await startBackend(t, (req) => { req.resume() }) // never answers
  const { app, url } = await startBalancer(t, { backends: [backend.url], closeTimeout: 200, maxPending: 1, queue: { max: 10, timeout: 60_000 } })

  const first: Promise<Answer | Error> = request(`${url}/first`).catch((error: Error) => error)
  await waitFor(() => backend.received === 1, 'the backend to receive the first request')
  const queued: Promise<Answer | Error> = request(`${url}/queued`).catch((error: Error) => error)
  await waitFor(() => app.goload.stats().queued === 1, 'the second request to queue')

  const started = Date.now()
  const closeError = await app.close().then(() => undefined, (error: Error) => error)
  t.equal(closeError, undefined, 'close() resolves, it does not reject')
  t.ok(Date.now() - started < 5000, 'close() settled within a bound')
  const result = await queued
  t.notOk(result instanceof Error, 'the queued request got an answer')
  if (!(result instanceof Error)) {
    t.equal(result.status, 503)
    t.equal(JSON.parse(result.body).code, 'FST_GOLOAD_QUEUE_TIMEOUT')
  }
  await first
  t.equal(backend.received, 1, 'the queued request never reached the backend')
  t.equal(app.goload.stats().queued, 0)
  await settled(app)
})

t.test('after close, nothing the plugin started holds the process open: a child process exits by itself', async (t) => {
  const child = spawn('node_modules/.bin/tsx', ['test/fixtures/close-child.ts'], { cwd: root, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  let killed = false
  // Generous: starting tsx on a loaded machine takes a few seconds; the work itself well under one.
  const bound = setTimeout(() => { killed = true; child.kill('SIGKILL') }, 30_000)
  t.teardown(() => { clearTimeout(bound); if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })

  const code = await new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  clearTimeout(bound)
  t.notOk(killed, `exited by itself, without being killed\n${output}`)
  t.equal(code, 0, `exit code 0\n${output}`)
  t.match(output, /^closed$/m, 'it got to the end')
  t.match(output, /^dead ejected true$/m, 'passive health did eject a backend (an ejection timer was running)')
  t.match(output, /^lib timers created [1-9]\d*$/m, 'the library had timers running')
  t.match(output, /^lib timers alive 0$/m, 'and close() cleared every one of them, unref\'d or not')
})
