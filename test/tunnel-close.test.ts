// How an open tunnel ends on goload's side: tunnelIdleTimeout closes one that carried no byte either way for that
// long, and every tunnel that closed, whichever way, leaves the pool's set of open tunnels.
import t from 'tap'
import Fastify from 'fastify'
import { loadConfig } from '../lib/config/load.js'
import goload from '../lib/index.js'
import type { Registry } from '../lib/registry.js'
import { configFile } from './helpers/cli.js'
import { capturedLogs } from './helpers/logs.js'
import { settled, startBalancer, waitFor } from './helpers/servers.js'
import { closed, nextMessage, openWs, startWsBackend } from './helpers/ws.js'

t.test('tunnelIdleTimeout: a tunnel with traffic stays open; one idle that long is closed both ways, released and logged', async (t) => {
  const backend = await startWsBackend(t, 'a')
  const logs = capturedLogs('info')
  const balancer = await startBalancer(t, { backends: [backend.url], tunnelIdleTimeout: 300 }, { logger: logs.logger })
  const ws = await openWs(t, balancer.url + '/')
  // Messages every 100 ms for a second: three times the timeout, never idle that long.
  let quiet = 0
  for (let i = 0; i < 10; i++) {
    if (i > 0) await new Promise((resolve) => setTimeout(resolve, 100))
    ws.send(`m${i}`)
    t.equal((await nextMessage(ws)).data.toString(), `m${i}`)
    quiet = performance.now()
  }
  t.equal(balancer.app.goload.stats().backends[0].upgraded, 1, 'still open after 1 s of traffic')
  const backendSide = backend.sockets[0]
  const { code } = await closed(ws)
  const after = performance.now() - quiet
  t.equal(code, 1006, 'closed without a close frame: goload does not parse frames')
  t.ok(after >= 250 && after < 3000, `closed ${Math.round(after)} ms after the last byte`)
  await waitFor(() => backendSide.readyState === backendSide.CLOSED, 'the backend\'s side to close')
  await settled(balancer.app)
  t.equal(balancer.app.goload.stats().backends[0].upgraded, 0)
  await waitFor(() => logs.lines.some((line) => line.msg === 'goload: access'), 'the access line')
  t.match(logs.lines.find((line) => line.msg === 'goload: access'), { res: { statusCode: 101 }, goload: { closed: 'idle' } })
})

t.test('tunnelIdleTimeout is a whole number of ms a Node timer can hold', async (t) => {
  for (const value of [-1, 1.5, 2 ** 31, '60000']) {
    await t.rejects(async () => { await Fastify().register(goload, { backends: ['http://127.0.0.1:1'], tunnelIdleTimeout: value as number }).ready() }, { code: 'FST_GOLOAD_INVALID_OPTION', message: /tunnelIdleTimeout must be/ }, JSON.stringify(value))
  }
})

t.test('tunnelIdleTimeout in a config file: a pool key, checked like the option', async (t) => {
  const file = (value: string) => configFile(t, `listeners:\n  - port: 8080\n    routes:\n      - pool: api\npools:\n  api:\n    backends: [http://127.0.0.1:3001]\n    tunnelIdleTimeout: ${value}\n`)
  t.equal((await loadConfig(await file('60000'))).pools.api.tunnelIdleTimeout, 60000)
  await t.rejects(loadConfig(await file('-1')), { message: /:8: pools\.api\.tunnelIdleTimeout: must be a whole number of ms up to 2147483647 \(24\.8 days\), got -1/ })
})

t.test('every tunnel that closes leaves the pool\'s set of open tunnels', async (t) => {
  const backend = await startWsBackend(t, 'a')
  const balancer = await startBalancer(t, { backends: [backend.url] })
  const { tunnels } = (balancer.app.goload as Registry).forwarder('default')
  const sockets = await Promise.all([1, 2, 3].map(() => openWs(t, balancer.url + '/')))
  t.equal(tunnels.size, 3)
  // Closed by the client, by the backend, and cut.
  sockets[0].close()
  backend.sockets[1].close()
  sockets[2].terminate()
  await settled(balancer.app)
  t.equal(tunnels.size, 0)
})
