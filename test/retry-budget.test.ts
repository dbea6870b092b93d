// retryBudget (issue 18, part 5; Envoy's retry_budget, Finagle's RetryBudget): against one refusing backend beside a
// good one, retries in flight stay under `percent` of the requests in flight, plus minPerSecond a second; a retry
// over budget is not made, the request gets its first failure's 502, and it is counted. Without the key, every
// failure is retried as before.
import type http from 'node:http'
import t from 'tap'
import type { GoloadOptions } from '../lib/index.js'
import { request, type Answer } from './helpers/client.js'
import { parseExposition, sample } from './helpers/prometheus.js'
import { deadUrl, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

/**
 * A pool whose good backend holds `held` requests (until release()), then a refusing backend added beside it:
 * least-busy sends each new request to the refusing one (none pending), whose failure may be retried on the good one.
 */
async function holdingPool (t: Parameters<typeof startBackend>[0], held: number, options: Partial<GoloadOptions>) {
  const waiting: http.ServerResponse[] = []
  const good = await startBackend(t, (req, res) => { req.resume(); waiting.push(res) })
  const balancer = await startBalancer(t, { backends: [{ url: good.url, id: 'good' }], name: 'api', passiveHealth: false, metrics: true, ...options } as GoloadOptions)
  const answers: Array<Promise<Answer>> = []
  for (let i = 0; i < held; i++) answers.push(request(balancer.url))
  await waitFor(() => good.active === held, `${held} requests held by the good backend`)
  balancer.app.goload.add({ url: await deadUrl(), id: 'refusing' })
  /** One request: retried (it reached the good backend, and is held there) or answered (with the first failure). */
  const send = async (): Promise<'retried' | Answer> => {
    const before = good.received
    let answered: Answer | undefined
    const answer = request(balancer.url)
    answers.push(answer.then((value) => (answered = value)))
    await waitFor(() => answered !== undefined || good.received > before, 'the request to be retried or answered')
    return answered ?? 'retried'
  }
  const release = async () => {
    for (const response of waiting.splice(0)) response.end('ok')
    return await Promise.all(answers)
  }
  return { ...balancer, good, send, release }
}

t.test('retries bounded by percent of the requests in flight and minPerSecond; the rest answered with the first failure, counted', async (t) => {
  const { app, send, release } = await holdingPool(t, 10, { retryBudget: { percent: 20, minPerSecond: 1 } })
  const outcomes: Array<'retried' | Answer> = []
  // Few after the floor's token is taken: it refills at one a second, far slower than these requests.
  for (let i = 0; i < 6; i++) outcomes.push(await send())
  // At each failure, retries in flight must be under 20% of the requests in flight (the failing one included):
  // 0 < 2.2, 1 < 2.4, 2 < 2.6 retry; 3 < 2.8 does not, and takes the one token of minPerSecond; 4 < 3.0 does not.
  t.same(outcomes.slice(0, 4), ['retried', 'retried', 'retried', 'retried'], 'three within the percent, one on the floor')
  for (const outcome of outcomes.slice(4)) {
    t.not(outcome, 'retried', 'over budget: not retried')
    if (outcome === 'retried') continue
    t.equal(outcome.status, 502, 'answered as with retries exhausted')
    t.equal(JSON.parse(outcome.body).code, 'FST_GOLOAD_BAD_GATEWAY')
  }
  let metrics = parseExposition(await app.goload.metrics!.metrics())
  t.equal(sample(metrics, 'goload_pool_retries_budget_exhausted_total', { pool: 'api' }), 2, 'the retries refused are counted')
  t.equal(sample(metrics, 'goload_backend_retries_total', { pool: 'api', backend: 'refusing' }), 4, 'the retries made, as before')
  t.equal(sample(metrics, 'goload_pool_retries_in_flight', { pool: 'api' }), 4)

  const answers = await release()
  t.equal(answers.filter((answer) => answer.status === 200).length, 14, 'the held and the retried requests are answered by the good backend')
  await settled(app)
  metrics = parseExposition(await app.goload.metrics!.metrics())
  t.equal(sample(metrics, 'goload_pool_retries_in_flight', { pool: 'api' }), 0, 'no retry in flight once they ended')
})

t.test('without retryBudget, every failure is retried, as before', async (t) => {
  const { app, send, release } = await holdingPool(t, 10, {})
  for (let i = 0; i < 6; i++) t.equal(await send(), 'retried')
  const metrics = parseExposition(await app.goload.metrics!.metrics())
  t.equal(sample(metrics, 'goload_pool_retries_budget_exhausted_total', { pool: 'api' }), undefined, 'no budget, no such sample')
  await release()
  await settled(app)
})

t.test('a bad value is refused, naming the key', async (t) => {
  await t.rejects(startBalancer(t, { backends: ['http://127.0.0.1:1'], retryBudget: { percent: 120 } }), { code: 'FST_GOLOAD_INVALID_OPTION', message: /retryBudget\.percent/ })
  await t.rejects(startBalancer(t, { backends: ['http://127.0.0.1:1'], retryBudget: { minPerSecond: 0.5 } }), { code: 'FST_GOLOAD_INVALID_OPTION', message: /retryBudget\.minPerSecond/ })
})
