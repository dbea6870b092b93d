import t from 'tap'
import { WaitQueue } from '../lib/pool/queue.js'

// A pool retired by a reload closes once its queue has been served: emptied() says when nobody waits any more.
const waiter = { ready () {}, expired () {} }

t.test('emptied() settles at once when nobody waits, and once the last waiter left, whichever way it left', async (t) => {
  const queue = new WaitQueue<number>(10, 60_000)
  await queue.emptied()
  t.pass('an empty queue is emptied already')

  const cancelled = queue.enqueue(waiter)!
  queue.enqueue(waiter)
  let settled = false
  const emptied = queue.emptied().then(() => { settled = true })
  queue.cancel(cancelled)
  await Promise.resolve()
  t.notOk(settled, 'not while one still waits')
  t.ok(queue.dispatch(1))
  await emptied
  t.equal(queue.length, 0, 'settled with nobody waiting')

  queue.enqueue(waiter)
  const again = queue.emptied()
  queue.close()
  await again
  t.pass('an expiry of the last waiter settles it too')
})
