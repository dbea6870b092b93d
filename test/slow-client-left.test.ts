// A client that leaves in the middle of its request body is forgotten by the slow-client watch when its exchange
// ends: it is never cut later as too slow (no 408 attempt, no 'client too slow' line for a client already gone), and
// the watch does not keep its exchange. The second client, whose body stalls, is what the test waits on: the watch
// sweeps every body at once, so by the time the stalled one is cut, a body it still held would have been cut too.
import t from 'tap'
import type { Registry } from '../lib/registry.js'
import { capturedLogs, type LogLine } from './helpers/logs.js'
import { connect, ResponseReader } from './helpers/raw.js'
import { pendingCounts, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

const tooSlow = (line: LogLine) => line.msg === 'goload: client too slow with its request body, cut'

for (const { name, length, sent } of [
  { name: 'a small body, read ahead before a backend is chosen', length: 100, sent: 10 },
  { name: 'a large body, streamed to its backend', length: 200_000, sent: 70_000 }
]) {
  t.test(`${name}: the client leaves after ${sent} of ${length} bytes; only the client still there is cut as too slow`, async (t) => {
    const backend = await startBackend(t, (req, res) => {
      req.on('error', () => {})
      req.resume()
      req.on('end', () => { res.end('ok') })
    })
    const logs = capturedLogs('info')
    const { app, port } = await startBalancer(t, { backends: [backend.url], clientTimeout: 300, accessLog: true }, { logger: logs.logger })

    const leaving = await connect(t, port)
    leaving.write(`POST /left HTTP/1.1\r\nHost: x\r\nContent-Length: ${length}\r\n\r\n`)
    leaving.write(Buffer.alloc(sent, 'a'))
    if (length > 65_536) await waitFor(() => backend.received === 1, 'the large body to stream to the backend')
    else await waitFor(() => logs.lines.some((line) => line.req?.url === '/left'), 'the balancer to take the request')
    leaving.destroy()
    await waitFor(() => logs.lines.some((line) => line.msg === 'goload: access' && line.req.url === '/left'), 'the exchange of the client that left to end')
    const { watch } = (app.goload as Registry).forwarder(app.goload.names()[0])
    t.equal(watch.watching, 0, 'the watch let go of the body whose exchange ended')

    const staying = await connect(t, port)
    const reader = new ResponseReader(staying)
    staying.write('POST /stalls HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n' + 'b'.repeat(20))
    t.equal((await reader.next(5000)).status, 408, 'the client whose body stalls is cut')

    t.same(logs.lines.filter(tooSlow).map((line) => line.received), [20], 'one client cut as too slow: the one still there')
    await settled(app)
    t.same(pendingCounts(app), [0])
  })
}
