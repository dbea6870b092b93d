import t from 'tap'
import { request } from './helpers/client.js'
import { pendingCounts, settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

t.test('a request counts as pending while in flight and is released once when its response ends', async (t) => {
  let answer: (() => void) | undefined
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    answer = () => res.end('done')
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url] })

  const pending = request(url + '/slow')
  await waitFor(() => answer !== undefined, 'the backend to receive the request')
  t.same(pendingCounts(app), [1], 'pending while the backend works')
  answer!()
  t.equal((await pending).body, 'done')
  await settled(app)
  t.same(pendingCounts(app), [0])

  for (let i = 0; i < 20; i++) {
    answer = undefined
    const next = request(url)
    await waitFor(() => answer !== undefined, 'the backend to receive the request')
    answer!()
    await next
  }
  await settled(app)
  const [stats] = app.goload.stats().backends
  t.equal(stats.served, 21, 'every answer counted once')
  t.equal(stats.failed, 0)
  t.equal(stats.pending, 0, 'never decremented twice')
})
