// The goload command's metrics (createCliMetrics over Listeners.entries()): the live pools at each scrape, across
// SIGHUP reloads that replace or drop pools, and the reload pair (count, last success) with its timestamp.
import { EventEmitter } from 'node:events'
import { PassThrough } from 'node:stream'
import t from 'tap'
import { serve } from '../lib/cli/main.js'
import type { GoloadFileConfig } from '../lib/config/schema.js'
import type { CliMetrics } from '../lib/metrics/cli.js'
import { request } from './helpers/client.js'
import { parseExposition, sample } from './helpers/prometheus.js'
import { deadline, startDeadline } from './helpers/raw.js'
import { startBackend, waitFor } from './helpers/servers.js'

t.test('a scrape after a reload shows the pools serving now; reloads_total counts each SIGHUP, last_reload_success the last outcome', async (t) => {
  const [a, b] = [await startBackend(t), await startBackend(t)]
  const listeners = [{ port: 0, host: '127.0.0.1', routes: [{ path: '/api', pool: 'api' }, { path: '/', pool: 'web' }] }]
  let config: GoloadFileConfig | Error = { listeners, pools: { web: { backends: [a.url] }, api: { backends: [a.url] } }, log: { level: 'info' } }
  const signals = new EventEmitter()
  let logs = ''
  const logStream = new PassThrough().setEncoding('utf8')
  logStream.on('data', (chunk: string) => { logs += chunk })
  let ports: number[] = []
  let metrics: CliMetrics | undefined
  const startedAt = Date.now() / 1000
  const code = serve(async () => { if (config instanceof Error) throw config; return config }, 1, {
    signals, logStream, onListening: (listening, _admin, given) => { ports = listening; metrics = given }
  })
  t.teardown(() => { signals.emit('SIGTERM', 'SIGTERM') })
  await waitFor(() => metrics !== undefined, 'onListening')
  const scrape = async () => {
    const { contentType, text } = await metrics!.scrape()
    t.equal(contentType, 'text/plain; version=0.0.4; charset=utf-8')
    return parseExposition(text)
  }
  const reload = async (count: number, outcome: RegExp) => {
    signals.emit('SIGHUP', 'SIGHUP')
    await waitFor(() => (logs.match(outcome)?.length ?? 0) === count, `reload ${count}`)
  }

  await request(`http://127.0.0.1:${ports[0]}/`)
  let scraped = await scrape()
  t.equal(sample(scraped, 'goload_backend_requests_total', { pool: 'web', backend: a.url, code: '2xx' }), 1)
  t.equal(sample(scraped, 'goload_backend_up', { pool: 'api', backend: a.url }), 1)
  t.equal(sample(scraped, 'goload_config_reloads_total'), 0)
  t.equal(sample(scraped, 'goload_config_last_reload_success'), 1, '1 before any reload: the start-up load succeeded')
  const firstLoad = sample(scraped, 'goload_config_last_reload_success_timestamp_seconds')!
  t.ok(firstLoad >= Math.floor(startedAt) && firstLoad <= Date.now() / 1000, 'the start-up load\'s time, in seconds')
  t.equal(metrics!.registry, metrics!.registry, 'the registry is there for the admin listener')
  // prom-client's default collectors, of this process: one series each, no worker label outside a cluster.
  t.ok(sample(scraped, 'process_cpu_seconds_total')! > 0, 'process_cpu_seconds_total')
  t.ok(sample(scraped, 'nodejs_heap_size_used_bytes')! > 0, 'nodejs_heap_size_used_bytes')
  t.equal(sample(scraped, 'process_start_time_seconds'), Math.round(Date.now() / 1000 - process.uptime()), 'process_start_time_seconds is this process\'s')
  t.equal(sample(scraped, 'nodejs_version_info', { version: process.version, major: process.versions.node.split('.')[0], minor: process.versions.node.split('.')[1], patch: process.versions.node.split('.')[2] }), 1)

  // web's settings change (a new pool object), api goes, www comes.
  config = { listeners: [{ port: 0, host: '127.0.0.1', routes: [{ path: '/', pool: 'web' }, { path: '/www', pool: 'www' }] }], pools: { web: { backends: [b.url], timeout: 5000 }, www: { backends: [a.url] } }, log: { level: 'info' } }
  await reload(1, /config reloaded/g)
  scraped = await scrape()
  t.equal(sample(scraped, 'goload_backend_up', { pool: 'web', backend: a.url }), undefined, 'the replaced pool\'s backend is gone')
  t.equal(sample(scraped, 'goload_backend_requests_total', { pool: 'web', backend: b.url, code: '2xx' }), 0, 'the new pool, from zero')
  t.equal(sample(scraped, 'goload_pool_queued', { pool: 'api' }), undefined, 'the dropped pool is gone')
  t.equal(sample(scraped, 'goload_pool_queued', { pool: 'www' }), 0, 'the added pool is there')
  t.equal(sample(scraped, 'goload_config_reloads_total'), 1)
  t.equal(sample(scraped, 'goload_config_last_reload_success'), 1)
  const reloadedAt = sample(scraped, 'goload_config_last_reload_success_timestamp_seconds')!
  t.ok(reloadedAt >= firstLoad, 'the reload\'s time')

  config = new Error('a broken file')
  await reload(1, /reload failed/g)
  scraped = await scrape()
  t.equal(sample(scraped, 'goload_config_reloads_total'), 2, 'a failed reload counts too')
  t.equal(sample(scraped, 'goload_config_last_reload_success'), 0, 'and shows')
  t.equal(sample(scraped, 'goload_config_last_reload_success_timestamp_seconds'), reloadedAt, 'the last success stays the time')
  t.equal(sample(scraped, 'goload_pool_queued', { pool: 'www' }), 0, 'the running config still serves')

  signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await deadline(code, startDeadline, 'serve to return'), 0)
})
