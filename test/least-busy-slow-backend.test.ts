import t from 'tap'
import type { Test } from 'tap'
import type { Strategy } from '../lib/index.js'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer, type Handler } from './helpers/servers.js'

// Two backends answer in 2 ms; a third is slow. 12 clients each send 20 requests back to back.
const delayed = (id: string, ms: number): Handler => (req, res) => {
  req.resume()
  setTimeout(() => res.end(`Hello from ${id}`), ms)
}
const clients = 12
const requestsEach = 20

/** Each client sends its requests one after another; `served` counts the answers by backend. */
async function sendAll (url: string, served: Record<string, number>, finished = () => {}): Promise<void> {
  await Promise.all(Array.from({ length: clients }, async () => {
    for (let i = 0; i < requestsEach; i++) served[(await request(url)).body.slice(-1)]++
    finished()
  }))
}

/**
 * least-busy and p2c choose by requests in flight. A third backend that answers nothing while the others' clients
 * run measures that choice whatever the machine's load (a backend merely slower gets a share that grows as a loaded
 * machine slows the fast ones too): it holds each request it gets until every client is either done or waiting on
 * it, then answers. `held`: the requests it had by then.
 */
async function againstAHoldingBackend (t: Test, strategy: Strategy) {
  const fast1 = await startBackend(t, delayed('1', 2))
  const fast2 = await startBackend(t, delayed('2', 2))
  const waiting: Array<() => void> = []
  let finished = 0
  let held: number | undefined
  const releaseOnceStuck = (): void => {
    if (held !== undefined || finished + waiting.length < clients) return
    held = waiting.length
    for (const answer of waiting.splice(0)) answer()
  }
  const holding = await startBackend(t, (req, res) => {
    req.resume()
    const answer = (): void => { res.end('Hello from 3') }
    if (held !== undefined) {
      answer()
      return
    }
    waiting.push(answer)
    releaseOnceStuck()
  })
  const { app, url } = await startBalancer(t, { strategy, backends: [fast1.url, fast2.url, holding.url] })
  const served = { 1: 0, 2: 0, 3: 0 }
  await sendAll(url, served, () => {
    finished++
    releaseOnceStuck()
  })
  await settled(app)
  return { held: held!, served }
}

t.test('least-busy sends a backend that answers nothing no more than its share of the first burst: 4 of 12', async (t) => {
  const { held, served } = await againstAHoldingBackend(t, 'least-busy')
  // It gets a request only while it has no more in flight (k) than each of the others: 3k <= 11 before, 4 after.
  // Round-robin would send it every third request until all 12 clients waited on it.
  t.ok(held <= 4, `${held} requests held while the fast backends answered`)
  t.equal(served[1] + served[2] + served[3], clients * requestsEach, 'every request answered')
})

t.test('p2c also keeps requests away from it: at most 6, the fewer in flight of two chosen at random', async (t) => {
  const { held, served } = await againstAHoldingBackend(t, 'p2c')
  // It goes only when drawn against one with as many in flight (k) or more, the third having 0 or more: 2k <= 11
  // before, 6 after.
  t.ok(held <= 6, `${held} requests held while the fast backends answered`)
  t.equal(served[1] + served[2] + served[3], clients * requestsEach, 'every request answered')
})

t.test('round-robin, the baseline, gives a slow backend its full third', async (t) => {
  const fast1 = await startBackend(t, delayed('1', 2))
  const fast2 = await startBackend(t, delayed('2', 2))
  const slow = await startBackend(t, delayed('3', 60))
  const { app, url } = await startBalancer(t, { strategy: 'round-robin', backends: [fast1.url, fast2.url, slow.url] })
  const served = { 1: 0, 2: 0, 3: 0 }
  await sendAll(url, served)
  t.equal(served[3], 80, 'one request in three')
  await settled(app)
})

t.test('peak-ewma keeps nearly everything away from a backend 150 times slower once it has measured it', async (t) => {
  // peak-EWMA chooses by latency, so this one is in time: the slow backend takes 300 ms. On a loaded machine the
  // fast ones slow too (they run in this process); at 300 ms the slow one still costs more than a fast one with
  // several requests in flight. The first round measures the backends; the second shows the choice made on that.
  const fast1 = await startBackend(t, delayed('1', 2))
  const fast2 = await startBackend(t, delayed('2', 2))
  const slow = await startBackend(t, delayed('3', 300))
  const { app, url } = await startBalancer(t, { strategy: 'peak-ewma', backends: [fast1.url, fast2.url, slow.url] })
  await sendAll(url, { 1: 0, 2: 0, 3: 0 })
  const served = { 1: 0, 2: 0, 3: 0 }
  await sendAll(url, served)
  t.ok(served[3] / 240 < 0.05, `slow backend served ${served[3]} of 240 in the second round`)
  await settled(app)
})
