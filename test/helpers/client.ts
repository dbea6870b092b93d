import http from 'node:http'
import net from 'node:net'

export interface Answer {
  status: number
  headers: http.IncomingHttpHeaders
  body: string
}

// A fresh agent without keep-alive, so a test's connections end with its requests.
const agent = new http.Agent({ keepAlive: false })

// How long a test waits for an answer before it fails: far beyond any answer a test expects, far below tap's timeout.
const answerDeadline = 20_000

/** One real HTTP/1.1 request; resolves with the whole answer, rejects without one within `deadline` ms. */
export function request (url: string, { body, deadline = answerDeadline, ...options }: Omit<http.RequestOptions, 'headers'> & { headers?: http.OutgoingHttpHeaders, body?: string | Buffer, deadline?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...options.headers }
    // Node's client frames a DELETE or OPTIONS body only when told its length.
    if (body !== undefined && headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(body)
    const fail = (error: Error) => {
      clearTimeout(timer)
      reject(error)
    }
    const req = http.request(url, { agent, ...options, headers }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (chunk: Buffer) => chunks.push(chunk))
      res.on('end', () => {
        clearTimeout(timer)
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() })
      })
      res.on('error', fail)
    })
    const timer = setTimeout(() => { req.destroy(new Error(`no whole answer within ${deadline} ms to ${options.method ?? 'GET'} ${url}`)) }, deadline)
    req.on('error', fail)
    req.end(body)
  })
}

/**
 * Writes raw bytes on a new connection and resolves with everything read until the server closes it; rejects if it
 * is still open after `deadline` ms.
 */
export function rawRequest (port: number, payload: string, deadline = answerDeadline): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => socket.write(payload))
    const timer = setTimeout(() => { socket.destroy(new Error(`the connection to port ${port} still open after ${deadline} ms`)) }, deadline)
    let received = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => { received += chunk })
    socket.on('error', (error) => {
      clearTimeout(timer)
      reject(error)
    })
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(received)
    })
  })
}

/** `total` GETs of `url`, `concurrency` at a time (Gateway API's weight test: 500, 10); counts the 200 answers by body. */
export async function countBodies (url: string, total = 500, concurrency = 10): Promise<Map<string, number>> {
  const counts = new Map<string, number>()
  let sent = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (sent < total) {
      sent++
      const { status, body } = await request(url)
      if (status !== 200) throw new Error(`answered ${status}: ${body}`)
      counts.set(body, (counts.get(body) ?? 0) + 1)
    }
  }))
  return counts
}
