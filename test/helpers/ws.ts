import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import WebSocket, { WebSocketServer } from 'ws'
import { closeServer } from './servers.js'
import { deadline } from './raw.js'

export interface WsBackend {
  url: string
  server: http.Server
  wss: WebSocketServer
  /** The server side of every WebSocket it accepted. */
  sockets: WebSocket[]
  /** Plain HTTP requests it answered. */
  requests: number
}

/**
 * A backend that echoes WebSocket messages (text as text, binary as binary) and closes with the code it is sent as
 * the text `close:<code>`; plain requests get `Hello from <id>`.
 */
export async function startWsBackend (t: Test, id: string, handleProtocols?: (protocols: Set<string>) => string | false): Promise<WsBackend> {
  const server = http.createServer((request, response) => {
    backend.requests++
    request.resume()
    request.on('end', () => { response.end(`Hello from ${id}`) })
  })
  const wss = new WebSocketServer({ server, handleProtocols })
  const backend: WsBackend = { url: '', server, wss, sockets: [], requests: 0 }
  wss.on('connection', (socket) => {
    backend.sockets.push(socket)
    socket.on('error', () => {})
    socket.on('message', (data, isBinary) => {
      const text = isBinary ? '' : data.toString()
      if (text.startsWith('close:')) socket.close(Number(text.slice(6)), 'bye')
      else if (text === 'who') socket.send(id)
      else socket.send(data, { binary: isBinary })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  backend.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(async () => {
    for (const socket of backend.sockets) socket.terminate()
    await closeServer(server)
  })
  return backend
}

/** A WebSocket client, open, terminated when the test ends. */
export async function openWs (t: Test, url: string, protocols?: string[]): Promise<WebSocket> {
  const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols)
  ws.on('error', () => {})
  t.teardown(() => { ws.terminate() })
  await deadline(new Promise((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('unexpected-response', (_request, response) => { reject(new Error(`unexpected response ${response.statusCode}`)) })
    ws.once('error', reject)
  }), 5000, 'the WebSocket to open')
  return ws
}

/** The next message, and whether it was binary. */
export function nextMessage (ws: WebSocket): Promise<{ data: Buffer, isBinary: boolean }> {
  return deadline(new Promise((resolve) => {
    ws.once('message', (data: Buffer, isBinary: boolean) => { resolve({ data, isBinary }) })
  }), 5000, 'a WebSocket message')
}

/** The close code and reason the client got. */
export function closed (ws: WebSocket): Promise<{ code: number, reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve({ code: -1, reason: 'already closed' })
  return deadline(new Promise((resolve) => {
    ws.once('close', (code: number, reason: Buffer) => { resolve({ code, reason: reason.toString() }) })
  }), 5000, 'the WebSocket to close')
}
