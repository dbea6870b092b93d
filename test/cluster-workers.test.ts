import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { childEnv } from './helpers/child.js'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { deadUrl, hello, startBackend, waitFor } from './helpers/servers.js'

const root = fileURLToPath(new URL('..', import.meta.url))

t.test('--workers 2 runs two balancer processes on one port; SIGTERM stops them all', async (t) => {
  const backend = await startBackend(t, hello('1'))
  const port = Number(new URL(await deadUrl()).port)
  const child = spawn(process.execPath, ['--import', 'tsx', 'example/balancer.ts', '--workers', '2'], {
    cwd: root,
    env: childEnv({ BACKENDS: backend.url, PORT: String(port), HOST: '127.0.0.1', STRATEGY: 'p2c', LOG: 'off' }),
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = once(child, 'exit')
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let output = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  await waitFor(() => output.includes('2 worker processes'), 'the primary to fork its workers', 20_000)

  await waitFor(() => output.match(/goload listening on port \d+, pid \d+/g)?.length === 2, 'both workers to listen', 20_000)
  const pids = new Set(output.match(/pid \d+/g))
  t.equal(pids.size, 2, 'two processes')
  for (let i = 0; i < 5; i++) t.equal((await request(`http://127.0.0.1:${port}/`)).body, 'Hello from 1', 'proxied')

  child.kill('SIGTERM')
  const [code] = await deadline(exited, 15_000, 'the primary to exit after SIGTERM')
  t.equal(code, 0, 'the primary exits once its workers have closed')
})
