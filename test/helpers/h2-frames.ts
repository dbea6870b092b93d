// HTTP/2 frames written by hand, for clients no library would be: node:http2's own client (nghttp2 1.64 and later,
// Node 22+) no longer sends a stream that was reset before its HEADERS left, so a flood made with it never reaches
// the server. Here every byte is on the wire as an attacker sends it.
import { once } from 'node:events'
import type { Test } from 'tap'
import tls from 'node:tls'

const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')

export const frameType = { headers: 0x1, rstStream: 0x3, settings: 0x4, ping: 0x6, goaway: 0x7 } as const
const endStream = 0x1
const endHeaders = 0x4
const ack = 0x1

function frame (type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream, 5)
  return Buffer.concat([head, payload])
}

/** GET / on `stream`: HPACK's static table for :method GET, :scheme https, :path /, and a literal :authority. */
export function getHeaders (stream: number, authority: string): Buffer {
  const host = Buffer.from(authority)
  const block = Buffer.concat([Buffer.from([0x82, 0x87, 0x84, 0x01, host.length]), host])
  return frame(frameType.headers, endStream | endHeaders, stream, block)
}

/** RST_STREAM with CANCEL (0x8), as a browser sends for a request it no longer wants. */
export function cancel (stream: number): Buffer {
  return frame(frameType.rstStream, 0, stream, Buffer.from([0, 0, 0, 0x8]))
}

export interface RawH2Connection {
  socket: tls.TLSSocket
  /** Resolves with the error code of the first GOAWAY the server sends. */
  goaway: Promise<number>
  /**
   * Sends PING and resolves true when the server has acknowledged it (so has read every frame written before), false
   * when it has sent GOAWAY or closed instead. A flood written in rounds of one round trip never has bytes in flight
   * when the server ends the connection: closing with unread bytes makes the kernel send RST, which throws away the
   * GOAWAY before the client reads it.
   */
  roundTrip: () => Promise<boolean>
}

/** A TLS connection to 127.0.0.1:`port` that spoke h2 by ALPN, with the client preface and empty SETTINGS sent, reading the server's frames. */
export async function rawH2Connect (t: Test, port: number, servername: string): Promise<RawH2Connection> {
  // As h2Connect: the certificate is not what these tests are about.
  const socket = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false, ALPNProtocols: ['h2'] })
  t.teardown(() => { socket.destroy() })
  socket.on('error', () => {})
  await once(socket, 'secureConnect')
  if (socket.alpnProtocol !== 'h2') throw new Error(`the server chose ${String(socket.alpnProtocol)}, not h2`)
  socket.write(Buffer.concat([preface, frame(frameType.settings, 0, 0, Buffer.alloc(0))]))
  let pingAcked = (): void => {}
  const goaway = new Promise<number>((resolve, reject) => {
    let buffered = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk])
      while (buffered.length >= 9) {
        const length = buffered.readUIntBE(0, 3)
        if (buffered.length < 9 + length) break
        const type = buffered[3]
        const flags = buffered[4]
        const payload = buffered.subarray(9, 9 + length)
        buffered = buffered.subarray(9 + length)
        if (type === frameType.settings && (flags & ack) === 0 && !socket.destroyed) socket.write(frame(frameType.settings, ack, 0, Buffer.alloc(0)))
        if (type === frameType.ping && (flags & ack) !== 0) pingAcked()
        if (type === frameType.goaway) resolve(payload.readUInt32BE(4))
      }
    })
    socket.on('close', () => { reject(new Error('the connection closed without GOAWAY')) })
  })
  goaway.catch(() => {})
  const ended = goaway.then(() => false, () => false)
  const roundTrip = async (): Promise<boolean> => {
    if (socket.destroyed) return false
    const acked = new Promise<boolean>((resolve) => { pingAcked = () => { resolve(true) } })
    socket.write(frame(frameType.ping, 0, 0, Buffer.alloc(8)))
    return await Promise.race([acked, ended])
  }
  return { socket, goaway, roundTrip }
}
