// The pool's circuit breaker (issue 18, part 4) against real backends: it opens on the share of failed requests,
// answers 503 FST_GOLOAD_CIRCUIT_OPEN with Retry-After without the backend seeing anything, half-opens after openFor
// (waited for on its log line), re-opens on a failed probe, refuses requests beyond the probes, and closes once the
// probes succeed. Its state shows in the metrics and the access line's code.
import type http from 'node:http'
import Fastify from 'fastify'
import t from 'tap'
import goload from '../lib/index.js'
import type { Registry as GoloadRegistry } from '../lib/registry.js'
import { request, type Answer } from './helpers/client.js'
import { capturedLogs, type LogLine } from './helpers/logs.js'
import { parseExposition, sample } from './helpers/prometheus.js'
import { deadUrl, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

/** A backend that answers 500 while `failing`, else 200; while `holding`, it keeps requests until release(). */
async function switchable (t: Parameters<typeof startBackend>[0]) {
  const held: http.ServerResponse[] = []
  const control = { failing: true, holding: false, release: () => { for (const response of held.splice(0)) response.end('ok') } }
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    if (control.holding) held.push(res)
    else if (control.failing) { res.statusCode = 500; res.end('failing') } else res.end('ok')
  })
  return Object.assign(control, { backend })
}

const circuitLines = (lines: LogLine[], state: string) => lines.filter((line) => line.circuit === state)

t.test('opens on the share of 5xx, answers 503 without the backend, half-opens, re-opens on a failed probe, closes on good ones', async (t) => {
  const upstream = await switchable(t)
  const { backend } = upstream
  const logs = capturedLogs('info')
  const { app, url } = await startBalancer(t, {
    backends: [backend.url],
    name: 'api',
    metrics: true,
    passiveHealth: false,
    circuitBreaker: { errorRatio: 0.5, window: 60_000, minRequests: 4, openFor: 200, halfOpenRequests: 2 }
  }, { logger: logs.logger })
  const state = async () => sample(parseExposition(await app.goload.metrics!.metrics()), 'goload_pool_circuit_state', { pool: 'api' })

  t.equal(await state(), 0, 'closed at first')
  for (let i = 0; i < 3; i++) t.equal((await request(url)).status, 500, 'the backend\'s 500 is passed on')
  t.equal(await state(), 0, 'three failures of three: below minRequests, still closed')
  t.equal((await request(url)).status, 500)
  t.equal(await state(), 1, 'the fourth failure opens it')
  t.equal(circuitLines(logs.lines, 'open').length, 1, 'one log line says it opened')
  t.match(circuitLines(logs.lines, 'open')[0], { level: 40, pool: 'api', failed: 4, requests: 4, ms: 200 })

  const refused = await request(url)
  t.equal(refused.status, 503)
  t.equal(JSON.parse(refused.body).code, 'FST_GOLOAD_CIRCUIT_OPEN')
  t.equal(refused.headers['retry-after'], '1', 'Retry-After: what is left of openFor, rounded up to a second')
  t.equal(backend.received, 4, 'the open circuit never touches the backend')
  const access = logs.lines.filter((line) => line.msg === 'goload: access').at(-1)!
  t.match(access, { res: { statusCode: 503 }, goload: { pool: 'api', code: 'FST_GOLOAD_CIRCUIT_OPEN' } }, 'the access line carries the code')
  t.equal(access.goload.backend, undefined, 'and no backend')

  await waitFor(() => circuitLines(logs.lines, 'half-open').length === 1, 'the circuit to half-open')
  t.equal(await state(), 2, 'half-open after openFor')
  t.equal((await request(url)).status, 500, 'a probe goes through, and fails')
  t.equal(backend.received, 5)
  t.equal(await state(), 1, 'a failed probe opens it again')
  t.match(circuitLines(logs.lines, 'open')[1], { probeFailed: true })
  t.equal((await request(url)).status, 503, 'and it answers 503 again')
  t.equal(backend.received, 5)

  await waitFor(() => circuitLines(logs.lines, 'half-open').length === 2, 'the circuit to half-open again')
  upstream.failing = false
  upstream.holding = true
  const probes = [request(url), request(url)]
  await waitFor(() => backend.active === 2, 'both probes to reach the backend')
  const beyond = await request(url)
  t.equal(beyond.status, 503, 'half-open, a request beyond halfOpenRequests is answered as open')
  t.equal(JSON.parse(beyond.body).code, 'FST_GOLOAD_CIRCUIT_OPEN')
  t.equal(backend.received, 7, 'without reaching the backend')
  upstream.holding = false
  upstream.release()
  t.same((await Promise.all(probes)).map((answer: Answer) => answer.status), [200, 200])
  await waitFor(() => circuitLines(logs.lines, 'closed').length === 1, 'the circuit to close')
  t.equal(await state(), 0, 'both probes succeeded: closed')
  t.equal((await request(url)).status, 200, 'traffic flows again')

  const metrics = parseExposition(await app.goload.metrics!.metrics())
  t.equal(sample(metrics, 'goload_pool_circuit_transitions_total', { pool: 'api', to: 'open' }), 2)
  t.equal(sample(metrics, 'goload_pool_circuit_transitions_total', { pool: 'api', to: 'half-open' }), 2)
  t.equal(sample(metrics, 'goload_pool_circuit_transitions_total', { pool: 'api', to: 'closed' }), 1)
  t.equal(sample(metrics, 'goload_pool_shed_total', { pool: 'api', reason: 'circuit_open' }), 3)
  await settled(app)
})

t.test('the share decides: failures below errorRatio of the window keep it closed', async (t) => {
  const upstream = await switchable(t)
  upstream.failing = false
  const { app, url } = await startBalancer(t, {
    backends: [upstream.backend.url],
    passiveHealth: false,
    circuitBreaker: { errorRatio: 0.5, minRequests: 4, openFor: 60_000 }
  })
  const circuit = () => (app.goload as GoloadRegistry).entries()[0].forwarder!.circuit!.stateName
  for (let i = 0; i < 3; i++) await request(url)
  upstream.failing = true
  await request(url)
  t.equal(circuit(), 'closed', '1 failure in 4')
  await request(url)
  t.equal(circuit(), 'closed', '2 in 5')
  await request(url)
  t.equal(circuit(), 'open', '3 in 6 reaches errorRatio 0.5')
  await settled(app)
})

t.test('the window slides: failures older than window no longer count', async (t) => {
  const upstream = await switchable(t)
  const { app, url } = await startBalancer(t, {
    backends: [upstream.backend.url],
    passiveHealth: false,
    circuitBreaker: { errorRatio: 0.6, window: 200, minRequests: 3, openFor: 60_000 }
  })
  const circuit = () => (app.goload as GoloadRegistry).entries()[0].forwarder!.circuit!.stateName
  await request(url)
  await request(url)
  t.equal(circuit(), 'closed', '2 failures: under minRequests')
  // Time itself is what is tested: past window (and its last bucket), the two failures have left it. Waiting longer
  // than this on a loaded machine only makes that more so.
  await new Promise((resolve) => setTimeout(resolve, 300))
  upstream.failing = false
  await request(url)
  await request(url)
  upstream.failing = true
  await request(url)
  t.equal(circuit(), 'closed', '1 failure of the 3 in the window; with the old two it would have been 3 of 5, enough to open')
  await settled(app)
})

t.test('the balancer\'s own 502 counts as a failure: a refusing backend opens it', async (t) => {
  const { app, url } = await startBalancer(t, {
    backends: [await deadUrl()],
    retries: 0,
    passiveHealth: false,
    circuitBreaker: { minRequests: 2, openFor: 60_000 }
  })
  t.equal((await request(url)).status, 502)
  t.equal((await request(url)).status, 502)
  const refused = await request(url)
  t.equal(refused.status, 503)
  t.equal(JSON.parse(refused.body).code, 'FST_GOLOAD_CIRCUIT_OPEN')
  t.equal(refused.headers['retry-after'], '60', 'the whole of openFor is left')
  await settled(app)
})

t.test('bad values are refused, naming the key', async (t) => {
  const backends = ['http://127.0.0.1:1']
  for (const [circuitBreaker, key] of [
    [{ errorRatio: 0 }, 'circuitBreaker.errorRatio'],
    [{ errorRatio: 1.5 }, 'circuitBreaker.errorRatio'],
    [{ window: 0 }, 'circuitBreaker.window'],
    [{ halfOpenRequests: 1.5 }, 'circuitBreaker.halfOpenRequests'],
    [{ openFor: -1 }, 'circuitBreaker.openFor'],
    [{ minRequest: 3 }, 'minRequest']
  ] as const) {
    await t.rejects(async () => { await Fastify().register(goload, { backends, circuitBreaker: circuitBreaker as never }) }, { code: 'FST_GOLOAD_INVALID_OPTION', message: new RegExp(key.replace('.', '\\.')) }, key)
  }
  const app = Fastify()
  await t.resolves(async () => { await app.register(goload, { backends, circuitBreaker: { errorRatio: 1 } }) }, 'errorRatio 1: open only when every request fails')
  await app.close()
})
