// A pool named by two listeners is one pool: a request in flight through one port counts when the other port's
// route picks a backend.
import t from 'tap'
import { request } from './helpers/client.js'
import { configFile, freePort, runMain } from './helpers/cli.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

t.test('two listeners sharing a pool share its counts', async (t) => {
  const held: Array<() => void> = []
  const a = await startBackend(t, (req, res) => {
    req.resume()
    if (req.url === '/slow') held.push(() => res.end('Hello from a'))
    else res.end('Hello from a')
  })
  const b = await startBackend(t, hello('b'))
  const [first, second] = [await freePort(), await freePort()]
  const file = await configFile(t, `listeners:
  - port: ${first}
    host: 127.0.0.1
    routes: [{ pool: web }]
  - port: ${second}
    host: 127.0.0.1
    routes: [{ pool: web }]
pools:
  web:
    backends: [${a.url}, ${b.url}]
`)
  const run = runMain(t, ['--config', file])
  await run.logged(/goload listening/, 'goload to listen')
  const slow = request(`http://127.0.0.1:${first}/slow`)
  await waitFor(() => held.length === 1, 'the slow request at a, through the first port')
  // Two pools would each see a idle and pick it, listed first; one pool sees it busy.
  t.equal((await request(`http://127.0.0.1:${second}/`)).body, 'Hello from b')
  held[0]()
  t.equal((await slow).status, 200)
})
