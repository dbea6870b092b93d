import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { Test } from 'tap'
import { programOnPath } from './ci.js'
import { freePort } from './cli.js'
import { deadline } from './raw.js'

const redisServer = programOnPath('redis-server', ['--version'], 'apt-get install redis-server')

/** For tap's `skip`: why a test that needs redis-server cannot run here, or false (see Program). */
export const withoutRedis = redisServer.skip

export interface RedisServer {
  port: number
  url: string
  /** SIGKILL, as a crash: resolves once the process has exited. */
  kill: () => Promise<void>
  /** Starts it again on the same port, empty. */
  restart: () => Promise<void>
  /** SIGSTOP, as a hang: connections stay open and nothing answers. */
  pause: () => void
  /** SIGCONT. */
  resume: () => void
}

/** A real redis-server on a free loopback port, without persistence, stopped when the test ends. */
export async function startRedis (t: Test): Promise<RedisServer> {
  redisServer.require()
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    const started = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
    child = started
    let output = ''
    await deadline(new Promise<void>((resolve, reject) => {
      started.once('error', reject)
      started.once('exit', (code) => { reject(new Error(`redis-server exited with ${String(code)}: ${output}`)) })
      started.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk
        if (output.includes('Ready to accept connections')) resolve()
      })
    }), 10_000, `redis-server to start on port ${port}`)
  }
  const kill = async (): Promise<void> => {
    const running = child
    child = undefined
    if (running === undefined || running.exitCode !== null || running.signalCode !== null) return
    const exited = once(running, 'exit')
    running.kill('SIGKILL')
    await exited
  }
  t.teardown(kill)
  await start()
  return { port, url: `redis://127.0.0.1:${port}`, kill, restart: start, pause: () => child!.kill('SIGSTOP'), resume: () => child!.kill('SIGCONT') }
}
