import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { childEnv } from './helpers/child.js'
import { request } from './helpers/client.js'
import { deadline, startDeadline } from './helpers/raw.js'
import { waitFor } from './helpers/servers.js'

const root = fileURLToPath(new URL('..', import.meta.url))

/**
 * `npm run status-demo` on ports the system picks, its output collected. Node with tsx's loader, not the tsx command:
 * that one passes Ctrl-C on and, if its child has not said over IPC within 30 ms that the signal arrived, SIGKILLs it
 * and exits 130, which a busy machine made this test see.
 */
function startDemo (t: Test, duration: number) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'example/status-demo.ts'], {
    cwd: root,
    env: childEnv({ DURATION: String(duration), CONNECTIONS: '4', PORT: '0', ADMIN_PORT: '0', BACKEND_PORTS: '0', GOLOAD_ADMIN_TOKEN: '' })
  })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const exited = once(child, 'exit')
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return {
    child,
    output: () => output,
    exited: () => deadline(exited, startDeadline, 'the demo to exit'),
    page: async () => {
      await waitFor(() => /status page: (\S+)/.test(output), `the page's address in\n${output}`, 20_000)
      return /status page: (\S+)/.exec(output)![1]
    }
  }
}

t.test('npm run status-demo: the example with load; prints the status page, whose /stats lists the three backends, and stops by itself', async (t) => {
  const demo = startDemo(t, 3)
  const page = await demo.page()
  t.match(page, /^http:\/\/127\.0\.0\.1:\d+\/$/, 'the page is on loopback')
  const html = await request(page)
  t.equal(html.status, 200)
  t.match(html.body, /<script type="module" src="status\.js">/)
  const stats = JSON.parse((await request(`${page}stats`)).body)
  t.equal(stats.pools[0].name, 'hello')
  t.equal(stats.pools[0].backends.length, 3)
  t.same(await demo.exited(), [0, null], demo.output())
  t.match(demo.output(), /load done: [1-9]\d* requests, 0 non-2xx, 0 errors/)
})

t.test('npm run status-demo: Ctrl-C stops the load, the balancer and the backends, with code 0', async (t) => {
  const demo = startDemo(t, 60)
  await demo.page()
  demo.child.kill('SIGINT')
  t.same(await demo.exited(), [0, null], demo.output())
  t.match(demo.output(), /load stopped after \d+ requests/)
})
