import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { childEnv } from './helpers/child.js'
import { request } from './helpers/client.js'
import { deadline, startDeadline } from './helpers/raw.js'

const root = fileURLToPath(new URL('..', import.meta.url))

t.test('npm run example: goload serving example/goload.yaml spreads requests over its three backends and stops cleanly on SIGTERM', async (t) => {
  const child = spawn('node_modules/.bin/tsx', ['example/server.ts'], {
    cwd: root,
    env: childEnv({ PORT: '0', BACKEND_PORTS: '0', ADMIN_PORT: '0' }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })

  // The example prints its real port once it listens: PORT=0 lets the system pick a free one.
  let output = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  const [port, statusPage] = await deadline(new Promise<[number, string]>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk
      const match = /goload balancing .* on http:\/\/localhost:(\d+)[^\n]*\nstatus page: (http:\/\/127\.0\.0\.1:\d+)[^\n]*\n/.exec(output)
      if (match !== null) resolve([Number(match[1]), match[2]])
    })
    child.once('exit', (code) => reject(new Error(`example exited with code ${code} before listening:\n${output}`)))
  }), 30_000, 'the example to listen')

  const seen = new Set<string>()
  for (let i = 0; i < 30 && seen.size < 3; i++) {
    const answer = await request(`http://127.0.0.1:${port}/`)
    t.equal(answer.status, 200)
    t.match(answer.body, /^Hello from [123]\n?$/)
    seen.add(answer.body.trim())
  }
  t.same([...seen].sort(), ['Hello from 1', 'Hello from 2', 'Hello from 3'], 'every backend answered')
  // The status page and the admin API, on loopback without a token.
  t.equal((await request(statusPage + '/')).status, 200)
  const stats = JSON.parse((await request(statusPage + '/stats')).body) as { pools: Array<{ name: string, backends: unknown[] }> }
  t.match(stats.pools, [{ name: 'hello', backends: { length: 3 } }])
  // The logs go through pino-pretty: one readable line per request.
  await deadline(new Promise<void>((resolve) => {
    const check = (): void => { if (/INFO: goload: access GET \/ → 200 in [\d.]+ ms \{"goload":\{"pool":"hello","backend":"http:\/\/127\.0\.0\.1:\d+"/.test(output)) resolve() }
    check()
    child.stdout.on('data', check)
  }), 15_000, 'a readable access line')

  child.kill('SIGTERM')
  const [code, signal] = await deadline(exited, startDeadline, 'the example to exit after SIGTERM')
  t.equal(signal, null, 'not killed by the signal: the example handles it')
  t.equal(code, 0, 'exits with code 0')
})
