// --workers 2: one scrape, through whichever worker takes it, returns every worker's metrics summed by the primary
// (prom-client's AggregatorRegistry); gauges of state keep a worker label; the reload pair is not doubled.
import cluster, { type Worker } from 'node:cluster'
import { fileURLToPath } from 'node:url'
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import { configFile, freePort, runMain, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { parseExposition, sample, type Exposition } from './helpers/prometheus.js'
import { deadline } from './helpers/raw.js'
import { hello, startBackend, waitFor } from './helpers/servers.js'

// The primary runs here; the workers run test/fixtures/metrics-worker.ts with this process's loaders (tap's), so the
// code of both counts for coverage.
const fixture = fileURLToPath(new URL('fixtures/metrics-worker.ts', import.meta.url))
let output = ''
cluster.on('fork', (worker: Worker) => {
  for (const stream of [worker.process.stdout, worker.process.stderr]) stream?.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
})

t.test('--workers 2: requests_total is the sum over both workers; up and pool_backends per worker; reloads_total not doubled', async (t) => {
  const backend = await startBackend(t, hello('1'))
  const [port, metricsPort] = [await freePort(), await freePort()]
  const yaml = (timeout: number) => `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: web }]\npools:\n  web:\n    backends: [${backend.url}]\n    timeout: ${timeout}\n`
  const file = await configFile(t, yaml(5000))
  cluster.setupPrimary({ exec: fixture, args: [file, String(metricsPort)], execArgv: process.execArgv, silent: true })
  const run = runMain(t, ['--config', file, '--workers', '2'])
  // Each worker compiles lib/ through tap's loader at start: tens of seconds on a busy 2-core machine.
  await waitFor(() => output.match(/goload listening/g)?.length === 2, 'both workers to listen', startDeadline).catch((error: Error) => { throw new Error(`${error.message}:\n${output}`) })
  const scrape = async (): Promise<Exposition> => {
    const answer = await request(`http://127.0.0.1:${metricsPort}/metrics`, { agent: false })
    t.equal(answer.status, 200, 'the scrape answered')
    t.match(answer.headers['content-type'], /^text\/plain; version=0\.0\.4/)
    return parseExposition(answer.body)
  }
  // Both workers' metrics listeners up: a scrape holds a worker label for each.
  let metrics: Exposition | undefined
  for (const started = Date.now(); Date.now() - started < 20_000;) {
    metrics = await scrape().catch(() => undefined)
    if (metrics !== undefined && sample(metrics, 'goload_backend_up', { pool: 'web', backend: backend.url, worker: '2' }) !== undefined) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const served: number[] = []
  for (let i = 0; i < 12; i++) served.push((await request(`http://127.0.0.1:${port}/`, { agent: false })).status)
  t.same(served, Array(12).fill(200))
  metrics = await scrape()
  const labels = { pool: 'web', backend: backend.url }
  t.equal(sample(metrics, 'goload_backend_requests_total', { ...labels, code: '2xx' }), 12, 'summed over the workers')
  t.equal(sample(metrics, 'goload_backend_response_seconds_count', labels), 12)
  t.equal(sample(metrics, 'goload_backend_response_seconds_bucket', { ...labels, le: '+Inf' }), 12)
  t.equal(sample(metrics, 'goload_backend_pending', labels), 0)
  for (const worker of ['1', '2']) {
    t.equal(sample(metrics, 'goload_backend_up', { ...labels, worker }), 1, `up in worker ${worker}`)
    t.equal(sample(metrics, 'goload_backend_weight', { ...labels, worker }), 1)
    t.equal(sample(metrics, 'goload_pool_backends', { pool: 'web', state: 'up', worker }), 1)
  }
  t.equal(sample(metrics, 'goload_backend_up', labels), undefined, 'no unlabelled sum of up')
  // Each worker's process metrics, side by side: memory and CPU of one process are not added to another's.
  const starts = ['1', '2'].map((worker) => sample(metrics!, 'process_start_time_seconds', { worker }))
  t.ok(starts.every((start) => start !== undefined && Math.abs(start - Date.now() / 1000) < 120), `process_start_time_seconds per worker, kept: ${starts.join(', ')}`)
  for (const worker of ['1', '2']) {
    t.ok(sample(metrics, 'nodejs_heap_size_used_bytes', { worker })! > 0, `nodejs_heap_size_used_bytes of worker ${worker}`)
    t.ok(sample(metrics, 'process_cpu_seconds_total', { worker })! > 0, `process_cpu_seconds_total of worker ${worker}`)
  }
  t.equal(sample(metrics, 'nodejs_heap_size_used_bytes'), undefined, 'no sum over the workers')
  t.equal(sample(metrics, 'goload_config_reloads_total'), 0)

  await writeFile(file, yaml(6000))
  run.signals.emit('SIGHUP', 'SIGHUP')
  await waitFor(() => output.match(/config reloaded/g)?.length === 2, 'both workers to reload', 20_000)
  metrics = await scrape()
  t.equal(sample(metrics, 'goload_config_reloads_total'), 1, 'one SIGHUP, heard by both workers: 1, not 2')
  t.equal(sample(metrics, 'goload_config_last_reload_success'), 1)
  t.equal(sample(metrics, 'goload_backend_requests_total', { ...labels, code: '2xx' }), 0, 'the reloaded pool (new settings) starts from zero')
  t.equal(sample(metrics, 'goload_pool_queued', { pool: 'web' }), 0)

  // A worker whose registry cannot be read: the scrape fails with its reason rather than hanging or leaving it out.
  t.equal((await request(`http://127.0.0.1:${metricsPort}/break`, { agent: false })).body, 'broken')
  const failed = await request(`http://127.0.0.1:${metricsPort}/metrics`, { agent: false })
  t.equal(failed.status, 500)
  t.equal(failed.body, 'metrics of the workers: this metric cannot be read')

  run.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await deadline(run.code, startDeadline, 'the primary to return'), 0)
})
