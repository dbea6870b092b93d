import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { childEnv } from './helpers/child.js'
import { hello, startBackend, startBalancer } from './helpers/servers.js'

const root = fileURLToPath(new URL('..', import.meta.url))

interface Run { code: number, stdout: string, stderr: string }

function runLoadTest (env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node_modules/.bin/tsx', ['example/load-test.ts'], { cwd: root, env: childEnv(env), timeout: 60_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr })
    })
  })
}

t.test('npm run load-test: a one-second run reports throughput and what each backend served', async (t) => {
  const { code, stdout, stderr } = await runLoadTest({ DURATION: '1', CONNECTIONS: '4' })
  t.equal(code, 0, `exits with code 0\n${stdout}\n${stderr}`)
  t.match(stdout, /req\/s\s+\d+(\.\d+)? \(average\)/)
  t.match(stdout, /non-2xx\s+0\b/)
  t.match(stdout, /errors\s+0\b/)

  // One table row per backend: id, delay, served count, share.
  let total = 0
  for (const id of ['1', '2', '3']) {
    const row = new RegExp(`^${id}\\s+\\S+\\s+(\\d+)\\s+\\d+\\.\\d%$`, 'm').exec(stdout)
    t.ok(row, `a served count for backend ${id}`)
    total += Number(row?.[1] ?? 0)
  }
  t.ok(total > 0, `the backends served ${total} requests in all`)
})

t.test('TARGET: loads a balancer already running, on loopback only', async (t) => {
  const backend = await startBackend(t, hello('x'))
  const balancer = await startBalancer(t, { backends: [backend.url] })
  const { code, stdout, stderr } = await runLoadTest({ DURATION: '1', CONNECTIONS: '2', TARGET: balancer.url })
  t.equal(code, 0, `exits with code 0\n${stdout}\n${stderr}`)
  t.match(stdout, `against ${balancer.url}`)
  t.match(stdout, /non-2xx\s+0\b/)
  t.ok(balancer.app.goload.stats().backends[0].served > 0, 'the running balancer took the load')
  const refused = await runLoadTest({ DURATION: '1', TARGET: 'http://example.com' })
  t.equal(refused.code, 1)
  t.match(refused.stderr, /TARGET must be on loopback/)
})
