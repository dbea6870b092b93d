// A CPU profile of the goload bench server under the fast-pool load, summarised by self time.
//   npx tsx bench/profile.ts                      runs `node --cpu-prof --import tsx bench/servers/goload.ts ...` behind
//                                                 three backends, loads it with wrk (else autocannon), then summarises
//   npx tsx bench/profile.ts FILE.cpuprofile      summarises a profile taken some other way
// Env: DURATION seconds of measured load (default 10), WARMUP seconds before it (default 3, left out of the summary),
// CONNECTIONS (default 64), STRATEGY (default least-busy), TOP rows (default 25), PROFILE_DIR (default a new temp dir),
// SERVER (default goload; goload-command profiles the `goload` command with its JSON access log; http-proxy-single,
// balanced-pool or naive-least profile a peer the same way, to compare). LOADGEN=autocannon loads it with autocannon.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs'
import { findSourceMap } from 'node:module'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { formatErrors, Group, have, installCleanup, pickLoadGenerator, rootDir, runLoad, startGoloadCommand, startNginxBackends } from './harness.js'

interface CallFrame { functionName: string, url: string, lineNumber: number, columnNumber: number }
interface ProfileNode { id: number, callFrame: CallFrame, children?: number[] }
interface CpuProfile { nodes: ProfileNode[], startTime: number, endTime: number, samples: number[], timeDeltas: number[] }

const top = Number(process.env.TOP ?? 25)

/** Where a function comes from: a package, Node itself, this project's lib/, or V8's pseudo-frames. */
function origin (frame: CallFrame): string {
  const { url, functionName } = frame
  if (url === '') return functionName.startsWith('(') ? functionName : '(native / V8 builtins)'
  if (url.startsWith('node:')) return 'node core'
  const inModules = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  if (inModules !== null) return inModules[1]
  const path = url.startsWith('file:') ? fileURLToPath(url) : url
  const local = relative(rootDir, path)
  if (local.startsWith('lib/')) return 'fastify-goload lib/'
  if (local.startsWith('bench/')) return 'bench/'
  return 'other'
}

/**
 * tsx compiles lib/ with esbuild's minifyWhitespace, so a profile's line numbers there are all 1. This process loads
 * the same files through the same tsx, with source maps on, and maps each position back to its line in the .ts file.
 */
async function loadSourceMaps (profile: CpuProfile): Promise<void> {
  process.setSourceMapsEnabled(true)
  const urls = new Set(profile.nodes.map((node) => node.callFrame.url).filter((url) => url.startsWith('file:') && origin({ url, functionName: '', lineNumber: 0, columnNumber: 0 }) === 'fastify-goload lib/'))
  for (const url of urls) {
    // The command's entry point runs the command when imported; it has nothing worth mapping.
    if (url.endsWith('/lib/cli/bin.ts')) continue
    try {
      await import(url)
    } catch {
      // A file that no longer loads keeps its compiled position.
    }
  }
}

function where (frame: CallFrame): string {
  const { url } = frame
  if (url === '') return ''
  let line = frame.lineNumber + 1
  // findEntry answers {} for a position it has no mapping for.
  const entry = (url.startsWith('file:') ? findSourceMap(url)?.findEntry(frame.lineNumber, frame.columnNumber) : undefined) as { originalLine?: number } | undefined
  if (entry?.originalLine !== undefined) line = entry.originalLine + 1
  const path = url.startsWith('file:') ? fileURLToPath(url) : url
  const short = path.includes('node_modules/') ? path.slice(path.lastIndexOf('node_modules/') + 13) : relative(rootDir, path) || path
  return `${short}:${line}`
}

/** Self time by function and by origin, and inclusive time of lib/ functions, over samples after `skipSeconds`. */
export function summarise (profile: CpuProfile, skipSeconds = 0): string {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)

  const self = new Map<string, { frame: CallFrame, us: number }>()
  const byOrigin = new Map<string, number>()
  const inclusive = new Map<string, number>()
  let total = 0
  let time = profile.startTime
  const from = profile.startTime + skipSeconds * 1e6
  for (let i = 0; i < profile.samples.length; i++) {
    time += profile.timeDeltas[i]
    if (time < from) continue
    const weight = profile.timeDeltas[i + 1] ?? 0
    const node = byId.get(profile.samples[i])!
    const key = `${node.callFrame.functionName}\u0000${where(node.callFrame)}`
    const entry = self.get(key) ?? { frame: node.callFrame, us: 0 }
    entry.us += weight
    self.set(key, entry)
    const kind = origin(node.callFrame)
    byOrigin.set(kind, (byOrigin.get(kind) ?? 0) + weight)
    total += weight
    // Inclusive time of this project's functions: each counted once per sample, however deep the recursion.
    const seen = new Set<string>()
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)!.callFrame
      if (origin(frame) !== 'fastify-goload lib/') continue
      const name = `${frame.functionName || '(anonymous)'}  ${where(frame)}`
      if (seen.has(name)) continue
      seen.add(name)
      inclusive.set(name, (inclusive.get(name) ?? 0) + weight)
    }
  }

  const percent = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)}%`
  const lines: string[] = []
  const busy = total - (byOrigin.get('(idle)') ?? 0)
  lines.push(`${(total / 1e6).toFixed(1)} s of samples summarised, ${percent(busy).trim()} of it busy (not idle)`)
  lines.push('', 'self time by origin:')
  for (const [kind, us] of [...byOrigin].sort((a, b) => b[1] - a[1])) lines.push(`  ${percent(us)}  ${kind}`)
  lines.push('', `top ${top} functions by self time:`)
  for (const { frame, us } of [...self.values()].sort((a, b) => b.us - a.us).slice(0, top)) {
    lines.push(`  ${percent(us)}  ${(frame.functionName || '(anonymous)').padEnd(32)} ${origin(frame).padEnd(22)} ${where(frame)}`)
  }
  lines.push('', 'fastify-goload lib/ functions by inclusive time (self + what they call):')
  for (const [name, us] of [...inclusive].sort((a, b) => b[1] - a[1]).slice(0, 15)) lines.push(`  ${percent(us)}  ${name}`)
  return lines.join('\n')
}

async function profileGoload (): Promise<void> {
  const duration = Number(process.env.DURATION ?? 10)
  const warmup = Number(process.env.WARMUP ?? 3)
  const connections = Number(process.env.CONNECTIONS ?? 64)
  const strategy = process.env.STRATEGY ?? 'least-busy'
  const server = process.env.SERVER ?? 'goload'
  if (!['goload', 'goload-command', 'http-proxy-single', 'balanced-pool', 'naive-least'].includes(server)) throw new Error(`unknown SERVER ${server}`)
  const dir = process.env.PROFILE_DIR ?? mkdtempSync(join(tmpdir(), 'goload-profile-'))
  const tool = pickLoadGenerator()
  installCleanup()
  const group = new Group()
  try {
    let backends: string[]
    if (have('nginx')) {
      backends = await startNginxBackends(group, 'nginx-backends-profile', 3)
    } else {
      const server = await group.node('backends.ts', [JSON.stringify([{ id: '1' }, { id: '2' }, { id: '3' }])])
      backends = server.urls
    }
    const args = server === 'goload' ? ['0', strategy, ...backends] : server === 'http-proxy-single' ? ['0', backends[0]] : ['0', ...backends]
    const started = Date.now()
    const nodeOptions = ['--cpu-prof', '--cpu-prof-dir', dir]
    const profiled = server === 'goload-command'
      ? await startGoloadCommand(group, `${server}-profiled`, backends, { strategy, nodeOptions })
      : await group.node(`${server}.ts`, args, { label: `${server}-profiled`, nodeOptions })
    console.log(server === 'goload-command'
      ? `node --cpu-prof --import tsx lib/cli/bin.ts ${backends.map((backend) => `--backend ${backend}`).join(' ')} (JSON access log to a file)`
      : `node --cpu-prof --import tsx bench/servers/${server}.ts ${args.join(' ')}`)
    if (warmup > 0) await runLoad(tool, profiled.url + '/', connections, warmup)
    const skip = (Date.now() - started) / 1000
    const result = await runLoad(tool, profiled.url + '/', connections, duration)
    console.log(`${tool}, ${connections} connections, ${duration} s after ${warmup} s of warm-up: ${result.rps.toFixed(0)} req/s, ` +
      `p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms${formatErrors(result.errors) === '0' ? '' : `, errors: ${formatErrors(result.errors)}`}`)
    // The server writes its profile as it exits.
    await group.close()
    // One profile per thread: tsx's module hooks run on a worker thread of their own; the server is thread 0.
    const written = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'))
    const file = written.find((name) => /\.\d+\.0\.\d+\.cpuprofile$/.test(name)) ?? written[0]
    if (file === undefined) throw new Error(`no .cpuprofile was written to ${dir}`)
    console.log(`profile: ${join(dir, file)} (startup and warm-up, the first ${skip.toFixed(1)} s, left out)\n`)
    const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile
    await loadSourceMaps(profile)
    console.log(summarise(profile, skip))
  } finally {
    await group.close()
  }
}

const file = process.argv[2]
if (file !== undefined) {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  await loadSourceMaps(profile)
  console.log(summarise(profile, Number(process.env.SKIP ?? 0)))
} else {
  await profileGoload()
}
