// Open sockets outlive what changes around them: a config reload leaves them alone (the listener's server hands
// upgrades to the current app), and a backend removed keeps its sockets until they close or closeTimeout passes.
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import { request } from './helpers/client.js'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { pendingCounts, settled, startBalancer, waitFor } from './helpers/servers.js'
import { closed, nextMessage, openWs, startWsBackend, type WsBackend } from './helpers/ws.js'

function config (port: number, backends: WsBackend[], extra = ''): string {
  return `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backends.map((b) => b.url).join(', ')}]\n${extra}`
}

t.test('goload: a reload keeps an open socket working and counted; a backend it removes is ended after closeTimeout', async (t) => {
  const a = await startWsBackend(t, 'a')
  const b = await startWsBackend(t, 'b')
  const port = await freePort()
  const extra = '    closeTimeout: 300\n'
  const file = await configFile(t, config(port, [a], extra))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const url = `http://127.0.0.1:${port}`
  const ws = await openWs(t, url + '/live')
  t.equal(a.sockets.length, 1)

  await writeFile(file, config(port, [a, b], extra))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/config reloaded/, 'the first reload')
  ws.send('after reload')
  t.equal((await nextMessage(ws)).data.toString(), 'after reload', 'the socket opened before the reload still works')
  t.equal((await request(url + '/')).body, 'Hello from b', 'a still counts its socket: the request went to b')
  const second = await openWs(t, url + '/live')
  second.send('who')
  t.equal((await nextMessage(second)).data.toString(), 'b', 'a new upgrade goes through the new app, to the backend without a socket')
  second.close()

  await writeFile(file, config(port, [b], extra))
  const wsClosed = closed(ws)
  const removedAt = Date.now()
  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => (run.logs().match(/config reloaded/g) ?? []).length === 2, 'the second reload')
  ws.send('still here')
  t.equal((await nextMessage(ws)).data.toString(), 'still here', 'the removed backend keeps its socket for now')
  t.equal((await wsClosed).code, 1006, 'then it is ended')
  t.ok(Date.now() - removedAt >= 250, 'after closeTimeout')
})

t.test('remove() keeps the backend\'s sockets until closeTimeout, then ends them and the backend leaves', async (t) => {
  const a = await startWsBackend(t, 'a')
  const balancer = await startBalancer(t, { backends: [a.url], closeTimeout: 200 })
  const ws = await openWs(t, balancer.url + '/')
  const wsClosed = closed(ws)
  let removed = false
  const removal = balancer.app.goload.remove(a.url).then(() => { removed = true })
  ws.send('still here')
  t.equal((await nextMessage(ws)).data.toString(), 'still here')
  t.notOk(removed, 'the backend waits for its open socket')
  t.same(pendingCounts(balancer.app), [1])
  t.equal((await wsClosed).code, 1006)
  await removal
  t.same(balancer.app.goload.stats().backends, [], 'it left once its socket was ended')
  await settled(balancer.app)
})

t.test('goload: a pool a reload retires ends its open sockets after closeTimeout, and a later SIGTERM does not wait for them', async (t) => {
  const a = await startWsBackend(t, 'a')
  const port = await freePort()
  const file = await configFile(t, config(port, [a], '    closeTimeout: 300\n'))
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const ws = await openWs(t, `http://127.0.0.1:${port}/live`)
  const wsClosed = closed(ws)
  // Other settings: a new pool, and the old one retired with its socket.
  await writeFile(file, config(port, [a], '    closeTimeout: 300\n    timeout: 30000\n'))
  const retiredAt = Date.now()
  run.signals.emit('SIGHUP', 'SIGHUP')
  await run.logged(/config reloaded/, 'the reload')
  ws.send('still here')
  t.equal((await nextMessage(ws)).data.toString(), 'still here', 'the socket works until then')
  t.equal((await wsClosed).code, 1006, 'then it is ended')
  t.ok(Date.now() - retiredAt >= 250, 'after closeTimeout')
  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await run.code, 0)
})
