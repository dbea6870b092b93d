// Security regression: a client that sends a whole request and then resets. The reset arrives with the request, so
// by the time the request is parsed the socket no longer has a peer to ask for (getpeername fails): the address has
// to have been read when the connection was accepted, or the backend gets `X-Forwarded-For: 10.0.0.1, ` and reads
// 10.0.0.1 as the client. Over a warm upstream connection the request is forwarded at once, before the reset is seen.
import t from 'tap'
import type { Test } from 'tap'
import { request } from './helpers/client.js'
import { capturedLogs, type LogLine } from './helpers/logs.js'
import { connect, deadline } from './helpers/raw.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

const tries = 20

async function resetAfterRequests (t: Test, clientHeader: string): Promise<{ forwardedFor: string[], accessAddresses: unknown[] }> {
  const forwardedFor: string[] = []
  const backend = await startBackend(t, (req, res) => {
    if (req.url !== '/warm') forwardedFor.push(String(req.headers['x-forwarded-for']))
    req.resume()
    res.end('ok')
  })
  const logs = capturedLogs('info')
  const { app, url, port } = await startBalancer(t, { backends: [backend.url] }, { logger: logs.logger })
  for (let i = 0; i < tries; i++) {
    // A keep-alive connection to the backend, so the request goes out as soon as it is routed (the abort of the one
    // before ended the last connection).
    t.equal((await request(url + '/warm')).status, 200)
    const socket = await connect(t, port)
    socket.on('error', () => {})
    const closed = new Promise((resolve) => socket.once('close', resolve))
    socket.write(`GET /reset-${i} HTTP/1.1\r\nHost: x\r\n${clientHeader}\r\n`)
    socket.resetAndDestroy()
    await deadline(closed, 5000, 'the reset socket to close')
    // Its exchange ended (forwarded or dropped) before the next one starts.
    // Its exchange ended, forwarded or dropped with its client, before the next one starts: waiting for it here also
    // lets the next warm request find the upstream connection free (about one try in two is forwarded).
    await waitFor(() => accessLines(logs.lines).length === 2 * (i + 1), 'the access line of the reset request')
  }
  await settled(app)
  const resets = accessLines(logs.lines).filter((line) => line.req.url !== '/warm')
  return { forwardedFor, accessAddresses: resets.map((line) => line.req.remoteAddress) }
}

function accessLines (lines: LogLine[]): LogLine[] {
  return lines.filter((line) => line.msg === 'goload: access')
}

t.test('a client that resets after its request with X-Forwarded-For: 10.0.0.1: the backend gets 10.0.0.1, 127.0.0.1', async (t) => {
  const { forwardedFor, accessAddresses } = await resetAfterRequests(t, 'X-Forwarded-For: 10.0.0.1\r\n')
  t.ok(forwardedFor.length > 0, `some of the ${tries} requests reached the backend (${forwardedFor.length})`)
  t.same(forwardedFor, forwardedFor.map(() => '10.0.0.1, 127.0.0.1'), 'the last entry is always the client\'s address')
  t.same(accessAddresses, accessAddresses.map(() => '127.0.0.1'), 'the access line names the client too')
})

t.test('a client that resets after its request without X-Forwarded-For: the backend gets 127.0.0.1', async (t) => {
  const { forwardedFor, accessAddresses } = await resetAfterRequests(t, '')
  t.ok(forwardedFor.length > 0, `some of the ${tries} requests reached the backend (${forwardedFor.length})`)
  t.same(forwardedFor, forwardedFor.map(() => '127.0.0.1'))
  t.same(accessAddresses, accessAddresses.map(() => '127.0.0.1'))
})
