// `npm run bench`: goload beside its peers in one run, on loopback. Each scenario starts its own backends and
// balancers (every server in a process of its own), loads each row for DURATION seconds with the same tool (wrk,
// else autocannon), and prints req/s, p50, p99, the share each backend served and goload's ratio to each row.
// Env: DURATION seconds per row (default 5), WARMUP seconds of load before each Node server's row (default 3: V8 needs
// a few seconds of load to settle; nginx, HAProxy, Caddy and direct rows get at most 1 s),
// SCENARIOS (comma-separated, default all: fast,skewed,1000-backends,10kb,1mb,1000-conns), LOADGEN (wrk|autocannon),
// ROUNDS (default 1): passes of DURATION per row, every other one in reverse row order, added up, so a drift in the
// machine's speed during the run does not favour the rows measured first (ROUNDS=2 doubles the run's time),
// OUT (a file to write every result to as JSON), KEEP_TMP (keep the generated configs and logs).
import { writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import {
  codeVersion, cpuSeconds, formatErrors, freePort, get, Group, have, installCleanup, pickLoadGenerator, runLoad, startCaddy, startGoloadCommand, startHaproxy,
  startNginxBackends, startNginxBalancer, type LoadResult, type NodeServer, type Upstream
} from './harness.js'

/** A whole number of seconds (wrk takes no fractions) from the environment. */
function seconds (name: string, fallback: number, least: number): number {
  const value = Number(process.env[name] ?? fallback)
  if (!Number.isInteger(value) || value < least) throw new Error(`${name} must be a whole number, at least ${least}; got ${process.env[name]}`)
  return value
}

const duration = seconds('DURATION', 5, 1)
const warmup = seconds('WARMUP', 3, 0)
const rounds = seconds('ROUNDS', 1, 1)
const tool = pickLoadGenerator()
const hasNginx = have('nginx')
const hasHaproxy = have('haproxy')
const hasCaddy = have('caddy')

/** One balancer (or a backend, directly) to load in a scenario. */
interface Row {
  name: string
  url: string
  /** Requests served so far per backend, for the share; undefined when nothing counts them. */
  counts?: () => Promise<number[]>
  /** A Node server: it needs the longer warm-up before V8 has optimised its hot path. */
  node?: boolean
  /** The balancer's process: its CPU (and its descendants') over the measured passes, per request answered. */
  pid?: number
}

interface Scenario {
  name: string
  title: string
  connections: number
  /** Also print MiB/s. */
  bytes?: boolean
  /** The goload row the others are compared with. */
  reference: string
  setup: (group: Group) => Promise<Row[]>
}

interface Measured extends LoadResult {
  name: string
  share: string
  /** µs of the balancer's CPU per request answered; NaN where the row has no process of its own. */
  cpuPerRequest: number
}

// ---------------------------------------------------------------------------------------------------------------
// Servers

function goloadRow (server: NodeServer, name = 'goload least-busy'): Row {
  return {
    name,
    url: server.url + '/',
    node: true,
    pid: server.child.pid,
    counts: async () => {
      const response = await fetch(`${server.url}/__stats`)
      const stats = await response.json() as { backends: Array<{ served: number }> }
      return stats.backends.map((backend) => backend.served)
    }
  }
}

function startGoload (group: Group, strategy: 'least-busy' | 'round-robin' | 'p2c' | 'peak-ewma', backends: string[], metrics = false): Promise<NodeServer> {
  return group.node('goload.ts', ['0', strategy, ...(metrics ? ['--metrics'] : []), ...backends], { label: `goload-${strategy}${metrics ? '-metrics' : ''}` })
}

/** The `goload` command (access log on) as a row; `counts` from the backends, when they count. */
async function commandRow (group: Group, label: string, backends: string[], counts: (() => Promise<number[]>) | undefined, options: { workers?: number, strategy?: string, name?: string, accessLogBuffer?: number } = {}): Promise<Row> {
  const command = await startGoloadCommand(group, label, backends, options)
  return { name: options.name ?? 'goload command, JSON access log', url: command.url + '/', counts, node: true, pid: command.pid }
}

function nodeBackends (group: Group, label: string, specs: Array<{ delay?: [number, number], bytes?: number }>): Promise<NodeServer> {
  return group.node('backends.ts', [JSON.stringify(specs.map((spec, index) => ({ id: String(index + 1), ...spec })))], { label })
}

/** Three backends answering at once: nginx when installed (as in the anchors), else Node. */
async function fastBackends (group: Group, bytes?: number): Promise<{ urls: string[], counts?: () => Promise<number[]>, kind: string }> {
  if (hasNginx) return { urls: await startNginxBackends(group, `nginx-backends-${bytes ?? 0}`, 3, bytes), kind: 'nginx' }
  const server = await nodeBackends(group, 'node-backends', [{ bytes }, { bytes }, { bytes }])
  return { urls: server.urls, counts: () => server.counts(), kind: 'node' }
}

/** nginx least_conn / HAProxy leastconn / Caddy least_conn rows over `backends`, for the tools installed. */
async function cBalancers (group: Group, label: string, backends: string[], options: { counts?: () => Promise<number[]>, roundRobin?: boolean, haproxy?: boolean, caddy?: boolean } = {}): Promise<Row[]> {
  const rows: Row[] = []
  // A peer that will not start is left out of the table, not the whole scenario.
  const attempt = async (name: string, start: () => Promise<void>): Promise<void> => {
    try {
      await start()
    } catch (error) {
      console.error(`${name} left out: ${(error as Error).message}`)
    }
  }
  if (hasNginx) {
    await attempt('nginx', async () => {
      const upstreams: Upstream[] = [{ port: await freePort(), backends, policy: 'least_conn' }]
      if (options.roundRobin === true) upstreams.push({ port: await freePort(), backends, policy: 'round_robin' })
      // Both listeners share one process: its CPU column is left out of the round-robin row, which would be the same.
      const nginx = await startNginxBalancer(group, `nginx-lb-${label}`, upstreams)
      if (options.roundRobin === true) rows.push({ name: 'nginx round-robin', url: `http://127.0.0.1:${upstreams[1].port}/`, counts: options.counts })
      rows.push({ name: 'nginx least_conn', url: `http://127.0.0.1:${upstreams[0].port}/`, counts: options.counts, pid: nginx.pid })
    })
  }
  if (hasHaproxy && options.haproxy !== false) {
    await attempt('haproxy', async () => {
      const port = await freePort()
      const stats = await startHaproxy(group, `haproxy-${label}`, [{ port, backends }])
      rows.push({ name: 'haproxy leastconn', url: `http://127.0.0.1:${port}/`, counts: options.counts ?? (() => stats.counts(0)), pid: stats.pid })
    })
  }
  if (hasCaddy && options.caddy !== false) {
    await attempt('caddy', async () => {
      const port = await freePort()
      const caddy = await startCaddy(group, `caddy-${label}`, [{ port, backends }])
      rows.push({ name: 'caddy least_conn', url: `http://127.0.0.1:${port}/`, counts: options.counts, pid: caddy.pid })
    })
  }
  return rows
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios

const scenarios: Scenario[] = [
  {
    name: 'fast',
    title: 'fast pool: 3 backends answering at once',
    connections: 64,
    reference: 'goload least-busy',
    async setup (group) {
      const { urls, counts, kind } = await fastBackends(group)
      const [single, balanced, naive, goload, metered] = await Promise.all([
        group.node('http-proxy-single.ts', ['0', urls[0]]),
        group.node('balanced-pool.ts', ['0', ...urls]),
        group.node('naive-least.ts', ['0', ...urls]),
        startGoload(group, 'least-busy', urls),
        startGoload(group, 'least-busy', urls, true)
      ])
      return [
        { name: 'direct backend (no proxy)', url: urls[0] + '/', node: kind === 'node' },
        ...await cBalancers(group, 'fast', urls, { counts }),
        { name: 'http-proxy single (1 backend)', url: single.url + '/', node: true, pid: single.child.pid },
        { name: 'reply-from BalancedPool', url: balanced.url + '/', counts, node: true, pid: balanced.child.pid },
        { name: 'naive least-busy on reply-from', url: naive.url + '/', counts, node: true, pid: naive.child.pid },
        goloadRow(metered, 'goload least-busy, metrics scraped every 1 s'),
        await commandRow(group, 'goload-command-fast', urls, counts),
        await commandRow(group, 'goload-command-fast-buffered', urls, counts, { accessLogBuffer: 32768, name: 'goload command, JSON access log, accessLog.buffer 32768' }),
        goloadRow(goload)
      ]
    }
  },
  {
    name: 'skewed',
    title: 'skewed pool: backends 1, 2 answer in 1-3 ms, backend 3 in 20-40 ms (Node)',
    connections: 32,
    reference: 'goload least-busy',
    async setup (group) {
      const backends = await nodeBackends(group, 'skewed-backends', [{ delay: [1, 3] }, { delay: [1, 3] }, { delay: [20, 40] }])
      const urls = backends.urls
      const counts = (): Promise<number[]> => backends.counts()
      const [single, balanced, naive, roundRobin, p2c, peakEwma, leastBusy] = await Promise.all([
        group.node('http-proxy-single.ts', ['0', urls[0]]),
        group.node('balanced-pool.ts', ['0', ...urls]),
        group.node('naive-least.ts', ['0', ...urls]),
        startGoload(group, 'round-robin', urls),
        startGoload(group, 'p2c', urls),
        startGoload(group, 'peak-ewma', urls),
        startGoload(group, 'least-busy', urls)
      ])
      return [
        ...await cBalancers(group, 'skewed', urls, { counts, roundRobin: true }),
        // To a fast backend only: its CPU per request is reply-from's own, beside the balancers'.
        { name: 'http-proxy single (backend 1)', url: single.url + '/', node: true, pid: single.child.pid },
        { name: 'reply-from BalancedPool', url: balanced.url + '/', counts, node: true, pid: balanced.child.pid },
        { name: 'naive least-busy on reply-from', url: naive.url + '/', counts, node: true, pid: naive.child.pid },
        goloadRow(roundRobin, 'goload round-robin'),
        goloadRow(p2c, 'goload p2c'),
        goloadRow(peakEwma, 'goload peak-ewma'),
        await commandRow(group, 'goload-command-skewed', urls, counts),
        await commandRow(group, 'goload-command-skewed-buffered', urls, counts, { accessLogBuffer: 32768, name: 'goload command, JSON access log, accessLog.buffer 32768' }),
        goloadRow(leastBusy)
      ]
    }
  },
  {
    name: 'workers',
    title: `the goload command on the fast pool, --workers 1 against --workers 2 (${cpus().length} cores; CPU summed over every process)`,
    connections: 64,
    reference: 'goload command, --workers 2',
    async setup (group) {
      const { urls, counts } = await fastBackends(group)
      const one = await commandRow(group, 'goload-command-workers-1', urls, counts, { name: 'goload command, --workers 1' })
      const two = await commandRow(group, 'goload-command-workers-2', urls, counts, { workers: 2, name: 'goload command, --workers 2' })
      return [...await cBalancers(group, 'workers', urls, { counts, haproxy: false, caddy: false }), one, two]
    }
  },
  {
    name: '1000-backends',
    title: '1,000 backends: one Node process listening on 1,000 ports, answering at once',
    connections: 64,
    reference: 'goload least-busy',
    async setup (group) {
      const backends = await nodeBackends(group, 'backends-1000', Array.from({ length: 1000 }, () => ({})))
      const urls = backends.urls
      const counts = (): Promise<number[]> => backends.counts()
      const [balanced, goload] = await Promise.all([
        group.node('balanced-pool.ts', ['0', ...urls]),
        startGoload(group, 'least-busy', urls)
      ])
      return [
        ...await cBalancers(group, '1000', urls, { counts, caddy: false }),
        { name: 'reply-from BalancedPool', url: balanced.url + '/', counts, node: true, pid: balanced.child.pid },
        goloadRow(goload)
      ]
    }
  },
  ...[10 * 1024, 1024 * 1024].map((size): Scenario => ({
    name: size < 1024 * 1024 ? '10kb' : '1mb',
    title: `${size < 1024 * 1024 ? '10 KB' : '1 MB'} response bodies: 3 backends`,
    connections: 64,
    bytes: true,
    reference: 'goload least-busy',
    async setup (group) {
      const { urls, counts, kind } = await fastBackends(group, size)
      const [single, goload] = await Promise.all([
        group.node('http-proxy-single.ts', ['0', urls[0]]),
        startGoload(group, 'least-busy', urls)
      ])
      return [
        { name: 'direct backend (no proxy)', url: urls[0] + '/', node: kind === 'node' },
        ...await cBalancers(group, `body-${size}`, urls, { counts, haproxy: false, caddy: false }),
        { name: 'http-proxy single (1 backend)', url: single.url + '/', node: true, pid: single.child.pid },
        goloadRow(goload)
      ]
    }
  })),
  {
    name: '1000-conns',
    title: 'fast pool under 1,000 concurrent connections',
    connections: 1000,
    reference: 'goload least-busy',
    async setup (group) {
      const { urls, counts } = await fastBackends(group)
      const [single, balanced, goload] = await Promise.all([
        group.node('http-proxy-single.ts', ['0', urls[0]]),
        group.node('balanced-pool.ts', ['0', ...urls]),
        startGoload(group, 'least-busy', urls)
      ])
      return [
        ...await cBalancers(group, 'c1000', urls, { counts }),
        { name: 'http-proxy single (1 backend)', url: single.url + '/', node: true, pid: single.child.pid },
        { name: 'reply-from BalancedPool', url: balanced.url + '/', counts, node: true, pid: balanced.child.pid },
        goloadRow(goload)
      ]
    }
  }
]

// ---------------------------------------------------------------------------------------------------------------
// Measuring and printing

function delta (before: number[] | undefined, after: number[] | undefined): number[] | undefined {
  if (before === undefined || after === undefined) return undefined
  return after.map((count, index) => count - (before[index] ?? 0))
}

function formatShare (counts: number[] | undefined): string {
  if (counts === undefined) return '-'
  const total = counts.reduce((sum, count) => sum + count, 0)
  if (total === 0) return '-'
  const percent = (count: number, digits: number): string => `${((100 * count) / total).toFixed(digits)}%`
  // Shares under 1% get two decimals: peak-ewma's 0.04% to a slow backend is not 0.0%.
  if (counts.length <= 4) return counts.map((count) => percent(count, 100 * count < total ? 2 : 1)).join(' / ')
  const sorted = [...counts].sort((a, b) => a - b)
  const used = counts.filter((count) => count > 0).length
  return `${used}/${counts.length} used; min/median/max ${percent(sorted[0], 3)} / ${percent(sorted[sorted.length >> 1], 3)} / ${percent(sorted[sorted.length - 1], 3)}`
}

const ms = (value: number): string => Number.isNaN(value) ? '-' : value < 10 ? `${value.toFixed(2)} ms` : value < 100 ? `${value.toFixed(1)} ms` : `${value.toFixed(0)} ms`
const mib = (bytesPerSecond: number): string => Number.isNaN(bytesPerSecond) ? '-' : (bytesPerSecond / 1024 ** 2).toFixed(1)
const ratio = (value: number): string => Number.isFinite(value) ? `${value.toFixed(2)}×` : '-'

/** One row's passes so far: its load results and what each backend served during them. */
interface Passes {
  row: Row
  results: LoadResult[]
  counts: number[] | undefined
  /** CPU seconds of the row's balancer over its measured passes. */
  cpu: number
  failed: boolean
}

async function pass (passes: Passes, first: boolean, connections: number): Promise<void> {
  const { row } = passes
  if (first) {
    const probe = await get(row.url)
    if (probe.status !== 200) throw new Error(`answered ${probe.status} to GET ${row.url}: ${probe.body.slice(0, 200)}`)
    const warm = row.node === true ? warmup : Math.min(1, warmup)
    if (warm > 0) await runLoad(tool, row.url, connections, warm)
  }
  const before = await row.counts?.()
  const cpuBefore = row.pid === undefined ? 0 : cpuSeconds(row.pid)
  passes.results.push(await runLoad(tool, row.url, connections, duration))
  if (row.pid !== undefined) passes.cpu += cpuSeconds(row.pid) - cpuBefore
  const served = delta(before, await row.counts?.())
  passes.counts = served === undefined ? undefined : served.map((count, index) => count + (passes.counts?.[index] ?? 0))
}

/** The passes of a row as one: req/s and MiB/s over the whole time, percentiles weighted by requests. */
function combine ({ row, results, counts, cpu }: Passes): Measured {
  const requests = results.reduce((sum, result) => sum + result.requests, 0)
  const seconds = results.reduce((sum, result) => sum + result.seconds, 0)
  const weighted = (pick: (result: LoadResult) => number): number =>
    results.reduce((sum, result) => sum + pick(result) * result.requests, 0) / requests
  const errors: Record<string, number> = {}
  for (const result of results) for (const [kind, count] of Object.entries(result.errors)) errors[kind] = (errors[kind] ?? 0) + count
  return {
    name: row.name,
    share: formatShare(counts),
    // Requests answered, as the load generator counted them; the stats and counts requests are too few to matter.
    cpuPerRequest: row.pid === undefined ? NaN : (cpu / requests) * 1e6,
    requests,
    seconds,
    rps: requests / seconds,
    p50: weighted((result) => result.p50),
    p99: weighted((result) => result.p99),
    bytesPerSecond: results.reduce((sum, result) => sum + result.bytesPerSecond * result.seconds, 0) / seconds,
    errors
  }
}

function printTable (scenario: Scenario, rows: Measured[]): void {
  const reference = rows.find((row) => row.name === scenario.reference)
  const header = ['balancer', 'req/s', ...(scenario.bytes === true ? ['MiB/s'] : []), 'p50', 'p99', 'CPU/req', 'errors', 'share per backend',
    'goload ÷ row req/s', 'goload ÷ row p99', 'goload ÷ row CPU/req']
  const lines = rows.map((row) => [
    row.name,
    Number.isNaN(row.rps) ? '-' : row.rps.toFixed(0),
    ...(scenario.bytes === true ? [mib(row.bytesPerSecond)] : []),
    ms(row.p50),
    ms(row.p99),
    Number.isNaN(row.cpuPerRequest) ? '-' : `${row.cpuPerRequest.toFixed(1)} µs`,
    formatErrors(row.errors),
    row.share,
    reference === undefined ? '-' : ratio(reference.rps / row.rps),
    reference === undefined ? '-' : ratio(reference.p99 / row.p99),
    reference === undefined ? '-' : ratio(reference.cpuPerRequest / row.cpuPerRequest)
  ])
  const left = new Set([0, header.indexOf('share per backend')])
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => line[column].length)))
  const format = (cells: string[]): string => `| ${cells.map((cell, column) => left.has(column) ? cell.padEnd(widths[column]) : cell.padStart(widths[column])).join(' | ')} |`
  console.log(format(header))
  console.log(`|${widths.map((width, column) => left.has(column) ? `:${'-'.repeat(width + 1)}` : `${'-'.repeat(width + 1)}:`).join('|')}|`)
  for (const line of lines) console.log(format(line))
}

interface Target { text: string, met: boolean | undefined, detail: string }

function targets (results: Map<string, Measured[]>): Target[] {
  const row = (scenario: string, name: string): Measured | undefined => results.get(scenario)?.find((r) => r.name === name)
  const list: Target[] = []
  const check = (text: string, scenario: string, a: string, b: string, test: (x: Measured, y: Measured) => [boolean, string]): void => {
    const x = row(scenario, a)
    const y = row(scenario, b)
    if (x === undefined || y === undefined) return
    const [met, detail] = test(x, y)
    list.push({ text, met, detail })
  }
  const goload = 'goload least-busy'
  check('fast: goload ≥ 0.95× http-proxy single req/s', 'fast', goload, 'http-proxy single (1 backend)',
    (x, y) => [x.rps >= 0.95 * y.rps, `${(x.rps / y.rps).toFixed(2)}× (${x.rps.toFixed(0)} vs ${y.rps.toFixed(0)})`])
  check('fast: goload p99 ≤ http-proxy single p99', 'fast', goload, 'http-proxy single (1 backend)',
    (x, y) => [x.p99 <= y.p99, `${ms(x.p99)} vs ${ms(y.p99)} (${(x.p99 / y.p99).toFixed(2)}×)`])
  check('fast: goload ≥ BalancedPool req/s', 'fast', goload, 'reply-from BalancedPool',
    (x, y) => [x.rps >= y.rps, `${(x.rps / y.rps).toFixed(2)}× (${x.rps.toFixed(0)} vs ${y.rps.toFixed(0)})`])
  const cpu = (x: Measured, y: Measured): string => `${(x.cpuPerRequest / y.cpuPerRequest).toFixed(2)}× (${x.cpuPerRequest.toFixed(1)} vs ${y.cpuPerRequest.toFixed(1)} µs)`
  check('fast: goload plugin CPU/req ≤ 0.75× http-proxy single (issue 17)', 'fast', goload, 'http-proxy single (1 backend)',
    (x, y) => [x.cpuPerRequest <= 0.75 * y.cpuPerRequest, cpu(x, y)])
  check('fast: goload command (JSON access log) CPU/req ≤ 1.10× the plugin (issue 17)', 'fast', 'goload command, JSON access log', goload,
    (x, y) => [x.cpuPerRequest <= 1.1 * y.cpuPerRequest, cpu(x, y)])
  check('fast: goload command, accessLog.buffer 32768, CPU/req ≤ 1.10× the plugin (issue 17)', 'fast', 'goload command, JSON access log, accessLog.buffer 32768', goload,
    (x, y) => [x.cpuPerRequest <= 1.1 * y.cpuPerRequest, cpu(x, y)])
  check('skewed: goload least-busy ≥ 0.90× nginx least_conn req/s (issue 17)', 'skewed', goload, 'nginx least_conn',
    (x, y) => [x.rps >= 0.9 * y.rps, `${(x.rps / y.rps).toFixed(2)}× (${x.rps.toFixed(0)} vs ${y.rps.toFixed(0)})`])
  check('skewed: goload least-busy p99 ≤ nginx least_conn p99', 'skewed', goload, 'nginx least_conn',
    (x, y) => [x.p99 <= y.p99, `${ms(x.p99)} vs ${ms(y.p99)} (${(x.p99 / y.p99).toFixed(2)}×)`])
  check('skewed: goload peak-ewma p99 ≤ ⅓ nginx least_conn p99', 'skewed', 'goload peak-ewma', 'nginx least_conn',
    (x, y) => [x.p99 <= y.p99 / 3, `${ms(x.p99)} vs ${ms(y.p99)} (${(x.p99 / y.p99).toFixed(2)}×)`])
  check('skewed: goload peak-ewma ≥ nginx least_conn req/s', 'skewed', 'goload peak-ewma', 'nginx least_conn',
    (x, y) => [x.rps >= y.rps, `${(x.rps / y.rps).toFixed(2)}× (${x.rps.toFixed(0)} vs ${y.rps.toFixed(0)})`])
  check('1 MB: goload ≥ 0.8× http-proxy single MiB/s', '1mb', goload, 'http-proxy single (1 backend)',
    (x, y) => [x.bytesPerSecond >= 0.8 * y.bytesPerSecond, `${(x.bytesPerSecond / y.bytesPerSecond).toFixed(2)}× (${mib(x.bytesPerSecond)} vs ${mib(y.bytesPerSecond)} MiB/s)`])
  return list
}

// ---------------------------------------------------------------------------------------------------------------

installCleanup()
const wanted = process.env.SCENARIOS?.split(',').map((name) => name.trim()).filter(Boolean)
const unknown = wanted?.filter((name) => !scenarios.some((scenario) => scenario.name === name)) ?? []
if (unknown.length > 0) {
  console.error(`unknown scenario ${unknown.join(', ')}: choose from ${scenarios.map((scenario) => scenario.name).join(', ')}`)
  process.exit(2)
}
const selected = scenarios.filter((scenario) => wanted === undefined || wanted.includes(scenario.name))

const loadCommand = tool === 'wrk' ? `wrk -t1 -cN -d${duration}s --latency --timeout 10s` : `autocannon -c N -d ${duration} (in-process)`
const code = codeVersion()
console.log(`# fastify-goload bench: ${new Date().toISOString()}, ${code.text}`)
console.log(`${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores; node ${process.version}; load: ${loadCommand}; warm-up per row ${warmup} s (Node servers), ${Math.min(1, warmup)} s (others)`)
console.log(`peers installed: ${[hasNginx && 'nginx', hasHaproxy && 'haproxy', hasCaddy && 'caddy'].filter(Boolean).join(', ') || 'none (Node peers only)'}`)
console.log('Ratios from one run are what to compare: this 2-core machine is noisy, absolute figures move between runs.')
console.log('"goload ÷ row": goload\'s req/s over the row\'s (above 1: goload faster) and its p99 over the row\'s (below 1: goload lower).')

const results = new Map<string, Measured[]>()
for (const scenario of selected) {
  const group = new Group()
  try {
    const rows = await scenario.setup(group)
    const perRow = rounds === 1 ? `${duration} s per row` : `${rounds} passes of ${duration} s per row, every other pass in reverse order`
    console.log(`\n## ${scenario.name}: ${scenario.title}; ${scenario.connections} connections, ${perRow}\n`)
    const all: Passes[] = rows.map((row) => ({ row, results: [], counts: undefined, cpu: 0, failed: false }))
    for (let round = 0; round < rounds; round++) {
      for (const passes of round % 2 === 0 ? all : [...all].reverse()) {
        if (passes.failed) continue
        try {
          await pass(passes, round === 0, scenario.connections)
        } catch (error) {
          passes.failed = true
          console.error(`${passes.row.name}: ${(error as Error).message}`)
        }
      }
    }
    const measured = all.filter((passes) => !passes.failed).map(combine)
    results.set(scenario.name, measured)
    printTable(scenario, measured)
  } catch (error) {
    console.error(`\n## ${scenario.name}: could not start: ${(error as Error).message}`)
  } finally {
    await group.close()
  }
}

const checked = targets(results)
if (checked.length > 0) {
  console.log('\n## targets\n')
  for (const target of checked) console.log(`- ${target.met === true ? 'met   ' : 'MISSED'} ${target.text}: ${target.detail}`)
}
if (codeVersion().libHash !== code.libHash) console.log('\nWARNING: lib/ changed during the run: scenarios may have measured different code.')
if (process.env.OUT !== undefined) {
  writeFileSync(process.env.OUT, JSON.stringify({ date: new Date().toISOString(), code: code.text, tool, duration, warmup, rounds, results: Object.fromEntries(results) }, null, 2))
}
