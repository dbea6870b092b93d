// `npm run chaos`: the balancer under misbehaving backends, on loopback, bounded in time and in requests.
// Three in-process backends answer some requests slowly, never answer others, fail some with 500, and one of them
// is killed and started again on the same port every half second or so. Clients send GETs and a few POSTs, some of
// them giving up mid-way. Every request the client did not abandon must get an answer, and once the load stops
// every pending count must go back to 0 and the queue must be empty: exit 1 otherwise.
// Env: DURATION (seconds, default 20), REQUESTS (default 3000), CONCURRENCY (default 16), SEED (default random).
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import goload from '../lib/index.js'

const duration = Number(process.env.DURATION ?? 20) * 1000
const maxRequests = Number(process.env.REQUESTS ?? 3000)
const concurrency = Number(process.env.CONCURRENCY ?? 16)
const seed = Number(process.env.SEED ?? Math.floor(Math.random() * 2 ** 32))

// mulberry32: a small seeded generator, so a run that fails can be replayed with its SEED (timing aside).
let state = seed >>> 0
function random (): number {
  state = (state + 0x6d2b79f5) >>> 0
  let z = state
  z = Math.imul(z ^ (z >>> 15), z | 1)
  z ^= z + Math.imul(z ^ (z >>> 7), z | 61)
  return ((z ^ (z >>> 14)) >>> 0) / 2 ** 32
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

// ---------------------------------------------------------------------------------------------------------------
// Backends

class ChaosBackend {
  readonly id: number
  readonly server: http.Server
  port = 0
  up = false

  constructor (id: number) {
    this.id = id
    this.server = http.createServer((request, response) => { this.#handle(request, response) })
  }

  get url (): string {
    return `http://127.0.0.1:${this.port}`
  }

  async start (): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(this.port, '127.0.0.1', () => {
        this.server.off('error', reject)
        resolve()
      })
    })
    this.port = (this.server.address() as AddressInfo).port
    this.up = true
  }

  /** Stops listening and drops every connection, requests in flight included: a crash, as the balancer sees it. */
  async kill (): Promise<void> {
    this.up = false
    const closed = new Promise((resolve) => this.server.close(resolve))
    this.server.closeAllConnections()
    await closed
  }

  #handle (request: http.IncomingMessage, response: http.ServerResponse): void {
    response.on('error', () => {})
    request.on('error', () => {})
    request.resume()
    request.on('end', () => {
      if (request.url === '/health') {
        response.end('ok')
        return
      }
      // A client may ask for a late answer (the ones that mean to give up mid-way do).
      const delay = Number(new URL(request.url ?? '/', 'http://x').searchParams.get('delay') ?? 0)
      const roll = random()
      if (roll < 0.03) return // hung: never answers; the balancer's timeout answers 504
      const answer = (status: number, body: string): void => {
        if (response.destroyed) return
        // Status line, headers and body in one write, so a kill never cuts a response half way.
        response.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) })
        response.end(body)
      }
      if (roll < 0.08) answer(500, `backend ${this.id} failed\n`)
      else if (roll < 0.2 || delay > 0) setTimeout(() => { answer(200, `slow hello from ${this.id}\n`) }, delay > 0 ? delay : 50 + random() * 250)
      else answer(200, `hello from ${this.id}\n`)
    })
  }
}

const backends = [new ChaosBackend(1), new ChaosBackend(2), new ChaosBackend(3)]
for (const backend of backends) await backend.start()

// ---------------------------------------------------------------------------------------------------------------
// The balancer

const app = Fastify({ logger: false })
await app.register(goload, {
  backends: backends.map((backend) => ({ url: backend.url, id: String(backend.id) })),
  retries: 1,
  timeout: 1000,
  passiveHealth: { maxFails: 3, window: 2000, ejectFor: 500, consecutive5xx: 5 },
  healthCheck: { path: '/health', interval: 200, timeout: 500, unhealthyAfter: 2, healthyAfter: 1 },
  // 3 x 4 slots for 16 clients: the queue is in use all along.
  maxPending: 4,
  queue: { max: 32, timeout: 2000 },
  closeTimeout: 2000
})
await app.listen({ port: 0, host: '127.0.0.1' })
const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
console.log(`chaos: ${backends.length} backends, ${concurrency} clients, up to ${maxRequests} requests or ${duration / 1000} s, seed ${seed}`)

// ---------------------------------------------------------------------------------------------------------------
// Clients

const counts = {
  sent: 0,
  '2xx': 0,
  '4xx': 0,
  '5xx': 0,
  other: 0,
  aborted: 0,
  noAnswer: 0
}
/** 5xx answers by their code: FST_GOLOAD_* from the balancer, `backend <status>` when the backend's own. */
const fiveXX = new Map<string, number>()
const noAnswers: string[] = []
// No keep-alive: an aborted request takes its own connection with it, never one the next request would reuse.
const agent = new http.Agent({ keepAlive: false })
// Longest any request may take before it counts as unanswered: queue wait, then two attempts, with room to spare.
const clientTimeout = 15_000

function send (n: number): Promise<void> {
  return new Promise((resolve) => {
    const post = random() < 0.1
    const body = post ? 'x'.repeat(Math.floor(random() * 2048)) : undefined
    // About one request in twenty is abandoned by its client at a random moment: it asks for an answer in 200 ms
    // and gives up within 400, so about half of them leave while the backend is still working.
    const abortAfter = random() < 0.05 ? random() * 400 : undefined
    let aborting = false
    let done = false
    const timers: NodeJS.Timeout[] = []

    const finish = (outcome: 'answered' | 'aborted' | 'noAnswer', detail: string, status = 0): void => {
      if (done) return
      done = true
      for (const timer of timers) clearTimeout(timer)
      if (outcome === 'aborted') {
        counts.aborted++
      } else if (outcome === 'noAnswer') {
        counts.noAnswer++
        if (noAnswers.length < 10) noAnswers.push(`#${n} ${post ? 'POST' : 'GET'}: ${detail}`)
      } else if (status >= 200 && status < 300) {
        counts['2xx']++
      } else if (status >= 400 && status < 500) {
        counts['4xx']++
      } else if (status >= 500 && status < 600) {
        counts['5xx']++
        let code = `backend ${status}`
        try {
          const parsed = JSON.parse(detail) as { code?: unknown }
          if (typeof parsed.code === 'string' && parsed.code.startsWith('FST_GOLOAD_')) code = parsed.code
        } catch {}
        fiveXX.set(code, (fiveXX.get(code) ?? 0) + 1)
      } else {
        counts.other++
      }
      resolve()
    }
    const gone = (detail: string): void => { finish(aborting ? 'aborted' : 'noAnswer', detail) }

    const request = http.request(`${base}/item/${n}${abortAfter === undefined ? '' : '?delay=200'}`, {
      method: post ? 'POST' : 'GET',
      agent,
      headers: body === undefined ? {} : { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }
    }, (response) => {
      const chunks: Buffer[] = []
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => { finish('answered', Buffer.concat(chunks).toString(), response.statusCode) })
      response.on('error', (error) => { gone(`response cut: ${error.message}`) })
      response.on('close', () => { if (!response.complete) gone('response cut before its end') })
    })
    request.on('error', (error) => { gone(`${(error as NodeJS.ErrnoException).code ?? ''} ${error.message}`) })
    if (abortAfter !== undefined) {
      timers.push(setTimeout(() => {
        aborting = true
        request.destroy()
      }, abortAfter))
    }
    timers.push(setTimeout(() => { request.destroy(new Error(`no answer within ${clientTimeout} ms`)) }, clientTimeout))
    request.end(body)
  })
}

const started = Date.now()
const running = (): boolean => counts.sent < maxRequests && Date.now() - started < duration

let maxQueued = 0
async function client (): Promise<void> {
  while (running()) {
    maxQueued = Math.max(maxQueued, app.goload.stats().queued)
    counts.sent++
    await send(counts.sent)
  }
}

// Every half second or so, one backend crashes and comes back on the same port a little later.
let kills = 0
const load = { done: false }
async function killer (): Promise<void> {
  while (!load.done) {
    await sleep(300 + random() * 700)
    if (load.done) break
    const victim = backends[Math.floor(random() * backends.length)]
    await victim.kill()
    kills++
    await sleep(100 + random() * 700)
    await victim.start()
  }
}

const chaos = killer()
await Promise.all(Array.from({ length: concurrency }, client))
load.done = true
await chaos
const elapsed = Date.now() - started

// ---------------------------------------------------------------------------------------------------------------
// Settle and report

/** Every request released and nobody waiting, or false after `ms`. */
async function settle (ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  const idle = () => { const stats = app.goload.stats(); return stats.queued === 0 && stats.backends.every((b) => b.pending === 0) }
  while (!idle()) {
    if (Date.now() > deadline) return false
    await sleep(10)
  }
  return true
}
const settled = await settle(5000)
const stats = app.goload.stats()

const row = (label: string, value: string | number): void => { console.log(`${label.padEnd(30)} ${value}`) }
row('sent', counts.sent)
row('answered 2xx', counts['2xx'])
row('answered 4xx', counts['4xx'])
row('answered 5xx', counts['5xx'])
for (const [code, count] of [...fiveXX].sort()) row(`  ${code}`, count)
if (counts.other > 0) row('answered other', counts.other)
row('aborted by client', counts.aborted)
row('no answer', counts.noAnswer)
for (const line of noAnswers) console.log(`  ${line}`)
row('backend kills', kills)
row('most queued at once', maxQueued)
row('elapsed', `${(elapsed / 1000).toFixed(1)} s`)
console.log('\nbackend  served  failed  retried  pending')
for (const b of stats.backends) {
  console.log(`${b.id.padEnd(7)}  ${String(b.served).padStart(6)}  ${String(b.failed).padStart(6)}  ${String(b.retried).padStart(7)}  ${String(b.pending).padStart(7)}`)
}
row('queued', stats.queued)

const failures: string[] = []
if (counts.noAnswer > 0) failures.push(`${counts.noAnswer} requests not abandoned by their client got no answer`)
if (!settled) failures.push(`not settled: pending ${stats.backends.map((b) => b.pending).join(', ')}, queued ${stats.queued}`)
if (counts.sent !== counts['2xx'] + counts['4xx'] + counts['5xx'] + counts.other + counts.aborted + counts.noAnswer) {
  failures.push('some requests were not accounted for')
}

try {
  await app.close()
} catch (error) {
  failures.push(`app.close() failed: ${(error as Error).message}`)
}
await Promise.all(backends.map(async (backend) => { if (backend.up) await backend.kill() }))

if (failures.length > 0) {
  console.error(`\nFAILED: ${failures.join('; ')}`)
  process.exitCode = 1
} else {
  console.log('\nOK: every request answered, every count back to 0')
}
// Nothing should be left holding the process open; if something is, say so rather than hang.
setTimeout(() => {
  console.error('FAILED: something still holds the process open after close')
  process.exit(1)
}, 5000).unref()
