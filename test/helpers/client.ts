import http from 'node:http'
import net from 'node:net'

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

// A fresh agent without keep-alive, so a test's connections end with its requests.
const agent = new http.Agent({ keepAlive: false })

/** One real HTTP/1.1 request; resolves with the whole answer. */
export function request (url: string, options: Omit<http.RequestOptions, 'headers'> & { headers?: http.OutgoingHttpHeaders, body?: string | Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...options.headers }
    // Node's client frames a DELETE or OPTIONS body only when told its length.
    if (options.body !== undefined && headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(options.body)
    const req = http.request(url, { agent, ...options, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => { resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }) })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(options.body)
  })
}

/** Writes raw bytes on a new connection and resolves with everything read until the server closes it. */
export function rawRequest (port: number, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(payload))
    let received = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { received += chunk })
    socket.on('error', reject)
    socket.on('close', () => resolve(received))
  })
}
