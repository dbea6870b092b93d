// The machinery of bench/run.ts and bench/profile.ts: child processes that never outlive the run, generated
// nginx / HAProxy / Caddy configs, the load generator (wrk, else autocannon) and its numbers, and the request
// counts per backend. Loopback only; every load is bounded in time.
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import autocannon from 'autocannon'
import { backlog } from './servers/child.js'

export const benchDir = fileURLToPath(new URL('.', import.meta.url))
export const rootDir = join(benchDir, '..')

export function have (command: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', command], { stdio: 'ignore' }).status === 0
}

/** The code measured: the commit, whether lib/ differs from it, and a hash of lib/ to tell if it changed mid-run. */
export function codeVersion (): { text: string, libHash: string } {
  const git = (...args: string[]): string => spawnSync('git', args, { cwd: rootDir, encoding: 'utf8' }).stdout?.trim() ?? ''
  const commit = git('rev-parse', '--short', 'HEAD') || 'no git'
  const dirty = git('status', '--porcelain', '--', 'lib') !== ''
  const hash = createHash('sha256')
  // lib/ has folders (pool/, health/, proxy/): every file below it counts, by its path, so a move changes the hash.
  const files = readdirSync(join(rootDir, 'lib'), { recursive: true, withFileTypes: true }).filter((entry) => entry.isFile())
  for (const name of files.map((entry) => join(entry.parentPath, entry.name)).sort()) {
    hash.update(name.slice(rootDir.length)).update(readFileSync(name))
  }
  const libHash = hash.digest('hex').slice(0, 12)
  return { text: `commit ${commit}${dirty ? ' + uncommitted changes in lib/' : ''} (lib/ ${libHash})`, libHash }
}

export function sleep (ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

// ---------------------------------------------------------------------------------------------------------------
// Child processes

let workDir: string | undefined

/** The run's temp folder: generated configs, logs, body files. Removed at exit unless KEEP_TMP is set. */
export function tempDir (): string {
  if (workDir === undefined) {
    workDir = mkdtempSync(join(tmpdir(), 'goload-bench-'))
    // nginx workers run as an unprivileged user and must read the body files.
    chmodSync(workDir, 0o755)
  }
  return workDir
}

const children = new Set<ChildProcess>()

function track (child: ChildProcess): ChildProcess {
  children.add(child)
  child.once('exit', () => children.delete(child))
  return child
}

let cleanupInstalled = false

/**
 * Every child is stopped when this process ends, however it ends: normally, on an error, or on Ctrl-C.
 * SIGTERM, never SIGKILL, for nginx: its workers would outlive a killed master.
 */
export function installCleanup (): void {
  if (cleanupInstalled) return
  cleanupInstalled = true
  process.on('exit', () => {
    for (const child of children) child.kill('SIGTERM')
    if (workDir !== undefined && process.env.KEEP_TMP === undefined) rmSync(workDir, { recursive: true, force: true })
  })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      console.error(`\n${signal}: stopping every server of the run`)
      process.exit(130)
    })
  }
}

function logFile (label: string): { path: string, fd: number } {
  const path = join(tempDir(), `${label.replace(/[^\w.-]+/g, '_')}.log`)
  return { path, fd: openSync(path, 'a') }
}

function tail (path: string): string {
  try {
    return readFileSync(path, 'utf8').split('\n').slice(-15).join('\n')
  } catch {
    return ''
  }
}

const hasSetpriv = have('setpriv')

/** Servers of one scenario, stopped together when the scenario ends. */
export class Group {
  readonly #children: ChildProcess[] = []

  /**
   * Starts bench/servers/<script> under `node --import tsx` in its own process, and resolves with the ports it
   * listens on once it says it is ready.
   */
  async node (script: string, args: string[], options: { label?: string, nodeOptions?: string[] } = {}): Promise<NodeServer> {
    const label = options.label ?? script
    const log = logFile(label)
    const child = track(fork(join(benchDir, 'servers', script), args, {
      cwd: rootDir,
      execArgv: ['--import', 'tsx', ...(options.nodeOptions ?? [])],
      stdio: ['ignore', log.fd, log.fd, 'ipc']
    }))
    this.#children.push(child)
    const ports = await new Promise<number[]>((resolve, reject) => {
      const timer = setTimeout(() => { fail(new Error('not ready within 30 s')) }, 30_000)
      const onMessage = (message: { type: string, ports?: number[] }): void => {
        if (message.type !== 'ready') return
        done()
        resolve(message.ports ?? [])
      }
      const onExit = (code: number | null): void => { fail(new Error(`exited with ${code}`)) }
      const done = (): void => {
        clearTimeout(timer)
        child.off('message', onMessage)
        child.off('exit', onExit)
      }
      const fail = (error: Error): void => {
        done()
        reject(new Error(`${label}: ${error.message}\n${tail(log.path)}`))
      }
      child.on('message', onMessage)
      child.once('exit', onExit)
    })
    return new NodeServer(child, ports)
  }

  /** Starts a program (nginx, haproxy, caddy) and waits until `readyUrl` answers. */
  async external (label: string, command: string, args: string[], readyUrl: string, env?: NodeJS.ProcessEnv): Promise<ChildProcess> {
    const log = logFile(label)
    // setpriv --pdeathsig: the program gets SIGTERM even if this process is killed outright, with no chance to clean up.
    const [program, argv] = hasSetpriv ? ['setpriv', ['--pdeathsig', 'TERM', '--', command, ...args]] : [command, args]
    const child = track(spawn(program, argv, { cwd: rootDir, stdio: ['ignore', log.fd, log.fd], env: { ...process.env, ...env } }))
    this.#children.push(child)
    let exited: number | null | undefined
    child.once('exit', (code) => { exited = code })
    const deadline = Date.now() + 60_000
    while (Date.now() < deadline) {
      if (exited !== undefined) throw new Error(`${label} exited with ${exited}\n${tail(log.path)}`)
      if (await answers(readyUrl)) return child
      await sleep(100)
    }
    throw new Error(`${label} did not answer ${readyUrl} within 60 s\n${tail(log.path)}`)
  }

  async close (): Promise<void> {
    const running = this.#children.filter((child) => child.exitCode === null && child.signalCode === null)
    await Promise.all(running.map((child) => new Promise<void>((resolve) => {
      const timer = setTimeout(() => { child.kill('SIGKILL') }, 5000)
      child.once('exit', () => {
        clearTimeout(timer)
        resolve()
      })
      child.kill('SIGTERM')
    })))
    this.#children.length = 0
  }
}

export class NodeServer {
  readonly child: ChildProcess
  readonly ports: number[]

  constructor (child: ChildProcess, ports: number[]) {
    this.child = child
    this.ports = ports
  }

  get url (): string {
    return `http://127.0.0.1:${this.ports[0]}`
  }

  get urls (): string[] {
    return this.ports.map((port) => `http://127.0.0.1:${port}`)
  }

  /** Requests served per backend so far, from bench/servers/backends.ts. */
  async counts (): Promise<number[]> {
    return (await this.#ask('counts')).counts ?? []
  }

  /** A full garbage collection in the server, done once this resolves (it must run with --expose-gc). */
  async collectGarbage (): Promise<void> {
    await this.#ask('gc')
  }

  /** Sends `{ type }` over the IPC channel and resolves with the server's answer of that type (bench/servers/child.ts). */
  #ask (type: string): Promise<{ type: string, counts?: number[] }> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.child.off('message', onMessage)
        reject(new Error(`no answer to ${type} within 5 s`))
      }, 5000)
      const onMessage = (message: { type: string, counts?: number[] }): void => {
        if (message.type !== type) return
        clearTimeout(timer)
        this.child.off('message', onMessage)
        resolve(message)
      }
      this.child.on('message', onMessage)
      this.child.send({ type })
    })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// What a balancer's processes use, from /proc: nginx's workers and `--workers N`'s cluster workers are children of
// the process started, so each figure is summed over the process and every descendant still running.

/** The process and its descendants (by the parent pid in each /proc/<pid>/stat). */
export function processTree (pid: number): number[] {
  const parents = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const fields = statFields(Number(name))
    if (fields === undefined) continue
    const parent = Number(fields[1])
    parents.set(parent, [...(parents.get(parent) ?? []), Number(name)])
  }
  const tree = [pid]
  for (let index = 0; index < tree.length; index++) tree.push(...(parents.get(tree[index]) ?? []))
  return tree
}

/** Fields of /proc/<pid>/stat after the command name (which may hold spaces, inside parentheses): state is [0]. */
function statFields (pid: number): string[] | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  } catch {
    return undefined // the process ended meanwhile
  }
}

// Clock ticks per second of /proc/<pid>/stat's utime and stime (USER_HZ, 100 on Linux).
const ticks = 100

/** CPU seconds (user + system) used so far by the process and its descendants. */
export function cpuSeconds (pid: number): number {
  let total = 0
  for (const member of processTree(pid)) {
    const fields = statFields(member)
    if (fields !== undefined) total += (Number(fields[11]) + Number(fields[12])) / ticks
  }
  return total
}

/** Resident memory in bytes of the process and its descendants (pages shared between them counted in each). */
export function rssBytes (pid: number): number {
  let total = 0
  for (const member of processTree(pid)) {
    try {
      const kib = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${member}/status`, 'utf8'))?.[1]
      total += Number(kib ?? 0) * 1024
    } catch {
      // the process ended meanwhile
    }
  }
  return total
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP helpers

export function get (url: string, timeout = 2000): Promise<{ status: number, body: string }> {
  return new Promise((resolve, reject) => {
    const request = http.get(url, { agent: false, timeout }, (response) => {
      let body = ''
      response.setEncoding('utf8')
      response.on('data', (chunk: string) => { body += chunk })
      response.on('end', () => { resolve({ status: response.statusCode ?? 0, body }) })
      response.on('error', reject)
    })
    request.on('timeout', () => { request.destroy(new Error(`timeout: ${url}`)) })
    request.on('error', reject)
  })
}

async function answers (url: string): Promise<boolean> {
  try {
    await get(url, 1000)
    return true
  } catch {
    return false
  }
}

/** A port free right now on loopback, for the programs that take a fixed port in their config. */
export function freePort (): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      server.close(() => { resolve(port) })
    })
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Generated configs, as in shared/anchors: one nginx worker, one HAProxy thread, keep-alive to the upstreams.

function nginxConfig (name: string, http: string, workerConnections = 8192): string {
  const dir = tempDir()
  return `worker_processes 1;
worker_rlimit_nofile ${workerConnections * 2};
daemon off;
pid ${dir}/${name}.pid;
error_log ${dir}/${name}.err warn;
events { worker_connections ${workerConnections}; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/${name}-client-body;
  proxy_temp_path ${dir}/${name}-proxy;
  fastcgi_temp_path ${dir}/${name}-fastcgi;
  uwsgi_temp_path ${dir}/${name}-uwsgi;
  scgi_temp_path ${dir}/${name}-scgi;
${http}
}
`
}

/** nginx backends in one worker, each answering `return 200 "Hello from N\n"`, or a body file of `bytes`. */
export async function startNginxBackends (group: Group, name: string, count: number, bytes?: number): Promise<string[]> {
  const ports = await Promise.all(Array.from({ length: count }, freePort))
  const dir = tempDir()
  const servers = ports.map((port, index) => {
    const id = index + 1
    if (bytes === undefined) return `  server { listen 127.0.0.1:${port} backlog=${backlog}; location / { return 200 "Hello from ${id}\\n"; } }`
    const file = `body-${bytes}-${id}.bin`
    const body = Buffer.alloc(bytes, 'x')
    Buffer.from(`Hello from ${id}\n`).copy(body)
    body[body.length - 1] = 0x0a
    writeFileSync(join(dir, file), body, { mode: 0o644 })
    return `  server { listen 127.0.0.1:${port} backlog=${backlog}; location / { root ${dir}; try_files /${file} =404; } }`
  })
  const config = join(dir, `${name}.conf`)
  writeFileSync(config, nginxConfig(name, '  sendfile on;\n  default_type text/plain;\n' + servers.join('\n')))
  const urls = ports.map((port) => `http://127.0.0.1:${port}`)
  await group.external(name, 'nginx', ['-c', config, '-p', dir], urls[0] + '/')
  return urls
}

export interface Upstream {
  /** Port the balancer listens on. */
  port: number
  backends: string[]
  policy: 'least_conn' | 'round_robin'
  /** Pass WebSocket upgrades through (Upgrade and Connection: upgrade), as nginx's WebSocket proxying docs say. */
  websocket?: boolean
}

/** One nginx balancer process with a listener per upstream (least_conn, or plain round-robin). */
export async function startNginxBalancer (group: Group, name: string, upstreams: Upstream[], workerConnections?: number): Promise<ChildProcess> {
  const blocks = upstreams.map((upstream, index) => {
    const servers = upstream.backends.map((url) => `server ${new URL(url).host};`).join(' ')
    const policy = upstream.policy === 'least_conn' ? 'least_conn; ' : ''
    // $connection_upgrade is "" for a plain request, which keeps the upstream connection alive as "" does.
    const connection = upstream.websocket === true ? 'proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection $connection_upgrade;' : 'proxy_set_header Connection "";'
    return `  upstream up${index} { ${policy}${servers} keepalive 64; }
  server { listen 127.0.0.1:${upstream.port} backlog=${backlog};
    location / { proxy_pass http://up${index}; proxy_http_version 1.1; ${connection} } }`
  })
  const map = '  map $http_upgrade $connection_upgrade { default upgrade; \'\' \'\'; }\n'
  const config = join(tempDir(), `${name}.conf`)
  writeFileSync(config, nginxConfig(name, map + blocks.join('\n'), workerConnections))
  return await group.external(name, 'nginx', ['-c', config, '-p', tempDir()], `http://127.0.0.1:${upstreams[0].port}/`)
}

/**
 * The `goload` command as an operator runs it: lib/cli/bin.ts (through tsx, so it runs this tree's lib/ as the other
 * Node servers do), `--backend` flags, the access log on: one JSON line per request, to the run's log file.
 */
export async function startGoloadCommand (group: Group, label: string, backends: string[], options: { workers?: number, strategy?: string, nodeOptions?: string[], accessLogBuffer?: number } = {}): Promise<{ url: string, pid: number }> {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  // The flags make the config file's simplest case; accessLog.buffer is a key of the file only.
  let config = [...backends.flatMap((backend) => ['--backend', backend]), '--port', String(port), '--host', '127.0.0.1',
    ...(options.strategy === undefined ? [] : ['--strategy', options.strategy])]
  if (options.accessLogBuffer !== undefined) {
    const file = join(tempDir(), `${label}.yaml`)
    writeFileSync(file, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: app }]\npools:\n  app:\n    strategy: ${options.strategy ?? 'least-busy'}\n    backends: [${backends.join(', ')}]\naccessLog:\n  buffer: ${options.accessLogBuffer}\n`)
    config = ['--config', file]
  }
  const args = [...(options.nodeOptions ?? []), '--import', 'tsx', join(rootDir, 'lib', 'cli', 'bin.ts'), ...config, '--workers', String(options.workers ?? 1)]
  const child = await group.external(label, process.execPath, args, url + '/')
  return { url, pid: child.pid! }
}

/** One HAProxy process (leastconn, one thread, http-reuse always) and its stats page for per-server counts. */
export async function startHaproxy (group: Group, name: string, upstreams: Array<Omit<Upstream, 'policy'>>): Promise<HaproxyStats> {
  const statsPort = await freePort()
  const blocks = upstreams.map((upstream, index) => `frontend fe${index}
  bind 127.0.0.1:${upstream.port}
  default_backend be${index}
backend be${index}
  balance leastconn
${upstream.backends.map((url, server) => `  server s${server + 1} ${new URL(url).host}`).join('\n')}`)
  const config = join(tempDir(), `${name}.cfg`)
  writeFileSync(config, `global
  maxconn 8192
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
listen stats
  bind 127.0.0.1:${statsPort}
  stats enable
  stats uri /stats
${blocks.join('\n')}
`)
  const child = await group.external(name, 'haproxy', ['-db', '-f', config], `http://127.0.0.1:${statsPort}/stats`)
  return new HaproxyStats(statsPort, child.pid!)
}

export class HaproxyStats {
  readonly port: number
  readonly pid: number

  constructor (port: number, pid: number) {
    this.port = port
    this.pid = pid
  }

  /** Requests each server of backend be<index> was sent so far (the stats CSV's `stot`), in config order. */
  async counts (index: number): Promise<number[]> {
    const { body } = await get(`http://127.0.0.1:${this.port}/stats;csv`)
    const lines = body.trim().split('\n')
    const columns = lines[0].replace(/^# /, '').split(',')
    const pxname = columns.indexOf('pxname')
    const svname = columns.indexOf('svname')
    const stot = columns.indexOf('stot')
    const counts: number[] = []
    for (const line of lines.slice(1)) {
      const fields = line.split(',')
      const match = /^s(\d+)$/.exec(fields[svname])
      if (fields[pxname] === `be${index}` && match !== null) counts[Number(match[1]) - 1] = Number(fields[stot])
    }
    return counts
  }
}

/** One Caddy process (least_conn, GOMAXPROCS=1 to match one nginx worker), when Caddy is installed. */
export async function startCaddy (group: Group, name: string, upstreams: Array<Omit<Upstream, 'policy'>>): Promise<ChildProcess> {
  const dir = tempDir()
  const sites = upstreams.map((upstream) => `http://127.0.0.1:${upstream.port} {
  reverse_proxy ${upstream.backends.map((url) => new URL(url).host).join(' ')} {
    lb_policy least_conn
  }
}`)
  const config = join(dir, `${name}.Caddyfile`)
  writeFileSync(config, `{
  admin off
  auto_https off
}
${sites.join('\n')}
`)
  mkdirSync(join(dir, 'caddy-home'), { recursive: true })
  return await group.external(name, 'caddy', ['run', '--config', config, '--adapter', 'caddyfile'], `http://127.0.0.1:${upstreams[0].port}/`, {
    GOMAXPROCS: '1',
    HOME: join(dir, 'caddy-home'),
    XDG_DATA_HOME: join(dir, 'caddy-home'),
    XDG_CONFIG_HOME: join(dir, 'caddy-home')
  })
}

// ---------------------------------------------------------------------------------------------------------------
// Load generation

export type LoadGenerator = 'wrk' | 'autocannon'

/** wrk when installed, else autocannon; LOADGEN forces one. The same tool serves every row of a run. */
export function pickLoadGenerator (): LoadGenerator {
  const forced = process.env.LOADGEN
  if (forced === 'wrk' || forced === 'autocannon') return forced
  return have('wrk') ? 'wrk' : 'autocannon'
}

export interface LoadResult {
  requests: number
  seconds: number
  rps: number
  /** Milliseconds. */
  p50: number
  p99: number
  /** Response bytes per second, headers included (as wrk's Transfer/sec). */
  bytesPerSecond: number
  /** Errors and non-2xx answers by kind (connect, read, write, timeout, non-2xx, errors). */
  errors: Record<string, number>
}

export function formatErrors (errors: Record<string, number>): string {
  const listed = Object.entries(errors).filter(([, count]) => count > 0)
  return listed.length === 0 ? '0' : listed.map(([kind, count]) => `${kind} ${count}`).join(', ')
}

export async function runLoad (tool: LoadGenerator, url: string, connections: number, seconds: number): Promise<LoadResult> {
  return tool === 'wrk' ? await runWrk(url, connections, seconds) : await runAutocannon(url, connections, seconds)
}

async function runWrk (url: string, connections: number, seconds: number): Promise<LoadResult> {
  // --timeout 10s: wrk leaves requests slower than its 2 s default out of the latency figures; none should be.
  const args = ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '--timeout', '10s', url]
  const child = track(spawn('wrk', args, { stdio: ['ignore', 'pipe', 'pipe'] }))
  let output = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
  // wrk stops itself after `seconds`; this is only a guard against a wedged run.
  const guard = setTimeout(() => { child.kill('SIGKILL') }, (seconds + 30) * 1000)
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  clearTimeout(guard)
  if (code !== 0) throw new Error(`wrk ${args.join(' ')} exited with ${code}:\n${output}`)
  return parseWrk(output)
}

const timeUnits: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const byteUnits: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }

function milliseconds (text: string | undefined): number {
  const match = /^([\d.]+)(us|ms|s|m|h)$/.exec(text ?? '')
  return match === null ? NaN : Number(match[1]) * timeUnits[match[2]]
}

function bytes (text: string | undefined): number {
  const match = /^([\d.]+)(B|KB|MB|GB|TB)$/.exec(text ?? '')
  return match === null ? NaN : Number(match[1]) * byteUnits[match[2]]
}

export function parseWrk (output: string): LoadResult {
  const total = /(\d+) requests in ([\d.]+\w+),/.exec(output)
  const requests = Number(total?.[1] ?? NaN)
  const seconds = milliseconds(total?.[2]) / 1000
  const errors: Record<string, number> = {}
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output)
  if (socket !== null) {
    const [, connect, read, write, timeout] = socket.map(Number)
    Object.assign(errors, { connect, read, write, timeout })
  }
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output)
  if (non2xx !== null) errors['non-2xx'] = Number(non2xx[1])
  return {
    requests,
    seconds,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(output)?.[1] ?? NaN),
    p50: milliseconds(/^\s+50%\s+(\S+)/m.exec(output)?.[1]),
    p99: milliseconds(/^\s+99%\s+(\S+)/m.exec(output)?.[1]),
    bytesPerSecond: bytes(/Transfer\/sec:\s+(\S+)/.exec(output)?.[1]),
    errors
  }
}

/** autocannon at a fixed rate (`overallRate`, requests/s over all connections), or as fast as it can without one. */
export async function runAutocannon (url: string, connections: number, seconds: number, overallRate?: number): Promise<LoadResult> {
  const result = await autocannon({ url, connections, duration: seconds, ...(overallRate === undefined ? {} : { overallRate }) })
  return {
    requests: result.requests.total,
    seconds: result.duration,
    rps: result.requests.total / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    bytesPerSecond: result.throughput.total / result.duration,
    errors: { errors: result.errors - result.timeouts, timeout: result.timeouts, 'non-2xx': result.non2xx }
  }
}
