import type { Test } from 'tap'
import { slowUploads } from './raw.js'
import { startBackend, startBalancer, waitFor } from './servers.js'

/**
 * The slow-client reproduction: two backends that read a body and answer 'ok', a balancer with the defaults, and
 * `count` connections trickling uploads of `contentLength` bytes at 1 byte/s; resolves once the balancer has seen
 * every one. `uploadsAtBackends()` counts the uploads that reached a backend.
 */
export async function trickledUploads (t: Test, count: number, contentLength: number) {
  let atBackends = 0
  const answer = () => startBackend(t, (req, res) => {
    if (req.url === '/upload') atBackends++
    req.on('error', () => {})
    req.resume()
    req.on('end', () => { res.end('ok') })
  })
  const backends = [await answer(), await answer()]
  let seen = 0
  const { app, port, url } = await startBalancer(t, { backends: backends.map((b) => b.url) }, {}, (app) => {
    app.addHook('onRequest', async (request) => { if (request.url === '/upload') seen++ })
  })
  const uploads = await slowUploads(t, port, count, contentLength)
  await waitFor(() => seen === count, `the balancer to have all ${count} uploads`, 10_000)
  return { app, url, uploads, uploadsAtBackends: () => atBackends }
}
