// The response deadlines' sweep (lib/proxy/deadlines.ts): every attempt that runs out of time fails once, never
// early, and an attempt that left the sweep (answered, or its exchange ended) never fails, whatever the order in
// which attempts join and leave. Margins are generous for a loaded machine.
import t from 'tap'
import { Deadlines, type TimedAttempt } from '../lib/proxy/deadlines.js'

interface Attempt extends TimedAttempt { name: string, startedAt: number, timeout: number }

// The sweep's interval is unref'd, as it must be in a server: a timer of the test's own keeps the process up.
const keepAlive = setInterval(() => {}, 1000)
t.teardown(() => { clearInterval(keepAlive) })

function attempt (name: string, timeout: number): Attempt {
  return { name, startedAt: 0, timeout, deadlineAt: 0, deadlineIndex: -1 }
}

t.test('attempts out of time fail once each, not before their deadline; stopped ones never', async (t) => {
  const expired: Array<{ name: string, late: number }> = []
  let allExpired: () => void
  const done = new Promise<void>((resolve) => { allExpired = resolve })
  // A 300 ms pool timeout: swept every 30 ms.
  const deadlines = new Deadlines<Attempt>(300, (attempt) => {
    expired.push({ name: attempt.name, late: performance.now() - attempt.startedAt - attempt.timeout })
    if (expired.length === 3) allExpired()
  })
  const attempts = [attempt('a', 40), attempt('b', 80), attempt('c', 60), attempt('d', 100), attempt('e', 50)]
  for (const each of attempts) {
    each.startedAt = performance.now()
    deadlines.start(each, each.timeout)
  }
  // The first and the middle one leave: each time another is moved into the gap they leave.
  deadlines.stop(attempts[0])
  deadlines.stop(attempts[2])
  deadlines.stop(attempts[2])
  t.equal(deadlines.timing, 3)
  await done
  t.same(expired.map(({ name }) => name).sort(), ['b', 'd', 'e'], 'each remaining attempt failed, the stopped ones not')
  for (const { name, late } of expired) {
    t.ok(late >= -1, `${name} not before its deadline (${late.toFixed(1)} ms after it)`)
    t.ok(late < 250, `${name} soon after it (${late.toFixed(1)} ms)`)
  }
  t.equal(deadlines.timing, 0)
  // An attempt that expired is out of the sweep: stopping it as its exchange ends is harmless.
  deadlines.stop(attempts[1])
  t.equal(deadlines.timing, 0)
})

t.test('an attempt started again after a retry is timed from its new start', async (t) => {
  const retried = attempt('retried', 40)
  const expired = new Promise<number>((resolve) => {
    const deadlines = new Deadlines<Attempt>(100, () => { resolve(performance.now()) })
    deadlines.start(retried, 1000)
    deadlines.stop(retried)
    retried.startedAt = performance.now()
    deadlines.start(retried, 40)
  })
  const at = await expired
  t.ok(at - retried.startedAt >= 39, 'not before the new deadline')
  t.ok(at - retried.startedAt < 290, 'not the first deadline of 1000 ms')
})
