// Node backends, any number in one process (1,000 listeners cost one process): each answers "Hello from <id>\n",
// padded to `bytes` when given, after a delay drawn uniformly from `delay` ms (as shared/anchors/backend.mjs), and
// counts what it served, which the parent reads over IPC.
// node --import tsx bench/servers/backends.ts '<JSON array of { id, delay?: [lo, hi], bytes? }>'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { backlog, onCounts, onStop, ready } from './child.js'

interface Spec { id: string, delay?: [number, number], bytes?: number }

const specs = JSON.parse(process.argv[2] ?? '[]') as Spec[]
const counts = new Array<number>(specs.length).fill(0)

function body (spec: Spec): Buffer {
  const hello = Buffer.from(`Hello from ${spec.id}\n`)
  if (spec.bytes === undefined || spec.bytes <= hello.length) return hello
  const padded = Buffer.alloc(spec.bytes, 'x')
  hello.copy(padded)
  padded[padded.length - 1] = 0x0a
  return padded
}

const servers = specs.map((spec, index) => {
  const payload = body(spec)
  const headers = { 'content-type': 'text/plain', 'content-length': String(payload.length) }
  const [lo, hi] = spec.delay ?? [0, 0]
  const server = http.createServer((request, response) => {
    counts[index]++
    const send = (): void => { response.writeHead(200, headers).end(payload) }
    request.resume()
    const delay = lo + Math.random() * (hi - lo)
    if (delay > 0) setTimeout(send, delay)
    else send()
  })
  // Longer than any balancer's idle keep-alive, so a pooled connection is never closed under a request reusing it.
  server.keepAliveTimeout = 120_000
  return server
})

onStop(() => Promise.all(servers.map((server) => new Promise((resolve) => {
  server.close(resolve)
  server.closeAllConnections()
}))))

await Promise.all(servers.map((server) => new Promise<void>((resolve, reject) => {
  server.once('error', reject).listen({ port: 0, host: '127.0.0.1', backlog }, () => { resolve() })
})))
ready(servers.map((server) => (server.address() as AddressInfo).port))
onCounts(() => counts)
