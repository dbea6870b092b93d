// listeners[].proxyProtocol: every connection starts with a PROXY protocol v1 or v2 header, and its source is the
// client, for X-Forwarded-For upstream, the access line and the rate-limit key. A connection without a valid header,
// from a peer not trusted, or whose header does not come whole within the timeout, is closed without a byte written,
// and nothing reaches a backend. Raw bytes through `net` against goload's Listeners, with a real backend.
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import http2 from 'node:http2'
import net, { type AddressInfo } from 'node:net'
import { Duplex } from 'node:stream'
import tls from 'node:tls'
import t, { type Test } from 'tap'
import { Listeners } from '../lib/cli/listeners.js'
import { loadConfig } from '../lib/config/load.js'
import { ConfigError } from '../lib/config/errors.js'
import { acceptProxyProtocol, proxyProtocolOf } from '../lib/proxy/proxy-protocol.js'
import { parseProxyHeader } from '../lib/proxy/proxy-protocol-header.js'
import { freePort, runMain } from './helpers/cli.js'
import { configFolder } from './helpers/config-files.js'
import { capturedLogs } from './helpers/logs.js'
import { connect, deadline, ResponseReader, type RawResponse } from './helpers/raw.js'
import { startBackend, waitFor } from './helpers/servers.js'
import { TestPki } from './helpers/tls.js'

const pki = new TestPki()
t.teardown(() => { pki.close() })
const ca = pki.ca('goload test CA')
const certificate = pki.server(ca, { dns: ['app.example.com'] })

const signature = Buffer.from('0d0a0d0a000d0a515549540a', 'hex')

/** A v1 header: the line as given, CRLF added. */
const v1 = (line: string): Buffer => Buffer.from(`${line}\r\n`, 'latin1')

/** A v2 header: command, address family and transport byte, the address block, TLVs ([type, value]); `length` to lie. */
function v2 (command: 'LOCAL' | 'PROXY', familyTransport: number, addresses: Buffer, tlvs: Array<[number, Buffer]> = [], length?: number): Buffer {
  const fields = Buffer.concat(tlvs.map(([type, value]) => Buffer.concat([Buffer.from([type, value.length >> 8, value.length & 0xff]), value])))
  const fixed = Buffer.alloc(16)
  signature.copy(fixed)
  fixed[12] = command === 'PROXY' ? 0x21 : 0x20
  fixed[13] = familyTransport
  fixed.writeUInt16BE(length ?? addresses.length + fields.length, 14)
  return Buffer.concat([fixed, addresses, fields])
}

const port16 = (port: number): Buffer => Buffer.from([port >> 8, port & 0xff])
/** AF_INET over STREAM: source, destination, their ports. */
const tcp4 = (source: string, destination: string, sourcePort = 40000, destinationPort = 443): Buffer =>
  Buffer.concat([Buffer.from(source.split('.').map(Number)), Buffer.from(destination.split('.').map(Number)), port16(sourcePort), port16(destinationPort)])
/** AF_INET6 over STREAM, addresses as 32 hex digits. */
const tcp6 = (source: string, destination: string, sourcePort = 40000, destinationPort = 443): Buffer =>
  Buffer.concat([Buffer.from(source, 'hex'), Buffer.from(destination, 'hex'), port16(sourcePort), port16(destinationPort)])

const get = (path = '/'): Buffer => Buffer.from(`GET ${path} HTTP/1.1\r\nHost: app.example.com\r\n\r\n`)

interface Setup {
  listeners: Listeners
  /** Ports: any peer with a 300 ms timeout, trusted 127.0.0.1, trusted only others, TLS, with trustProxy too. */
  ports: { quick: number, local: number, elsewhere: number, secure: number, chained: number }
  /** Requests the backend got, and the X-Forwarded-For of each. */
  forwardedFor: Array<string | undefined>
  logs: ReturnType<typeof capturedLogs>
  configText: (proxyProtocolOfLocal: string | undefined) => string
  file: string
}

async function start (t: Test): Promise<Setup> {
  const forwardedFor: Array<string | undefined> = []
  const backend = await startBackend(t, (request, response) => {
    const seen = request.headers['x-forwarded-for'] as string | undefined
    forwardedFor.push(seen)
    request.resume()
    response.end(seen)
  })
  const write = await configFolder(t)
  await write('app.pem', certificate.cert)
  await write('app-key.pem', certificate.key)
  const [quick, local, elsewhere, secure, chained] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()])
  const configText = (proxyProtocolOfLocal: string | undefined): string => `listeners:
  - port: ${quick}
    host: 127.0.0.1
    proxyProtocol: { timeout: 300 }
    routes: [{ pool: web }]
  - port: ${local}
    host: 127.0.0.1
${proxyProtocolOfLocal === undefined ? '' : `    proxyProtocol: ${proxyProtocolOfLocal}\n`}    routes:
      - { pool: web }
      - { path: /limited, pool: web, rateLimit: { max: 1, timeWindow: 1 minute } }
  - port: ${elsewhere}
    host: 127.0.0.1
    proxyProtocol: { trusted: [10.0.0.0/8, '::1'] }
    routes: [{ pool: web }]
  - port: ${secure}
    host: 127.0.0.1
    proxyProtocol: true
    tls: { certificates: [{ cert: app.pem, key: app-key.pem }] }
    routes: [{ pool: web }]
  - port: ${chained}
    host: 127.0.0.1
    proxyProtocol: true
    trustProxy: [203.0.113.0/24]
    routes: [{ pool: web }]
pools:
  web:
    backends: [${backend.url}]
`
  const file = await write('goload.yaml', configText('{ trusted: [127.0.0.1] }'))
  const logs = capturedLogs('debug')
  const listeners = new Listeners(logs.logger)
  t.teardown(() => listeners.close())
  await listeners.apply(await loadConfig(file, { env: {} }))
  return { listeners, ports: { quick, local, elsewhere, secure, chained }, forwardedFor, logs, configText, file }
}

const setup = await start(t)

/** Every backend's pending count is back to 0 (each exchange ended, refused connections never counted). */
async function settled (): Promise<void> {
  const pending = (): number[] => setup.listeners.entries().flatMap(({ pool }) => pool.workers.map((worker) => worker.pending))
  await waitFor(() => pending().every((count) => count === 0), `pending back to 0 (${pending().join(', ')})`)
}

/** Sends `chunks` (each its own write; with `byByte`, every byte its own segment), reads one response. */
async function exchange (t: Test, port: number, chunks: Buffer[], { byByte = false } = {}): Promise<{ response: RawResponse, reader: ResponseReader }> {
  const socket = await connect(t, port)
  socket.setNoDelay(true)
  const reader = new ResponseReader(socket)
  for (const chunk of chunks) {
    if (!byByte) {
      socket.write(chunk)
      continue
    }
    // Nagle off, each byte written on a turn of the loop of its own: goload, in this process, reads between them.
    for (const byte of chunk) {
      socket.write(Buffer.from([byte]))
      await new Promise((resolve) => setImmediate(resolve))
    }
  }
  return { response: await reader.next(5000), reader }
}

/** The X-Forwarded-For the backend got for one request sent behind `header`. */
async function forwardedFor (t: Test, port: number, header: Buffer, options: { byByte?: boolean, separate?: boolean } = {}): Promise<string> {
  const { response } = await exchange(t, port, options.separate === true ? [header, get()] : [Buffer.concat([header, get()])], options)
  t.equal(response.status, 200)
  return response.body.toString()
}

/** Sends `chunks` (and ends, with `end`): goload must close the connection with no byte written, and reach no backend. */
async function refused (t: Test, port: number, chunks: Buffer[], { end = false } = {}): Promise<number> {
  const before = setup.forwardedFor.length
  const socket = await connect(t, port)
  const reader = new ResponseReader(socket)
  const started = Date.now()
  for (const chunk of chunks) socket.write(chunk)
  if (end) socket.end()
  await reader.closes(5000)
  t.equal(reader.received.length, 0, 'closed with no byte written')
  t.equal(setup.forwardedFor.length, before, 'nothing reached the backend')
  return Date.now() - started
}

t.test('v1 TCP4 and TCP6: the source is the client; UNKNOWN keeps the peer', async (t) => {
  t.equal(await forwardedFor(t, setup.ports.local, v1('PROXY TCP4 203.0.113.7 192.0.2.1 51000 443')), '203.0.113.7')
  t.equal(await forwardedFor(t, setup.ports.local, v1('PROXY TCP6 2001:db8::7 2001:db8::1 51000 443')), '2001:db8::7')
  t.equal(await forwardedFor(t, setup.ports.local, v1('PROXY UNKNOWN')), '127.0.0.1')
  t.equal(await forwardedFor(t, setup.ports.local, v1('PROXY UNKNOWN ffff::1 ffff::2 1 2')), '127.0.0.1', 'what follows UNKNOWN is ignored')
  await settled()
})

t.test('v2 PROXY over TCP4 and TCP6, with TLVs; LOCAL keeps the peer', async (t) => {
  const tlvs: Array<[number, Buffer]> = [
    [0x02, Buffer.from('app.example.com')], // PP2_TYPE_AUTHORITY
    // PP2_TYPE_SSL: client flags, verify, then its sub-TLV PP2_SUBTYPE_SSL_VERSION
    [0x20, Buffer.concat([Buffer.from([0x01, 0, 0, 0, 0]), Buffer.from([0x21, 0, 7]), Buffer.from('TLSv1.3')])],
    [0x04, Buffer.alloc(0)], // PP2_TYPE_NOOP, empty
    [0xea, Buffer.concat([Buffer.from([0x01]), Buffer.from('vpce-0123456789abcdef0')])] // AWS: the VPC endpoint
  ]
  t.equal(await forwardedFor(t, setup.ports.local, v2('PROXY', 0x11, tcp4('198.51.100.20', '10.0.0.5'), tlvs)), '198.51.100.20')
  t.equal(await forwardedFor(t, setup.ports.local, v2('PROXY', 0x21, tcp6('20010db8000000000000000000000007', '20010db8000000000000000000000001'), tlvs)), '2001:db8::7')
  t.equal(await forwardedFor(t, setup.ports.local, v2('PROXY', 0x21, tcp6('00000000000000000000ffffc0000201', '20010db8000000000000000000000001'))), '::ffff:192.0.2.1', 'an IPv4-mapped address as Node writes one')
  t.equal(await forwardedFor(t, setup.ports.local, v2('PROXY', 0x21, tcp6('20010db8000100020003000400050006', '20010db8000000000000000000000001'))), '2001:db8:1:2:3:4:5:6', 'no zeros to shorten')
  t.equal(await forwardedFor(t, setup.ports.local, v2('PROXY', 0x21, tcp6('20010db8000000010000000000000001', '20010db8000000000000000000000001'))), '2001:db8:0:1::1', 'the longest run of zeros shortened')
  t.equal(await forwardedFor(t, setup.ports.local, v2('LOCAL', 0x00, Buffer.alloc(0))), '127.0.0.1', 'LOCAL: the balancer\'s own health check')
  t.equal(await forwardedFor(t, setup.ports.local, v2('LOCAL', 0x11, tcp4('198.51.100.20', '10.0.0.5'))), '127.0.0.1', 'LOCAL: addresses ignored')
  t.equal(await forwardedFor(t, setup.ports.local, v2('PROXY', 0x00, Buffer.alloc(0))), '127.0.0.1', 'AF_UNSPEC: no address to take')
  await settled()
})

t.test('a header split byte by byte, or sent apart from the request, or with it in one packet', async (t) => {
  const header4 = v2('PROXY', 0x11, tcp4('198.51.100.21', '10.0.0.5'), [[0x02, Buffer.from('app.example.com')]])
  t.equal(await forwardedFor(t, setup.ports.local, header4, { byByte: true }), '198.51.100.21', 'v2, and the request, byte by byte')
  t.equal(await forwardedFor(t, setup.ports.local, v1('PROXY TCP4 203.0.113.8 192.0.2.1 51000 443'), { byByte: true }), '203.0.113.8', 'v1 byte by byte')
  t.equal(await forwardedFor(t, setup.ports.local, v1('PROXY TCP4 203.0.113.9 192.0.2.1 51000 443'), { separate: true }), '203.0.113.9', 'header, then the request')
  t.equal(await forwardedFor(t, setup.ports.local, header4), '198.51.100.21', 'header and request in one write')
  await settled()
})

t.test('keep-alive: the header is read once; a second one is an HTTP request like any', async (t) => {
  const { response, reader } = await exchange(t, setup.ports.local, [Buffer.concat([v1('PROXY TCP4 203.0.113.10 192.0.2.1 51000 443'), get(), get('/again')])])
  t.equal(response.body.toString(), '203.0.113.10')
  t.equal((await reader.next(5000)).body.toString(), '203.0.113.10', 'the second request on the connection: the same client')
  const before = setup.forwardedFor.length
  reader.socket.write(Buffer.concat([v1('PROXY TCP4 198.51.100.99 192.0.2.1 51000 443'), get()]))
  t.equal((await reader.next(5000)).status, 400, 'Node\'s parser refuses a PROXY line as a request')
  t.equal(setup.forwardedFor.length, before, 'and no backend sees it')
  await settled()
})

t.test('the access line and the rate-limit key are the client\'s', async (t) => {
  const header = (address: string): Buffer => v1(`PROXY TCP4 ${address} 192.0.2.1 51000 443`)
  const status = async (address: string): Promise<number> => (await exchange(t, setup.ports.local, [Buffer.concat([header(address), get('/limited')])])).response.status
  t.equal(await status('203.0.113.30'), 200)
  t.equal(await status('203.0.113.30'), 429, 'its second request is over its limit')
  t.equal(await status('203.0.113.31'), 200, 'another client has its own count')
  const line = setup.logs.lines.find((entry) => entry.msg === 'goload: access' && entry.req?.url === '/limited')
  t.equal(line?.req.remoteAddress, '203.0.113.30')
  t.equal(line?.req.remotePort, 51000)
  await settled()
})

t.test('trustProxy starts from the client the header names: a proxy behind the balancer', async (t) => {
  const { response } = await exchange(t, setup.ports.chained, [Buffer.concat([
    v1('PROXY TCP4 203.0.113.70 192.0.2.1 51000 443'),
    Buffer.from('GET /chained HTTP/1.1\r\nHost: app.example.com\r\nX-Forwarded-For: 198.51.100.70\r\n\r\n')
  ])])
  t.equal(response.body.toString(), '198.51.100.70, 203.0.113.70', 'upstream: the chain, with the header\'s client appended')
  await waitFor(() => setup.logs.lines.some((line) => line.msg === 'goload: access' && line.req?.url === '/chained'), 'the access line')
  t.equal(setup.logs.lines.find((line) => line.msg === 'goload: access' && line.req?.url === '/chained')?.req.remoteAddress, '198.51.100.70', 'request.ip: the client the trusted proxy names')
  await settled()
})

t.test('no valid header: closed at once with no byte written', async (t) => {
  const cases: Array<[string, Buffer[]]> = [
    ['an HTTP request without a header', [get()]],
    ['a bad v2 signature', [Buffer.concat([Buffer.from('0d0a0d0a000d0a5155495820', 'hex'), Buffer.alloc(20), get()])]],
    ['a v2 version other than 2', [Buffer.concat([signature, Buffer.from([0x11, 0x11, 0, 12]), tcp4('1.2.3.4', '5.6.7.8'), get()])]],
    ['a v2 command other than LOCAL or PROXY', [Buffer.concat([signature, Buffer.from([0x22, 0x11, 0, 12]), tcp4('1.2.3.4', '5.6.7.8'), get()])]],
    ['a v2 length past the 4096-byte cap', [v2('PROXY', 0x11, tcp4('198.51.100.20', '10.0.0.5'), [], 0xffff)]],
    ['a v2 length too short for its addresses', [Buffer.concat([v2('PROXY', 0x21, tcp6('20010db8000000000000000000000007', '20010db8000000000000000000000001'), [], 12), get()])]],
    ['a v2 address family past AF_UNIX', [Buffer.concat([signature, Buffer.from([0x21, 0x41, 0, 12]), tcp4('1.2.3.4', '5.6.7.8'), get()])]],
    ['a v2 transport past DGRAM', [Buffer.concat([signature, Buffer.from([0x21, 0x13, 0, 12]), tcp4('1.2.3.4', '5.6.7.8'), get()])]],
    ['a v2 TLV cut short before its length', [Buffer.concat([v2('PROXY', 0x11, Buffer.concat([tcp4('198.51.100.20', '10.0.0.5'), Buffer.from([0x02, 0])])), get()])]],
    ['a v2 TLV longer than the header', [Buffer.concat([v2('PROXY', 0x11, Buffer.concat([tcp4('198.51.100.20', '10.0.0.5'), Buffer.from([0x02, 0, 9, 0x61])])), get()])]],
    ['a v1 line for another protocol', [Buffer.concat([v1('PROXY UDP4 203.0.113.7 192.0.2.1 51000 443'), get()])]],
    ['a v1 line with a bad address', [Buffer.concat([v1('PROXY TCP4 203.0.113.999 192.0.2.1 51000 443'), get()])]],
    ['a v1 line with an IPv6 address for TCP4', [Buffer.concat([v1('PROXY TCP4 2001:db8::7 192.0.2.1 51000 443'), get()])]],
    ['a v1 line with a port past 65535', [Buffer.concat([v1('PROXY TCP4 203.0.113.7 192.0.2.1 65536 443'), get()])]],
    ['a v1 line with a field missing', [Buffer.concat([v1('PROXY TCP4 203.0.113.7 192.0.2.1 51000'), get()])]],
    ['a v1 line with two spaces', [Buffer.concat([v1('PROXY TCP4  203.0.113.7 192.0.2.1 51000 443'), get()])]],
    ['a v1 line longer than 107 bytes', [Buffer.from(`PROXY UNKNOWN ${'x'.repeat(100)}`)]],
    ['"PROXY" without its space', [Buffer.concat([v1('PROXYTCP4 203.0.113.7 192.0.2.1 51000 443'), get()])]],
    ['a v1 line with a tab', [Buffer.concat([v1('PROXY TCP4 203.0.113.7\t192.0.2.1 51000 443'), get()])]],
    ['a v1 line with a lone CR', [Buffer.concat([v1('PROXY TCP4 203.0.113.7 192.0.2.1\r51000 443'), get()])]],
    ['lower-case "proxy"', [Buffer.concat([v1('proxy TCP4 203.0.113.7 192.0.2.1 51000 443'), get()])]]
  ]
  // On a listener that waits 30 s for a header: closed within refused()'s 5 s, so the bytes decided it.
  for (const [name, chunks] of cases) t.test(name, async (t) => { await refused(t, setup.ports.local, chunks) })
  await settled()
})

t.test('a header cut short, then the connection ended or reset: closed, nothing forwarded', async (t) => {
  await refused(t, setup.ports.local, [v1('PROXY TCP4 203.0.113.7 192.0.2.1 51000 443').subarray(0, 20)], { end: true })
  await refused(t, setup.ports.local, [v2('PROXY', 0x11, tcp4('198.51.100.20', '10.0.0.5')).subarray(0, 20)], { end: true })
  const before = setup.forwardedFor.length
  const socket = await connect(t, setup.ports.local)
  socket.on('error', () => {})
  await new Promise((resolve) => socket.write(v1('PROXY TCP4 203.0.113.7 192.0.2.1 51000 443').subarray(0, 20), resolve))
  socket.resetAndDestroy()
  // Node reads the reset as an error or as the end, depending on when it comes: either way, closed and said.
  const reason = new RegExp(`^goload: 127\\.0\\.0\\.1:${setup.ports.local}: closed a connection from 127\\.0\\.0\\.1: (read ECONNRESET|closed after 20 bytes, before a whole PROXY protocol header)$`)
  await waitFor(() => setup.logs.lines.some((line) => reason.test(line.msg as string)), 'the reset seen')
  t.equal(setup.forwardedFor.length, before, 'nothing reached the backend')
  await settled()
})

t.test('silence, or half a header, until the timeout: closed then', async (t) => {
  t.ok(await refused(t, setup.ports.quick, []) >= 250, 'nothing sent: closed at the 300 ms timeout')
  t.ok(await refused(t, setup.ports.quick, [v2('PROXY', 0x11, tcp4('198.51.100.20', '10.0.0.5')).subarray(0, 27)]) >= 250, 'half a header: the same')
  // At warn once in 10 s, else at debug: a flood of refused connections cannot flood the log.
  t.ok(setup.logs.lines.some((line) => /^goload: 127\.0\.0\.1:\d+: closed a connection from 127\.0\.0\.1: no whole PROXY protocol header within 300 ms \(0 bytes came\)$/.test(line.msg as string)), 'the reason in the log')
})

t.test('a peer not in trusted is closed at once, even with a valid header', async (t) => {
  await refused(t, setup.ports.elsewhere, [Buffer.concat([v1('PROXY TCP4 203.0.113.7 192.0.2.1 51000 443'), get()])])
  await refused(t, setup.ports.elsewhere, [])
  t.ok(setup.logs.lines.some((line) => /127\.0\.0\.1, not trusted to send a PROXY protocol header/.test(line.msg as string)), 'logged')
})

/** A TLS connection to goload over `socket`, once its handshake is done. */
async function handshake (t: Test, socket: Duplex): Promise<tls.TLSSocket> {
  const secure = tls.connect({ socket, servername: 'app.example.com', ca: ca.cert })
  t.teardown(() => { secure.destroy() })
  await deadline(once(secure, 'secureConnect'), 10_000, 'the TLS handshake')
  return secure
}

t.test('TLS: the header comes before the ClientHello', async (t) => {
  const socket = await connect(t, setup.ports.secure)
  socket.write(v2('PROXY', 0x11, tcp4('198.51.100.40', '10.0.0.5'), [[0x02, Buffer.from('app.example.com')]]))
  const secure = await handshake(t, socket)
  const reader = new ResponseReader(secure)
  secure.write(get('/over-tls'))
  t.equal((await reader.next(5000)).body.toString(), '198.51.100.40')
  // request.ip asks the TLS socket, which reads its peer off the TCP handle under it: given the client too.
  await waitFor(() => setup.logs.lines.some((line) => line.msg === 'goload: access' && line.req?.url === '/over-tls'), 'the access line')
  t.equal(setup.logs.lines.find((line) => line.msg === 'goload: access' && line.req?.url === '/over-tls')?.req.remoteAddress, '198.51.100.40', 'the access line\'s remoteAddress')
  secure.write(get())
  t.equal((await reader.next(5000)).body.toString(), '198.51.100.40', 'the next request on the connection too')

  // The header and the ClientHello in one write: a stream under TLS that puts the header before its first bytes.
  const raw = await connect(t, setup.ports.secure)
  let header: Buffer | undefined = v1('PROXY TCP6 2001:db8::40 2001:db8::1 51000 443')
  const joined = new Duplex({
    write (chunk: Buffer, _encoding, done) {
      raw.write(header === undefined ? chunk : Buffer.concat([header, chunk]), done)
      header = undefined
    },
    read () {}
  })
  raw.on('data', (chunk) => joined.push(chunk))
  raw.on('end', () => joined.push(null))
  const joinedSecure = await handshake(t, joined)
  const joinedReader = new ResponseReader(joinedSecure as unknown as net.Socket)
  joinedSecure.write(get())
  t.equal((await joinedReader.next(5000)).body.toString(), '2001:db8::40')

  await refused(t, setup.ports.secure, [Buffer.from('160301', 'hex')])
  await settled()
})

t.test('HTTP/2 servers, with and without TLS, take the socket after the header too', async (t) => {
  const handler = (request: http2.Http2ServerRequest, response: http2.Http2ServerResponse): void => { response.end(`${request.socket.remoteAddress} ${request.httpVersion}`) }
  const servers = [http2.createSecureServer({ ...certificate, allowHTTP1: true }, handler), http2.createServer(handler)]
  for (const server of servers) {
    const secure = server instanceof tls.Server
    acceptProxyProtocol(server, () => proxyProtocolOf({ proxyProtocol: true }), { log: { warn: () => {}, debug: () => {} }, listener: 'h2' })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => new Promise((resolve) => server.close(resolve)))
    const { port } = server.address() as AddressInfo
    // Connected before the header is written: TLS on a socket still connecting writes its ClientHello first.
    const socket = await connect(t, port)
    socket.write(v1('PROXY TCP4 203.0.113.50 192.0.2.1 51000 443'))
    const client = http2.connect(`${secure ? 'https' : 'http'}://app.example.com:${port}`, {
      createConnection: () => secure ? tls.connect({ socket, servername: 'app.example.com', ca: ca.cert, ALPNProtocols: ['h2'] }) : socket
    })
    t.teardown(() => { client.destroy() })
    const stream = client.request({ ':path': '/' })
    stream.setEncoding('utf8')
    let body = ''
    stream.on('data', (chunk: string) => { body += chunk })
    await deadline(once(stream, 'end'), 10_000, 'the h2 response')
    t.equal(body, '203.0.113.50 2.0', secure ? 'h2 over TLS' : 'h2c')
    client.close()
  }
  // And HTTP/1.1 on the TLS one (allowHTTP1), as a client without h2 would.
  const { port } = servers[0].address() as AddressInfo
  const socket = await connect(t, port)
  socket.write(v1('PROXY TCP4 203.0.113.51 192.0.2.1 51000 443'))
  const reader = new ResponseReader(await handshake(t, socket))
  reader.socket.write(get())
  t.equal((await reader.next(5000)).body.toString(), '203.0.113.51 1.1', 'HTTP/1.1 over TLS')
})

t.test('a bad proxyProtocol is reported at its line, naming the key', async (t) => {
  const write = await configFolder(t)
  const cases: Array<[string, string]> = [
    ['yes', 'listeners[0].proxyProtocol: must be true, false or { trusted, timeout }, got "yes"'],
    ['{ trusted: [] }', 'listeners[0].proxyProtocol.trusted: must not be empty'],
    ['{ trusted: [10.0.0.300] }', 'listeners[0].proxyProtocol.trusted[0]: must be an IP address, a CIDR (10.0.0.0/8) or one of loopback, linklocal, uniquelocal, got "10.0.0.300"'],
    ['{ trusted: [lb.internal] }', 'listeners[0].proxyProtocol.trusted[0]: must be an IP address, a CIDR (10.0.0.0/8) or one of loopback, linklocal, uniquelocal, got "lb.internal"'],
    ['{ timeout: 0 }', 'listeners[0].proxyProtocol.timeout: must be a positive integer, got 0'],
    ['{ trused: [10.0.0.0/8] }', 'listeners[0].proxyProtocol.trused: unknown key (did you mean trusted?)']
  ]
  const text = (proxyProtocol: string): string => `listeners:
  - port: 8080
    proxyProtocol: ${proxyProtocol}
    routes: [{ pool: web }]
pools:
  web:
    backends: [http://127.0.0.1:3001]
`
  for (const [proxyProtocol, expected] of cases) {
    const file = await write('goload.yaml', text(proxyProtocol))
    const error = await loadConfig(file, { env: {} }).then(() => undefined, (error: unknown) => error)
    t.ok(error instanceof ConfigError, proxyProtocol)
    t.equal((error as ConfigError).message, `${file}:3: ${expected}`, proxyProtocol)
  }
  const file = await write('good.yaml', text("{ trusted: [loopback, 10.0.0.0/8, '2001:db8::/32', 192.168.1.1], timeout: 5000 }"))
  t.same((await loadConfig(file, { env: {} })).listeners[0].proxyProtocol, { trusted: ['loopback', '10.0.0.0/8', '2001:db8::/32', '192.168.1.1'], timeout: 5000 })
  const check = runMain(t, ['--check', '--config', await write('bad.yaml', text('{ trusted: [10.0.0.300] }'))])
  t.equal(await check.code, 1, '--check fails')
  t.match(check.stderr(), /bad\.yaml:3: listeners\[0\]\.proxyProtocol\.trusted\[0\]: must be an IP address/)
})

// Last: it changes the shared setup.
t.test('a reload turns proxyProtocol off (or on) on the port it keeps, for the next connections', async (t) => {
  await setup.listeners.apply(await loadConfig(await writeConfig(setup.configText(undefined)), { env: {} }))
  const { response } = await exchange(t, setup.ports.local, [get()])
  t.equal(response.body.toString(), '127.0.0.1', 'no header needed now')
  await setup.listeners.apply(await loadConfig(await writeConfig(setup.configText('true')), { env: {} }))
  await refused(t, setup.ports.local, [get()])
  t.equal(await forwardedFor(t, setup.ports.local, v1('PROXY TCP4 203.0.113.60 192.0.2.1 51000 443')), '203.0.113.60')
  await settled()
})

async function writeConfig (text: string): Promise<string> {
  await writeFile(setup.file, text)
  return setup.file
}

t.test('closing goload drops a connection still owing its header at once, not after its timeout', async (t) => {
  const write = await configFolder(t)
  const port = await freePort()
  const file = await write('goload.yaml', `listeners:
  - { port: ${port}, host: 127.0.0.1, proxyProtocol: true, routes: [{ pool: web }] }
pools:
  web: { backends: ['http://127.0.0.1:3001'] }
`)
  const listeners = new Listeners({ level: 'silent' })
  await listeners.apply(await loadConfig(file, { env: {} }))
  const reader = new ResponseReader(await connect(t, port))
  reader.socket.write('PROXY TCP4 203')
  // A turn of the loop for goload to accept it (on loopback it has by then; one still in the backlog would be reset
  // by the close all the same, and the test pass without showing anything: with the drop taken out, it fails).
  await new Promise((resolve) => setImmediate(resolve))
  await deadline(listeners.close(), 5000, 'goload to close (the header timeout is 30 s)')
  await reader.closes(1000)
  t.equal(reader.received.length, 0, 'closed with no byte written')
})

t.test('the parser takes every prefix of a header for a header still coming, and the whole for the header', async (t) => {
  const headers = [
    v1('PROXY TCP6 2001:db8::7 2001:db8::1 51000 443'),
    v2('PROXY', 0x21, tcp6('20010db8000000000000000000000007', '20010db8000000000000000000000001', 51000), [[0x02, Buffer.from('app.example.com')]])
  ]
  for (const header of headers) {
    const taken = Array.from({ length: header.length - 1 }, (_, index) => index + 1).filter((length) => parseProxyHeader(header.subarray(0, length)) !== undefined)
    t.same(taken, [], `no prefix of the ${header.length} bytes is taken for a header`)
    t.match(parseProxyHeader(Buffer.concat([header, get()])), { length: header.length, source: { address: '2001:db8::7', port: 51000, family: 'IPv6' } })
  }
})

t.test('trusted: names, CIDRs and addresses; a peer on a dual-stack listener (::ffff:a.b.c.d) is checked as its IPv4', async (t) => {
  const { trusted } = proxyProtocolOf({ proxyProtocol: { trusted: ['loopback', '10.0.0.0/8', '2001:db8::/32', '192.0.2.7'] } })!
  const check = (address: string): boolean => trusted!.check(address, address.includes(':') ? 'ipv6' : 'ipv4')
  t.same(['127.0.0.1', '::1', '::ffff:127.0.0.1', '10.1.2.3', '::ffff:10.1.2.3', '2001:db8::5', '192.0.2.7'].filter((address) => !check(address)), [], 'trusted')
  t.same(['192.0.2.8', '11.0.0.1', '::ffff:11.0.0.1', '2001:db9::1', 'fe80::1'].filter(check), [], 'not trusted')
  t.equal(proxyProtocolOf({ proxyProtocol: true })?.trusted, undefined, 'true: any peer')
  t.equal(proxyProtocolOf({ proxyProtocol: false }), undefined, 'false: off')
  t.equal(proxyProtocolOf({})?.timeout, undefined, 'absent: off')
  t.equal(proxyProtocolOf({ proxyProtocol: true })?.timeout, 30_000, 'waits 30 s by default')
})
