import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { childEnv } from './helpers/child.js'

const root = fileURLToPath(new URL('..', import.meta.url))

interface Run { code: number, stdout: string, stderr: string }

function runChaos (env: Record<string, string>): Promise<Run> {
  return new Promise((resolve) => {
    execFile('node_modules/.bin/tsx', ['example/chaos.ts'], { cwd: root, env: childEnv(env), timeout: 90_000 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : -1, stdout, stderr })
    })
  })
}

function count (stdout: string, label: string): number {
  const match = new RegExp(`^${label}\\s+(\\d+)$`, 'm').exec(stdout)
  return match === null ? NaN : Number(match[1])
}

t.test('npm run chaos: slow, hung, failing and restarted backends, clients that give up: every other request is answered and every count returns to 0', async (t) => {
  const { code, stdout, stderr } = await runChaos({ DURATION: '4', REQUESTS: '400' })
  // The whole summary, only when something is off.
  if (code !== 0 || !/^OK:/m.test(stdout)) t.comment(`${stdout}\n${stderr}`)
  t.equal(code, 0, 'exits with code 0')
  t.match(stdout, /^OK: every request answered, every count back to 0$/m)

  const sent = count(stdout, 'sent')
  const answered = ['answered 2xx', 'answered 4xx', 'answered 5xx'].map((label) => count(stdout, label))
  const aborted = count(stdout, 'aborted by client')
  t.ok(sent > 0 && sent <= 400, `bounded by REQUESTS: ${sent} sent`)
  t.notOk(answered.some(Number.isNaN) || Number.isNaN(aborted), 'a line for each of 2xx, 4xx, 5xx and aborted')
  t.equal(count(stdout, 'no answer'), 0, 'no request went unanswered')
  t.equal(answered.reduce((a, b) => a + b, 0) + aborted, sent, 'every request sent is accounted for')
  t.ok(answered[0] > sent / 2, `most requests succeed (${answered[0]} of ${sent} answered 2xx)`)

  // The 5xx lines name the balancer's codes; a backend's own 500s pass through as `backend 500`.
  for (const match of stdout.matchAll(/^ {2}(\S+(?: \d+)?)\s+\d+$/gm)) {
    t.match(match[1], /^(FST_GOLOAD_[A-Z_]+|backend 5\d\d)$/, `5xx by code: ${match[1]}`)
  }
  t.ok(count(stdout, 'backend kills') >= 1, 'a backend was killed and restarted at least once')
  t.equal(count(stdout, 'queued'), 0, 'the queue is empty at the end')
  for (const id of ['1', '2', '3']) {
    t.match(stdout, new RegExp(`^${id}\\s+\\d+\\s+\\d+\\s+\\d+\\s+0$`, 'm'), `backend ${id} ends with nothing pending`)
  }
})
