import t from 'tap'
import type { Test } from 'tap'
import type { Strategy } from '../lib/index.js'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer, type Handler } from './helpers/servers.js'

// Two backends answer in 2 ms, one in 60 ms (30× slower); 12 clients each send requests back to back.
const delayed = (id: string, ms: number): Handler => (req, res) => {
  req.resume()
  setTimeout(() => res.end(`Hello from ${id}`), ms)
}

/** 12 clients, `rounds` rounds of 20 requests each; the counts of the last round. */
async function run (t: Test, strategy: Strategy, rounds = 1): Promise<Record<string, number>> {
  const fast1 = await startBackend(t, delayed('1', 2))
  const fast2 = await startBackend(t, delayed('2', 2))
  const slow = await startBackend(t, delayed('3', 60))
  const { app, url } = await startBalancer(t, { strategy, backends: [fast1.url, fast2.url, slow.url] })
  let served: Record<string, number> = {}
  const client = async () => {
    for (let i = 0; i < 20; i++) {
      const answer = await request(url)
      served[answer.body.slice(-1)]++
    }
  }
  for (let round = 0; round < rounds; round++) {
    served = { 1: 0, 2: 0, 3: 0 }
    await Promise.all(Array.from({ length: 12 }, client))
  }
  await settled(app)
  return served
}

t.test('least-busy keeps most requests away from a backend 30 times slower', async (t) => {
  const served = await run(t, 'least-busy')
  const total = served[1] + served[2] + served[3]
  t.equal(total, 240)
  // Round-robin gives it 80 (below). The backends run in this process, so a loaded machine slows the fast ones too
  // and least-busy's share for the slow one creeps up: 46 and 48 were seen with the full suite running beside it.
  t.ok(served[3] / total < 0.25, `slow backend served ${served[3]} of ${total}, well under a third`)
})

t.test('round-robin, the baseline, gives the slow backend its full third', async (t) => {
  const served = await run(t, 'round-robin')
  t.equal(served[3], 80, 'one request in three')
})

t.test('p2c also keeps most requests away from the slow backend', async (t) => {
  const served = await run(t, 'p2c')
  t.ok(served[3] / 240 < 0.25, `slow backend served ${served[3]} of 240`)
})

t.test('peak-ewma keeps nearly everything away from the slow backend once it has measured it', async (t) => {
  // The first round measures the backends; the second shows the choice made on what was measured.
  const served = await run(t, 'peak-ewma', 2)
  t.ok(served[3] / 240 < 0.05, `slow backend served ${served[3]} of 240 in the second round`)
})
