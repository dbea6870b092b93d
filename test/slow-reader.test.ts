import type net from 'node:net'
import t from 'tap'
import { connect, describeRun, sequentialGets, sleep } from './helpers/raw.js'
import { pendingCounts, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

const bigSize = 20 * 1024 * 1024
const slowReaders = 50

t.test('50 clients that read nothing of 20 MB responses do not starve others: small GETs are never held behind them, pending back to 0 once they go', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 'z')
  const bigResponses = { started: 0, open: 0 }
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    if (req.url !== '/big') {
      res.end('small')
      return
    }
    bigResponses.started++
    bigResponses.open++
    res.once('close', () => { bigResponses.open-- })
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bigSize })
    // Written as the reader takes it, never more than a socket's worth ahead.
    let written = 0
    const pump = () => {
      while (written < bigSize && !res.destroyed) {
        written += chunk.length
        if (!res.write(chunk)) {
          res.once('drain', pump)
          return
        }
      }
      if (written >= bigSize) res.end()
    }
    pump()
  })
  const { app, port, url } = await startBalancer(t, { backends: [backend.url] })

  const readers: net.Socket[] = []
  for (let i = 0; i < slowReaders; i++) {
    const socket = await connect(t, port)
    socket.on('error', () => {})
    // Reads nothing: the kernel's buffers fill and stay full.
    socket.pause()
    socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n')
    readers.push(socket)
  }
  await waitFor(() => bigResponses.started === slowReaders, `the backend to be serving all ${slowReaders} large responses`, 10_000)
  // Let the buffers between backend, balancer and readers fill up.
  await sleep(500)

  const run = await sequentialGets(url, '/small', { minCount: 100, minMs: 3000 })
  t.same(run.failures, [], `every small GET answered 200 beside the stalled readers: ${describeRun(run)}`)
  t.ok(run.latencies.length >= 100, `at least 100 GETs measured: ${describeRun(run)}`)
  // A small GET held behind the stalled readers would wait until they left; speed itself is the bench's.
  t.ok(Math.max(...run.latencies) < 5000, `no small GET was held behind the stalled readers: ${describeRun(run)}`)

  for (const socket of readers) socket.destroy()
  await settled(app)
  t.same(pendingCounts(app), [0], 'pending is 0 once the slow readers are gone')
  await waitFor(() => bigResponses.open === 0, 'the backend to see every large response cut', 5000)
  t.pass('the upstream responses of the slow readers were torn down')
})
