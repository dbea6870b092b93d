// The wait queue holds a request (its exchange, and the body read ahead, up to bufferBody) only while it waits: one
// that timed out or whose client left is let go at once, even while no backend frees up to move the queue on.
// Issue 15 item 5: 2,000 POSTs of 32 KiB answered 503 left 62.7 MiB held after GC.
import type http from 'node:http'
import t from 'tap'
import { WaitQueue, type Waiter } from '../lib/pool/queue.js'
import { kExchange, type Response } from '../lib/proxy/forward.js'
import { request } from './helpers/client.js'
import { collectGarbage, stillHeld } from './helpers/gc.js'
import { startBackend, startBalancer, waitFor } from './helpers/servers.js'

const bodySize = 32 * 1024

/**
 * Queues `count` waiters each holding a body's worth of memory, seen by the test only through WeakRefs; `cancel`
 * cancels them all. Not async: a suspended async function may keep its dead temporaries, and with them the waiters.
 */
function queueHeavy (queue: WaitQueue<number>, count: number, told: { expired: number }): { refs: Array<WeakRef<object>>, cancel: () => void } {
  const refs: Array<WeakRef<object>> = []
  const entries: unknown[] = []
  for (let i = 0; i < count; i++) {
    const waiter: Waiter<number> & { body: Buffer } = {
      body: Buffer.alloc(bodySize),
      ready: () => { throw new Error('a heavy waiter was dispatched') },
      expired: () => { told.expired++ }
    }
    refs.push(new WeakRef(waiter))
    entries.push(queue.enqueue(waiter))
  }
  const cancel = () => {
    for (const entry of entries) queue.cancel(entry as NonNullable<ReturnType<typeof queue.enqueue>>)
    entries.length = 0
  }
  return { refs, cancel }
}

t.test('an entry that expired is let go at once, though nothing was dispatched since', async (t) => {
  const queue = new WaitQueue<number>(1000, 20)
  const told = { expired: 0 }
  const { refs } = queueHeavy(queue, 200, told)
  await waitFor(() => told.expired === 200, 'every entry to expire')
  t.equal(queue.length, 0)
  await collectGarbage()
  t.equal(stillHeld(refs), 0, 'no expired waiter is held by the queue')
})

t.test('an entry cancelled is let go at once, whether another one still waits or none does', async (t) => {
  const queue = new WaitQueue<number>(1000, 60_000)
  const served: number[] = []
  const first = queue.enqueue({ ready: (item) => { served.push(item) }, expired: () => { t.fail('expired') } })!
  const told = { expired: 0 }
  const behind = queueHeavy(queue, 200, told)
  behind.cancel()
  t.equal(queue.length, 1)
  await collectGarbage()
  t.equal(stillHeld(behind.refs), 0, 'cancelled behind one still waiting, none is held')

  const last = queueHeavy(queue, 200, told)
  queue.cancel(first)
  last.cancel()
  t.equal(queue.length, 0)
  await collectGarbage()
  t.equal(stillHeld(last.refs), 0, 'cancelled until the queue is empty, none is held')
  t.equal(queue.dispatch(1), false, 'nobody left to dispatch to')
  t.same(served, [])
  t.equal(told.expired, 0, 'a cancelled waiter is not told anything')
})

t.test('entries leave in order, whichever of them (first, middle, last) left early', async (t) => {
  const queue = new WaitQueue<string>(10, 60_000)
  const served: string[] = []
  const enqueue = (name: string) => queue.enqueue({ ready: (worker) => { served.push(`${name}@${worker}`) }, expired: () => { served.push(`${name} expired`) } })!
  const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map(enqueue)
  queue.cancel(a)
  queue.cancel(c)
  queue.cancel(e)
  queue.cancel(c)
  t.equal(queue.length, 2, 'a second cancel of the same entry changes nothing')
  t.ok(queue.dispatch('w1'))
  enqueue('f')
  t.ok(queue.dispatch('w2'))
  queue.cancel(b)
  queue.cancel(d)
  t.equal(queue.length, 1)
  queue.close()
  t.same(served, ['b@w1', 'd@w2', 'f expired'])
  t.equal(queue.length, 0)
  t.equal(queue.dispatch('w3'), false)
  t.ok(enqueue('g') !== undefined, 'a queue emptied by close takes entries again')
  queue.close()
})

t.test('500 POSTs of 32 KiB answered 503 QUEUE_TIMEOUT: their exchanges and bodies are let go, memory comes back', async (t) => {
  const held: http.ServerResponse[] = []
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    if (req.url === '/busy') held.push(res)
    else res.end('served')
  })
  const bodies: Array<WeakRef<object>> = []
  const { app, url } = await startBalancer(t, { backends: [backend.url], maxPending: 1, queue: { max: 1000, timeout: 50 } }, {}, (app) => {
    app.addHook('onResponse', async (_request, reply) => {
      const body = (reply.raw as Response)[kExchange]?.body
      if (body !== undefined) bodies.push(new WeakRef(body))
    })
  })
  const busy = request(url + '/busy')
  await waitFor(() => held.length === 1, 'the one request the backend may have')

  const payload = Buffer.alloc(bodySize, 'x')
  const post = () => request(url + '/upload', { method: 'POST', body: payload })
  t.equal((await post()).status, 503, 'a first one warms up the path before the baseline is taken')
  bodies.length = 0
  await collectGarbage()
  const before = process.memoryUsage()

  const answers = await Promise.all(Array.from({ length: 500 }, post))
  t.same(new Set(answers.map((answer) => JSON.parse(answer.body).code)), new Set(['FST_GOLOAD_QUEUE_TIMEOUT']), 'every one timed out in the queue')
  t.equal(app.goload.stats().queued, 0)
  t.equal(bodies.length, 500, 'each answer was seen with its body read ahead')
  await collectGarbage()
  t.equal(stillHeld(bodies), 0, 'no body read ahead is still held')
  const after = process.memoryUsage()
  const grown = (after.arrayBuffers - before.arrayBuffers + after.heapUsed - before.heapUsed) / 2 ** 20
  // Held, they would be 500 × 32 KiB = 15.6 MiB; a margin for what the test itself allocates.
  t.ok(grown < 6, `buffers and heap within 6 MiB of where they were before the burst (grew ${grown.toFixed(1)} MiB)`)

  held[0].end('done')
  t.equal((await busy).status, 200)
  t.equal((await request(url + '/after')).status, 200, 'the queue works on once the backend frees up')
})
