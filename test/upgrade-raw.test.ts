// Any HTTP/1.1 Upgrade, not only WebSocket, checked on the wire: the bytes the client sends with and after its
// request reach the backend once it has switched, and the bytes the backend sends with its 101 reach the client.
import type net from 'node:net'
import t from 'tap'
import { connect, startRawBackend } from './helpers/raw.js'
import { pendingCounts, settled, startBalancer, waitFor } from './helpers/servers.js'

t.test('an x-raw upgrade: heads both ways, then bytes unread both ways, ends propagated', async (t) => {
  let backendSocket: net.Socket | undefined
  let request = ''
  let received = ''
  let headDone = false
  const backend = await startRawBackend(t, (socket) => {
    backendSocket = socket
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      if (!headDone) {
        request += chunk
        const end = request.indexOf('\r\n\r\n')
        if (end !== -1) {
          headDone = true
          received += request.slice(end + 4)
          request = request.slice(0, end)
        }
      } else {
        received += chunk
      }
    })
  })
  const balancer = await startBalancer(t, { backends: [backend.url] })
  const client = await connect(t, balancer.port)
  let answer = ''
  client.setEncoding('latin1').on('data', (chunk: string) => { answer += chunk })
  client.write('GET /raw HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x-raw/1\r\nX-Id: 7\r\n\r\nE1')
  await waitFor(() => request !== '', 'the upgrade request at the backend')
  t.match(request, /^GET \/raw HTTP\/1\.1\r\n/)
  t.match(request, /\r\nconnection: upgrade\r\n/i)
  t.match(request, /\r\nupgrade: x-raw\/1(\r\n|$)/i)
  t.match(request, /\r\nx-id: 7\r\n/i)
  // Sent before the backend has answered: kept for it.
  client.write('E2')
  await new Promise((resolve) => setImmediate(resolve))
  backendSocket!.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-raw/1\r\nConnection: Upgrade\r\nX-Backend: raw\r\n\r\nHELLO')
  await waitFor(() => answer.endsWith('HELLO'), 'the 101 and the backend\'s first bytes')
  t.equal(answer, 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-raw/1\r\nConnection: Upgrade\r\nX-Backend: raw\r\n\r\nHELLO')
  await waitFor(() => received === 'E1E2', 'the client\'s bytes at the backend')
  client.write('MORE')
  await waitFor(() => received === 'E1E2MORE', 'bytes after the switch')
  t.same(pendingCounts(balancer.app), [1])

  // The backend ends its side: the client's side is ended too, and the count released once both are closed.
  const clientEnded = new Promise((resolve) => client.once('end', resolve))
  backendSocket!.end()
  await clientEnded
  client.end()
  await settled(balancer.app)
  t.equal(balancer.app.goload.stats().backends[0].upgraded, 0)
})
