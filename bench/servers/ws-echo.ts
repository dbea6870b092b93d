// A WebSocket echo backend (the `ws` package) that also answers plain requests with 200, so a balancer's readiness
// request and health checks see it up. No compression: the bench measures the tunnel, not deflate.
// node --import tsx bench/servers/ws-echo.ts
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { backlog, onStop, ready } from './child.js'

const server = http.createServer((request, response) => {
  request.resume()
  response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '3' }).end('ok\n')
})
server.keepAliveTimeout = 120_000
const sockets = new WebSocketServer({ server, perMessageDeflate: false, maxPayload: 64 * 1024 * 1024 })
sockets.on('connection', (socket) => {
  socket.on('message', (data, isBinary) => { socket.send(data, { binary: isBinary }) })
})
onStop(() => new Promise((resolve) => {
  for (const socket of sockets.clients) socket.terminate()
  server.close(resolve)
  server.closeAllConnections()
}))
await new Promise<void>((resolve, reject) => {
  server.once('error', reject).listen({ port: 0, host: '127.0.0.1', backlog }, () => { resolve() })
})
ready([(server.address() as AddressInfo).port])
