import net from 'node:net'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { Client } from 'undici'

/** A raw TCP connection to 127.0.0.1:port, destroyed when the test ends if it is still open. */
export function connect (t: Test, port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket))
    socket.on('error', reject)
    t.teardown(() => { socket.destroy() })
  })
}

/**
 * How long a child process (goload, an example) may take to start or stop before a test says it failed: one under
 * tsx, beside five other test files on two cores, has taken over 15 s in CI. Only a failing test waits this long.
 */
export const startDeadline = 60_000

/** Rejects with `what` if the promise has not settled within `ms`. */
export function deadline<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms)
  })
  return Promise.race([promise, expired]).finally(() => clearTimeout(timer))
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export interface RawResponse {
  status: number
  /** The status line and header lines exactly as received, without the blank line. */
  head: string
  /** Header values by lower-case name, every line of a repeated header kept. */
  headers: Record<string, string[]>
  body: Buffer
}

/**
 * Reads HTTP/1.1 responses off a raw socket one at a time, so a test can check exactly what crossed the wire and
 * send another request on the same connection afterwards. Everything received is kept in `received`.
 */
export class ResponseReader {
  readonly socket: net.Socket
  received = Buffer.alloc(0)
  closed = false
  #offset = 0
  #wake: (() => void) | undefined

  constructor (socket: net.Socket) {
    this.socket = socket
    socket.on('data', (chunk: Buffer) => {
      this.received = Buffer.concat([this.received, chunk])
      this.#wake?.()
    })
    socket.on('error', () => {})
    socket.on('close', () => {
      this.closed = true
      this.#wake?.()
    })
  }

  /** Resolves once `condition` holds over what was received; fails after `ms`, showing what came. */
  async until (condition: () => boolean, ms: number, what: string): Promise<void> {
    const end = Date.now() + ms
    while (!condition()) {
      if (this.closed) throw new Error(`connection closed while waiting for ${what}; received: ${JSON.stringify(this.unread().toString('latin1').slice(0, 600))}`)
      const left = end - Date.now()
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}; received: ${JSON.stringify(this.unread().toString('latin1').slice(0, 600))}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#wake = () => { clearTimeout(timer); resolve() }
      })
      this.#wake = undefined
    }
  }

  unread (): Buffer {
    return this.received.subarray(this.#offset)
  }

  /** Waits for the connection to close; fails after `ms`. */
  async closes (ms: number): Promise<void> {
    const end = Date.now() + ms
    while (!this.closed) {
      const left = end - Date.now()
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for the connection to close`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#wake = () => { clearTimeout(timer); resolve() }
      })
      this.#wake = undefined
    }
  }

  /**
   * The next whole response. `bodyless` for the answer to a HEAD; 1xx, 204 and 304 never have a body either.
   * A response without Content-Length or chunked framing is read until the connection closes.
   */
  async next (ms: number, { bodyless = false } = {}): Promise<RawResponse> {
    const end = Date.now() + ms
    const left = () => Math.max(1, end - Date.now())
    let headEnd = -1
    await this.until(() => (headEnd = this.received.indexOf('\r\n\r\n', this.#offset)) !== -1, left(), 'response headers')
    const head = this.received.subarray(this.#offset, headEnd).toString('latin1')
    const [statusLine, ...lines] = head.split('\r\n')
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0)
    const headers: Record<string, string[]> = {}
    for (const line of lines) {
      const colon = line.indexOf(':')
      const name = line.slice(0, colon).trim().toLowerCase();
      (headers[name] ??= []).push(line.slice(colon + 1).trim())
    }
    const start = headEnd + 4
    let bodyEnd: number
    if (bodyless || status < 200 || status === 204 || status === 304) {
      bodyEnd = start
    } else if (headers['transfer-encoding']?.some((value) => /chunked/i.test(value)) === true) {
      bodyEnd = await this.#chunkedEnd(start, left)
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length'][0])
      await this.until(() => this.received.length >= start + length, left(), `a body of ${length} bytes`)
      bodyEnd = start + length
    } else {
      await this.closes(left())
      bodyEnd = this.received.length
    }
    const raw = this.received.subarray(start, bodyEnd)
    this.#offset = bodyEnd
    const body = headers['transfer-encoding'] !== undefined && !bodyless ? dechunk(raw) : Buffer.from(raw)
    return { status, head, headers, body }
  }

  async #chunkedEnd (start: number, left: () => number): Promise<number> {
    let at = start
    for (;;) {
      let lineEnd = -1
      await this.until(() => (lineEnd = this.received.indexOf('\r\n', at)) !== -1, left(), 'a chunk size line')
      const size = parseInt(this.received.subarray(at, lineEnd).toString('latin1'), 16)
      if (Number.isNaN(size)) throw new Error(`bad chunk size line ${JSON.stringify(this.received.subarray(at, lineEnd).toString('latin1'))}`)
      if (size === 0) {
        // No trailers expected: the last chunk is followed by the empty line.
        await this.until(() => this.received.length >= lineEnd + 4, left(), 'the end of the chunked body')
        return lineEnd + 4
      }
      const next = lineEnd + 2 + size + 2
      await this.until(() => this.received.length >= next, left(), `a chunk of ${size} bytes`)
      at = next
    }
  }
}

function dechunk (raw: Buffer): Buffer {
  const parts: Buffer[] = []
  let at = 0
  for (;;) {
    const lineEnd = raw.indexOf('\r\n', at)
    if (lineEnd === -1) break
    const size = parseInt(raw.subarray(at, lineEnd).toString('latin1'), 16)
    if (!(size > 0)) break
    parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size))
    at = lineEnd + 2 + size + 2
  }
  return Buffer.concat(parts)
}

export interface RawBackend {
  url: string
  port: number
  /** Connections the balancer opened to it. */
  connections: number
}

/**
 * A backend that is a bare TCP server on 127.0.0.1, for answers no HTTP library would write. `onConnection`
 * gets each connection the balancer opens; every one is destroyed when the test ends.
 */
export async function startRawBackend (t: Test, onConnection: (socket: net.Socket) => void): Promise<RawBackend> {
  const sockets = new Set<net.Socket>()
  const backend: RawBackend = { url: '', port: 0, connections: 0 }
  const server = net.createServer((socket) => {
    backend.connections++
    sockets.add(socket)
    socket.on('error', () => {})
    socket.on('close', () => sockets.delete(socket))
    onConnection(socket)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  backend.port = (server.address() as AddressInfo).port
  backend.url = `http://127.0.0.1:${backend.port}`
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await deadline(new Promise((resolve) => server.close(resolve)), 5000, 'a raw backend to close')
  })
  return backend
}

/**
 * Calls `onRequest` with the head (request line and headers, as text) of each request that arrives on a raw
 * backend connection. Only for requests without a body (GET, HEAD), which is what the balancer forwards them as.
 */
export function onRequestHeads (socket: net.Socket, onRequest: (head: string, socket: net.Socket) => void): void {
  let buffered = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => {
    buffered += chunk
    let end: number
    while ((end = buffered.indexOf('\r\n\r\n')) !== -1) {
      const head = buffered.slice(0, end)
      buffered = buffered.slice(end + 4)
      onRequest(head, socket)
    }
  })
}

export interface LatencyRun {
  /** ms of each request answered 200, in order. */
  latencies: number[]
  /** Requests not answered 200 (status or error), with how long each took. */
  failures: string[]
}

/**
 * GET `path` one request after another over one keep-alive connection, for at least `minMs` and at least
 * `minCount` requests. Each request may take `requestTimeout` ms at most; the run stops at the first that does not
 * come back, or after `maxMs`, so a balancer that stalls fails the test in seconds, never hangs it.
 */
export async function sequentialGets (origin: string, path: string, { minCount = 100, minMs = 4000, maxMs = 15_000, requestTimeout = 2000 } = {}): Promise<LatencyRun> {
  const client = new Client(origin, { pipelining: 1 })
  const run: LatencyRun = { latencies: [], failures: [] }
  const started = Date.now()
  try {
    while ((run.latencies.length + run.failures.length < minCount || Date.now() - started < minMs) && Date.now() - started < maxMs) {
      const sent = performance.now()
      try {
        const { statusCode, body } = await client.request({ path, method: 'GET', signal: AbortSignal.timeout(requestTimeout) })
        await body.text()
        const took = performance.now() - sent
        if (statusCode === 200) run.latencies.push(took)
        else run.failures.push(`status ${statusCode} after ${took.toFixed(1)} ms`)
      } catch (error) {
        run.failures.push(`${(error as Error).name}: ${(error as Error).message} after ${(performance.now() - sent).toFixed(1)} ms`)
        // A request that timed out would time out again behind the same stall: one is enough to fail on.
        break
      }
    }
  } finally {
    await client.destroy()
  }
  return run
}

/** Nearest-rank percentile. */
export function percentile (values: number[], p: number): number {
  if (values.length === 0) return Number.NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]
}

/** One line for an assertion message: how many, p50, p99 and max. */
export function describeRun (run: LatencyRun): string {
  const { latencies, failures } = run
  const fmt = (ms: number) => Number.isFinite(ms) ? `${ms.toFixed(1)} ms` : '-'
  return `${latencies.length} answered 200, ${failures.length} failed${failures.length > 0 ? ` (first: ${failures[0]})` : ''}; ` +
    `p50 ${fmt(percentile(latencies, 50))}, p99 ${fmt(percentile(latencies, 99))}, max ${fmt(latencies.length === 0 ? Number.NaN : Math.max(...latencies))}`
}

/**
 * Writes one byte to each socket every `periodMs`, spread over the period (a slice of the sockets every 10 ms)
 * as independent clients would, rather than all at once. Returns the function that stops it.
 */
export function trickle (sockets: net.Socket[], periodMs = 1000, byte = 'a'): () => void {
  const slices = Math.max(1, Math.floor(periodMs / 10))
  let tick = 0
  const timer = setInterval(() => {
    const slice = tick++ % slices
    for (let i = slice; i < sockets.length; i += slices) {
      if (!sockets[i].destroyed) sockets[i].write(byte)
    }
  }, periodMs / slices)
  return () => clearInterval(timer)
}

/**
 * `count` connections that each send a POST's headers with this Content-Length and then one body byte a second,
 * the slow-client reproduction. `end()` stops them and closes their connections; so does the end of the test.
 */
export async function slowUploads (t: Test, port: number, count: number, contentLength: number): Promise<{ end: () => void }> {
  const sockets: net.Socket[] = []
  for (let i = 0; i < count; i++) {
    const socket = await connect(t, port)
    socket.on('error', () => {})
    socket.write(`POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${contentLength}\r\n\r\n`)
    socket.write('a')
    sockets.push(socket)
  }
  const stop = trickle(sockets, 1000)
  const end = (): void => {
    stop()
    for (const socket of sockets) socket.destroy()
  }
  t.teardown(end)
  return { end }
}

/** One HTTP/1.1 GET on an open connection (plain or TLS), read to the end of its body (the answer sends a length). */
export async function getOnSocket (socket: net.Socket, path: string, host: string): Promise<string> {
  let text = ''
  let onData = (_chunk: Buffer): void => {}
  const whole = new Promise<void>((resolve) => {
    onData = (chunk) => {
      text += chunk.toString('latin1')
      const length = /content-length: (\d+)/i.exec(text)
      if (length !== null && text.length >= text.indexOf('\r\n\r\n') + 4 + Number(length[1])) resolve()
    }
  })
  socket.on('data', onData)
  socket.write(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`)
  try {
    await deadline(whole, 10_000, 'a whole response')
  } finally {
    socket.off('data', onData)
  }
  return text
}
