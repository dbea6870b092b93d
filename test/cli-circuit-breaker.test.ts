// circuitBreaker from a config file, through the built goload command: the pool opens on a failing backend and
// answers 503 FST_GOLOAD_CIRCUIT_OPEN; the admin's /metrics and /stats (what the status page draws) show the state,
// the log its changes and the access line its code; once the backend recovers, a probe closes it.
import t from 'tap'
import { configFile, freePort, spawnGoload, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { parseExposition, sample } from './helpers/prometheus.js'
import { startBackend, waitFor } from './helpers/servers.js'

const token = 'a-token-of-16-chars-or-more'

t.test('a failing backend opens the circuit of a pool from a config file; metrics, /stats and logs show it; it closes again', async (t) => {
  let failing = true
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.statusCode = failing ? 500 : 200
    res.end(failing ? 'failing' : 'ok')
  })
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = await configFile(t, `
listeners:
  - port: ${port}
    host: 127.0.0.1
    routes: [{ pool: api }]
pools:
  api:
    backends: [${backend.url}]
    passiveHealth: false
    circuitBreaker: { minRequests: 2, openFor: 300, halfOpenRequests: 1 }
admin:
  port: ${adminPort}
  token: ${token}
`)
  const run = spawnGoload(t, ['--config', file])
  await waitFor(() => /goload listening/.test(run.stdout), 'goload to listen', startDeadline)
  const url = `http://127.0.0.1:${port}/`
  const admin = async (path: string) => await request(`http://127.0.0.1:${adminPort}${path}`, { headers: { authorization: `Bearer ${token}` }, agent: false })
  const circuit = async () => JSON.parse((await admin('/stats')).body).pools[0].circuit
  const state = async () => sample(parseExposition((await admin('/metrics')).body), 'goload_pool_circuit_state', { pool: 'api' })
  const lines = () => run.stdout.split('\n').filter((line) => line.startsWith('{')).map((line) => JSON.parse(line))

  t.match(await circuit(), { state: 'closed', retryAfter: null })
  t.equal(await state(), 0)
  t.equal((await request(url, { agent: false })).status, 500)
  t.equal((await request(url, { agent: false })).status, 500)
  const refused = await request(url, { agent: false })
  t.equal(refused.status, 503)
  t.equal(JSON.parse(refused.body).code, 'FST_GOLOAD_CIRCUIT_OPEN')
  t.equal(refused.headers['retry-after'], '1')
  t.equal(backend.received, 2, 'the backend saw only the two that failed')
  t.equal(await state(), 1, 'goload_pool_circuit_state 1: open')
  const stats = JSON.parse((await admin('/stats')).body).pools[0]
  t.match(stats.circuit, { state: 'open', transitions: { open: 1 } })
  t.equal(stats.shed.circuit_open, 1)
  await waitFor(() => lines().some((line) => line.circuit === 'open' && line.pool === 'api'), 'the log line of the opening')
  await waitFor(() => lines().some((line) => line.goload?.code === 'FST_GOLOAD_CIRCUIT_OPEN' && line.res?.statusCode === 503), 'the access line of the refused request')

  failing = false
  await waitFor(() => lines().some((line) => line.circuit === 'half-open'), 'the circuit to half-open', 10_000)
  t.equal(await state(), 2, 'goload_pool_circuit_state 2: half-open')
  t.equal((await request(url, { agent: false })).status, 200, 'the probe goes through')
  t.match(await circuit(), { state: 'closed', transitions: { open: 1, 'half-open': 1, closed: 1 } }, 'and closes it')
  const metrics = parseExposition((await admin('/metrics')).body)
  t.equal(sample(metrics, 'goload_pool_circuit_transitions_total', { pool: 'api', to: 'closed' }), 1)
  t.equal(sample(metrics, 'goload_pool_shed_total', { pool: 'api', reason: 'circuit_open' }), 1)
})
