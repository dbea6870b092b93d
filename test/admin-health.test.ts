// GET /healthz and GET /readyz on the admin listener of the built goload command, over real HTTP: no token, 200
// while serving, 503 from SIGTERM until exit (a request in flight holding the shutdown open), then nothing.
import type http from 'node:http'
import t from 'tap'
import { configFile, freePort, spawnGoload, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { startBackend, waitFor } from './helpers/servers.js'

const token = 'a-token-of-16-chars-or-more'

t.test('/healthz and /readyz: 200 without a token while serving; 503 during a graceful shutdown with a request in flight', async (t) => {
  // A backend that holds each request until released: the shutdown cannot end while one is in flight.
  const held: http.ServerResponse[] = []
  let arrived = () => {}
  const reached = new Promise<void>((resolve) => { arrived = resolve })
  const backend = await startBackend(t, (request, response) => {
    request.resume()
    held.push(response)
    arrived()
  })
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = await configFile(t, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backend.url}]\n    closeTimeout: 20000\nadmin:\n  port: ${adminPort}\n  token: ${token}\n`)
  const run = spawnGoload(t, ['--config', file])
  await waitFor(() => /goload listening/.test(run.stdout), 'goload to listen', startDeadline)
  const admin = `http://127.0.0.1:${adminPort}`
  const probe = async (path: string, method = 'GET') => await request(admin + path, { method, agent: false })

  for (const path of ['/healthz', '/readyz']) {
    const answer = await probe(path)
    t.equal(answer.status, 200, `${path} answers 200 without a token`)
    t.same(JSON.parse(answer.body), { status: 'ok' })
    t.equal(answer.headers['cache-control'], 'no-store')
    t.equal((await probe(path, 'HEAD')).status, 200, `HEAD ${path} too`)
  }
  t.equal((await probe('/stats')).status, 401, 'the data routes still need the token')

  const inFlight = request(`http://127.0.0.1:${port}/slow`, { agent: false })
  await deadline(reached, 5000, 'the request to reach the backend')
  run.child.kill('SIGTERM')
  await waitFor(() => /SIGTERM received, closing/.test(run.stdout), 'goload to begin its shutdown', 10_000)
  for (const path of ['/healthz', '/readyz']) {
    const answer = await probe(path)
    t.equal(answer.status, 503, `${path} answers 503 while shutting down`)
    t.same(JSON.parse(answer.body), { status: 'unavailable', reason: 'shutting down' })
  }
  t.equal(run.child.exitCode, null, 'still running: the request in flight holds the shutdown')

  held[0].end('done')
  t.equal((await inFlight).body, 'done', 'the request in flight finished')
  t.same(await deadline(run.exited, startDeadline, 'goload to exit'), [0, null])
  await t.rejects(probe('/healthz'), 'nothing answers once goload has exited')
})
