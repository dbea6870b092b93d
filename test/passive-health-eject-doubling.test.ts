// Passive health: each ejection that follows soon after the one before lasts twice as long (Envoy's
// base_ejection_time × the number of ejections, nginx's fail_timeout doubled), at most five minutes.
// Here a backend that resets every connection is ejected at each failure (maxFails: 1) for ejectFor = 800 ms, fails
// again as soon as it is back, and is ejected for 1600 ms, then 3200 ms.
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { request } from './helpers/client.js'
import { settled, startBackend, startBalancer, waitFor } from './helpers/servers.js'

const ejectFor = 800

t.test('an ejection that follows soon after the last one lasts twice as long', async (t) => {
  // Accepts each connection and destroys it at once: every request sent to it fails.
  const dropper = net.createServer((socket) => { socket.destroy() })
  await new Promise<void>((resolve) => dropper.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => dropper.close(() => { resolve() })))
  const live = await startBackend(t)
  const { app, url } = await startBalancer(t, {
    backends: [{ url: `http://127.0.0.1:${(dropper.address() as AddressInfo).port}`, id: 'dropper' }, { url: live.url, id: 'live' }],
    strategy: 'round-robin',
    passiveHealth: { maxFails: 1, window: 60_000, ejectFor }
  })
  const dropperStats = () => app.goload.stats().backends[0]

  for (const [n, expected] of [[1, ejectFor], [2, ejectFor * 2], [3, ejectFor * 4]]) {
    // Round-robin alternates: within two requests the dropper gets one, fails (the request goes on to the live
    // backend) and is ejected. The time of the ejection is between before and after.
    let before = 0
    let after = 0
    for (let i = 0; i < 4 && dropperStats().failed < n; i++) {
      before = Date.now()
      t.equal((await request(url)).status, 200, 'answered')
      after = Date.now()
    }
    t.equal(dropperStats().failed, n, `failure ${n}`)
    const until = dropperStats().ejectedUntil
    t.not(until, null, `ejection ${n}`)
    // until = time of the ejection + its length, so its length is between until - after and until - before.
    t.ok(until! - after <= expected && expected <= until! - before,
      `ejection ${n} lasts ${expected} ms (between ${until! - after} and ${until! - before} ms)`)
    if (n < 3) await waitFor(() => dropperStats().ejectedUntil === null, `the end of ejection ${n}`, expected + 5000)
  }
  await settled(app)
})
