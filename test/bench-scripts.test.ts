// Smoke tests of the issue 17 bench scripts with tiny settings: each starts its servers, measures, prints its table
// and stops by itself. No figure is asserted beyond being a number: speed is never tested.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { childEnv } from './helpers/child.js'

const root = fileURLToPath(new URL('..', import.meta.url))

interface Run { code: number, stdout: string, stderr: string }

function runBench (script: string, env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    // A guard only: each script stops by itself, in seconds on an idle machine, in minutes beside the full suite.
    execFile('node_modules/.bin/tsx', [`bench/${script}`], { cwd: root, env: childEnv(env), timeout: 240_000 }, (error, stdout, stderr) => {
      const killed = error?.killed === true ? `\nkilled after 240 s (${error.signal ?? 'no signal'})` : ''
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr: stderr + killed })
    })
  })
}

const number = String.raw`\d+(\.\d+)?`

t.test('bench:websocket echoes messages through goload and directly, and prints both rows', async (t) => {
  const { code, stdout, stderr } = await runBench('websocket.ts', { DURATION: '1', WARMUP: '0', ROUNDS: '2', CONNECTIONS: '1', SIZE: '65536' })
  t.equal(code, 0, `exits with code 0\n${stdout}\n${stderr}`)
  // Two rounds: two figures per row, summed into the row's total.
  const rounds = String.raw`\d+ / \d+`
  t.match(stdout, new RegExp(`^\\| direct to the echo backend \\| [1-9]\\d* \\| ${number} \\| 1\\.00× \\| ${rounds} \\| - \\|$`, 'm'))
  t.match(stdout, new RegExp(`^\\| goload plugin \\(tunnel\\) \\| [1-9]\\d* \\| ${number} \\| ${number}× \\| ${rounds} \\| ${number} ms \\|$`, 'm'))
})

t.test('bench:memory opens idle connections and WebSockets on goload and @fastify/http-proxy and prints the RSS they add', async (t) => {
  const { code, stdout, stderr } = await runBench('memory.ts', { CONNECTIONS: '20', WEBSOCKETS: '5', SETTLE: '0' })
  t.equal(code, 0, `exits with code 0\n${stdout}\n${stderr}`)
  const mib = String.raw`-?\d+\.\d MiB`
  for (const name of ['@fastify/http-proxy, one upstream', 'goload plugin']) {
    t.match(stdout, new RegExp(`^\\| ${name} \\| ${mib} \\| ${mib} \\| ${mib} \\| ${mib} \\| ${mib} \\|$`, 'm'), `a row for ${name}`)
  }
})

t.test('npm run bench: the workers scenario gives each goload command row a CPU per request, summed over its processes', async (t) => {
  const { code, stdout, stderr } = await runBench('run.ts', { SCENARIOS: 'workers', DURATION: '1', WARMUP: '0', ROUNDS: '1' })
  t.equal(code, 0, `exits with code 0\n${stdout}\n${stderr}`)
  t.match(stdout, /\| +p99 \| +CPU\/req \|/)
  for (const workers of [1, 2]) {
    t.match(stdout, new RegExp(`^\\| goload command, --workers ${workers} +\\| +\\d+ \\|.*\\| +${number} µs \\|`, 'm'), `--workers ${workers} has a CPU/req`)
  }
})
