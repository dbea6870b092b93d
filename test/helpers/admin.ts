import http from 'node:http'
import Fastify from 'fastify'
import type { Test } from 'tap'
import { startAdmin, type Admin, type AdminOptions } from '../../lib/admin/server.js'
import type { Snapshot } from '../../lib/admin/snapshot.js'
import type { Registry } from '../../lib/registry.js'
import type { Balancer } from './servers.js'

/** The live pools of a balancer, as the admin reads them. */
export function poolsOf ({ app }: Balancer): () => ReturnType<Registry['entries']> {
  return () => (app.goload as Registry).entries()
}

/** The admin listener over a balancer's pools, on a free loopback port, closed when the test ends. */
export async function startAdminOf (t: Test, balancer: Balancer, options: Partial<AdminOptions> = {}): Promise<Admin> {
  const admin = await startAdmin({
    host: '127.0.0.1',
    port: 0,
    source: poolsOf(balancer),
    splits: () => (balancer.app.goload as Registry).splits,
    log: Fastify({ logger: false }).log,
    ...options
  })
  t.teardown(() => admin.close())
  return admin
}

export interface EventStream {
  /** Every snapshot received so far. */
  readonly snapshots: Snapshot[]
  /** Every other event received so far (`reconnect`, which ends a stream that has lasted its time). */
  readonly others: Array<{ event: string, data: string }>
  /** Resolves with the stream's first snapshot, the one sent at connect. */
  first: () => Promise<Snapshot>
  /** Resolves with the first snapshot received from now on that satisfies `match`. */
  next: (match?: (snapshot: Snapshot) => boolean, ms?: number) => Promise<Snapshot>
  response: http.IncomingMessage
  /** Resolves once the server has ended the stream. */
  ended: Promise<void>
  close: () => void
}

/** GET /events, parsing each `event: snapshot` as it comes. */
export async function openEvents (t: Test, url: string, headers: http.OutgoingHttpHeaders = {}): Promise<EventStream> {
  const response = await new Promise<http.IncomingMessage>((resolve, reject) => {
    http.get(`${url}/events`, { headers, agent: false }, resolve).on('error', reject)
  })
  const snapshots: Snapshot[] = []
  const others: Array<{ event: string, data: string }> = []
  const waiters: Array<{ match: (snapshot: Snapshot) => boolean, resolve: (snapshot: Snapshot) => void }> = []
  let buffer = ''
  response.setEncoding('utf8')
  response.on('data', (chunk: string) => {
    // Where an event's end may be: in the new chunk, or across its start. Searching the whole buffer each time made a
    // reader of megabyte snapshots slow enough, on a loaded machine, to be cut as one that stopped reading.
    let from = Math.max(0, buffer.length - 1)
    buffer += chunk
    let end: number
    while ((end = buffer.indexOf('\n\n', from)) >= 0) {
      const event = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      from = 0
      const fields = /^event: (\w+)\ndata: (.*)$/.exec(event)
      if (fields === null) throw new Error(`not an event: ${JSON.stringify(event)}`)
      if (fields[1] !== 'snapshot') {
        others.push({ event: fields[1], data: fields[2] })
        continue
      }
      const snapshot = JSON.parse(fields[2]) as Snapshot
      snapshots.push(snapshot)
      for (const waiter of [...waiters]) {
        if (waiter.match(snapshot)) {
          waiters.splice(waiters.indexOf(waiter), 1)
          waiter.resolve(snapshot)
        }
      }
    }
  })
  const ended = new Promise<void>((resolve) => { response.once('close', resolve) })
  const close = (): void => { response.destroy() }
  t.teardown(close)
  const next = (match: (snapshot: Snapshot) => boolean = () => true, ms = 5000): Promise<Snapshot> => new Promise<Snapshot>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no matching snapshot within ${ms} ms`)) }, ms)
    waiters.push({ match, resolve: (snapshot) => { clearTimeout(timer); resolve(snapshot) } })
  })
  return {
    snapshots,
    others,
    response,
    ended,
    close,
    next,
    first: async () => snapshots[0] ?? await next()
  }
}
