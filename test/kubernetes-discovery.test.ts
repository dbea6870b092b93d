import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import t from 'tap'
import { request } from './helpers/client.js'
import { endpoints, endpointSlice, FakeApiServer, startPods, type TestEndpoint } from './helpers/kubernetes.js'
import { capturedLogs } from './helpers/logs.js'
import { settled, startBalancer, waitFor } from './helpers/servers.js'
import { TestPki } from './helpers/tls.js'

const token = 'test-token-1'

async function startDiscovering (t: Test, api: FakeApiServer, extra: Record<string, unknown> = {}, level = 'warn') {
  const logs = capturedLogs(level)
  const balancer = await startBalancer(t, {
    discovery: { kubernetes: { service: 'api', namespace: 'prod', port: 'http', apiServer: api.origin, token: api.token, retryDelay: 20, ...extra } }
  }, { logger: logs.logger })
  const backends = () => balancer.app.goload.stats().backends
  return { ...balancer, logs, backends, ids: () => backends().map((b) => b.id).sort() }
}

/** The pods that answered `count` requests, sorted, without repeats. */
async function landed (url: string, count: number): Promise<string[]> {
  const names = new Set<string>()
  for (let i = 0; i < count; i++) names.add((await request(url)).body)
  return [...names].sort()
}

t.test('ready endpoints are added as backends named after their pods, and take traffic; a new one joins', async (t) => {
  const pods = await startPods(t, ['api-a', 'api-b', 'api-c'])
  const api = await FakeApiServer.start(t, token)
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': { ready: true }, 'api-b': { ready: true } })))
  const { app, url, ids, backends } = await startDiscovering(t, api)

  t.same(ids(), ['api-a', 'api-b'], 'listed before the app is ready')
  t.equal(backends().find((b) => b.id === 'api-a')?.url, `http://127.0.0.1:${pods.port}`)
  t.same(await landed(url, 6), ['api-a', 'api-b'])
  await waitFor(() => api.openWatches === 1, 'the watch')
  t.match(api.watches[0], /resourceVersion=\d+/, 'the watch starts from the list\'s resourceVersion')

  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': { ready: true }, 'api-b': { ready: true }, 'api-c': { ready: true } })))
  await waitFor(() => ids().length === 3, 'the new endpoint to be added')
  t.same(await landed(url, 9), ['api-a', 'api-b', 'api-c'])
  t.equal(api.lists.length, 1, 'one list, then the watch')

  // Removed through the API (the admin's DELETE): the next change to the slices brings the pod back.
  await app.goload.remove('api-c')
  t.same(ids(), ['api-a', 'api-b'])
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': {}, 'api-c': { ready: true, serving: true } })))
  await waitFor(() => ids().length === 3, 'the removed pod to be added again')
  await settled(app)
})

t.test('a terminating endpoint is drained, its request in flight finishes, and it is removed once it leaves the slice', async (t) => {
  const pods = await startPods(t, ['api-a', 'api-b'])
  const api = await FakeApiServer.start(t, token)
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': { ready: true }, 'api-b': { ready: true } })))
  const { app, url, ids, backends, logs } = await startDiscovering(t, api, {}, 'info')

  // Both take a /hold: least-busy sends the second to the pod without one.
  const holds = [request(url + '/hold'), request(url + '/hold')]
  await waitFor(() => pods.held.size === 2, 'a request held at each pod')

  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': { ready: true }, 'api-b': { ready: false, serving: true, terminating: true } })))
  await waitFor(() => backends().find((b) => b.id === 'api-b')?.draining === true, 'the terminating endpoint to be drained')
  t.same(await landed(url, 4), ['api-a'], 'no new request goes to the terminating pod')

  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': { ready: true } })))
  await waitFor(() => logs.lines.some((line) => line.backend === 'api-b' && /gone from the EndpointSlices/.test(line.msg)), 'the pod to leave the slice')
  // Gone from the slice while its request is in flight: listed, drained, until the request ends.
  t.same(ids(), ['api-a', 'api-b'], 'still listed while its request is in flight')
  pods.held.get('api-b')!()
  pods.held.get('api-a')!()
  t.same((await Promise.all(holds)).map((answer) => answer.body).sort(), ['api-a, held', 'api-b, held'], 'both requests in flight were answered')
  await waitFor(() => ids().length === 1, 'the gone pod to leave the pool')
  t.same(ids(), ['api-a'])
  await settled(app)
})

t.test('an unset ready condition is ready; ready: false is kept out of rotation', async (t) => {
  const pods = await startPods(t, ['api-a', 'api-b', 'api-c'])
  const api = await FakeApiServer.start(t, token)
  api.put(endpointSlice('api-x1', 'api', pods.port, [
    ...endpoints(pods, { 'api-a': {}, 'api-c': { ready: false } }),
    { pod: 'api-b', address: pods.address['api-b'], bare: true }
  ]))
  const { app, url, ids } = await startDiscovering(t, api)
  t.same(ids(), ['api-a', 'api-b'], 'ready unset (no value, or no conditions at all) is in rotation; ready: false is not')
  t.same(await landed(url, 8), ['api-a', 'api-b'])

  // It becomes ready: it joins; not ready again (not terminating): drained, not removed.
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': {}, 'api-c': { ready: true } })))
  await waitFor(() => ids().length === 3, 'the now ready endpoint to join')
  t.same(await landed(url, 9), ['api-a', 'api-b', 'api-c'])
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': {}, 'api-c': { ready: false } })))
  await waitFor(() => app.goload.stats().backends.find((b) => b.id === 'api-c')?.draining === true, 'the not ready endpoint to be drained')
  t.same(await landed(url, 6), ['api-a', 'api-b'])
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': {}, 'api-c': { ready: true } })))
  await waitFor(() => app.goload.stats().backends.find((b) => b.id === 'api-c')?.draining === false, 'the ready again endpoint to be back in rotation')
  await settled(app)
})

t.test('every slice of the Service counts: endpoints split across slices, more than 1,000 of them, over paged lists', async (t) => {
  const pods = await startPods(t, ['api-a', 'api-b'])
  const api = await FakeApiServer.start(t, token)
  api.pageSize = 1
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {} })))
  api.put(endpointSlice('api-x2', 'api', pods.port, endpoints(pods, { 'api-b': {} })))
  api.put(endpointSlice('other-x1', 'other', pods.port, endpoints(pods, { 'api-a': {} })))
  const { app, url, ids } = await startDiscovering(t, api)
  t.same(ids(), ['api-a', 'api-b'])
  t.equal(api.lists.length, 2, 'two pages of one slice each')
  t.match(api.lists[1], /continue=1/)
  t.same(await landed(url, 6), ['api-a', 'api-b'], 'both slices\' pods take traffic')

  // 1,200 endpoints in three slices of 400 (the most one slice holds is 1,000): none is left out.
  const many = (slice: number) => Array.from({ length: 400 }, (_, i): TestEndpoint => ({ pod: `api-${slice}-${i}`, address: `10.${slice}.${i >> 8}.${i & 255}`, ready: true }))
  for (const slice of [1, 2, 3]) api.put(endpointSlice(`api-big${slice}`, 'api', 8080, many(slice)))
  await waitFor(() => ids().length === 1202, '1,200 more endpoints')
  t.ok(ids().includes('api-3-399'))
  api.delete('api-big2')
  await waitFor(() => ids().length === 802, 'a deleted slice\'s endpoints to leave')
  t.notOk(ids().includes('api-2-0'))
  await app.close()
})

t.test('the port named, the port numbered, or the only TCP one: a slice without it is left out, said once', async (t) => {
  const pods = await startPods(t, ['api-a', 'api-b'])
  const api = await FakeApiServer.start(t, token)
  // api-x1 lists a metrics port and a UDP port beside http; api-x2 its one port, http.
  const x1 = (ready: boolean) => ({
    ...endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': { ready } })),
    ports: [{ name: 'metrics', port: 9100, protocol: 'TCP' }, { name: 'http', port: pods.port, protocol: 'TCP' }, { name: 'dns', port: 53, protocol: 'UDP' }]
  })
  api.put(x1(true))
  api.put(endpointSlice('api-x2', 'api', pods.port, endpoints(pods, { 'api-b': {} })))

  const byNumber = await startDiscovering(t, api, { port: pods.port })
  t.same(byNumber.ids(), ['api-a', 'api-b'], 'port: its number, found among the slice\'s ports')
  t.same(await landed(byNumber.url, 6), ['api-a', 'api-b'])

  const byName = await startDiscovering(t, api, { port: 'metrics' })
  t.same(byName.ids(), ['api-a'], 'port: metrics, which only api-x1 lists')
  t.equal(byName.backends()[0].url, `http://${pods.address['api-a']}:9100`, 'at the port of that name')
  t.match(byName.logs.warnings(), [{ msg: /1 EndpointSlice\(s\) of the Service list no port "metrics": their endpoints are left out/ }])

  const alone = await startDiscovering(t, api, { port: undefined })
  t.same(alone.ids(), ['api-b'], 'no port given: api-x2\'s only TCP port; api-x1 has two')
  const portless = () => alone.logs.warnings().filter((line) => /list no port alone \(give discovery.kubernetes.port\)/.test(line.msg))
  t.equal(portless().length, 1, 'said once')
  t.match(portless()[0].msg, /^goload: 1 EndpointSlice\(s\)/)
  // A change that leaves the same slice without its port is not said again.
  await waitFor(() => api.openWatches === 3, 'the watches')
  api.put(x1(false))
  api.put(endpointSlice('api-x2', 'api', pods.port, endpoints(pods, { 'api-b': {}, 'api-a': {} })))
  await waitFor(() => alone.ids().length === 2, 'the change to apply')
  t.equal(portless().length, 1, 'still said once')
  await Promise.all([byNumber, byName, alone].map(async ({ app }) => { await settled(app) }))
})

t.test('a pod named as a backend the pool already has is left out, said once; the others are added', async (t) => {
  const pods = await startPods(t, ['api-a', 'api-b'])
  const api = await FakeApiServer.start(t, token)
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': {} })))
  const logs = capturedLogs('warn')
  const { app, url } = await startBalancer(t, {
    backends: [{ id: 'api-a', url: `http://${pods.address['api-b']}:${pods.port}` }],
    discovery: { kubernetes: { service: 'api', namespace: 'prod', port: 'http', apiServer: api.origin, token: api.token, retryDelay: 20 } }
  }, { logger: logs.logger })
  const backends = () => app.goload.stats().backends.map(({ id, url }) => ({ id, url }))
  t.same(backends(), [{ id: 'api-a', url: `http://${pods.address['api-b']}:${pods.port}` }, { id: 'api-b', url: `http://${pods.address['api-b']}:${pods.port}` }], 'the configured api-a stays as it is')
  t.same(await landed(url, 4), ['api-b'])
  const clash = () => logs.warnings().filter((line) => /a backend of the pool is already called api-a: the endpoint of that name is left out/.test(line.msg))
  t.equal(clash().length, 1)
  await waitFor(() => api.openWatches === 1, 'the watch')
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': { ready: false } })))
  await waitFor(() => app.goload.stats().backends.find((b) => b.id === 'api-b')?.draining === true, 'the change to apply')
  t.equal(clash().length, 1, 'not said again on the next change')
  await settled(app)
})

t.test('410 Gone lists again: as an ERROR event in the watch, and as the watch\'s status', async (t) => {
  const pods = await startPods(t, ['api-a', 'api-b', 'api-c'])
  const api = await FakeApiServer.start(t, token)
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': {} })))
  const { app, url, ids } = await startDiscovering(t, api)
  await waitFor(() => api.openWatches === 1, 'the watch')

  // What changes while the watch is gone is only in a new list.
  api.replaceQuietly([endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-b': {}, 'api-c': {} }))])
  api.expire()
  await waitFor(() => ids().join() === 'api-a,api-b,api-c' || ids().join() === 'api-b,api-c', 'the re-list')
  await waitFor(() => ids().join() === 'api-b,api-c', 'the pod gone from the list to leave')
  t.equal(api.lists.length, 2, 'listed again')
  t.same(await landed(url, 6), ['api-b', 'api-c'])

  // The API server ends a watch; the next one resumes from the last version seen, and one too old gets 410.
  await waitFor(() => api.openWatches === 1, 'the new watch')
  const resumed = api.watches.length
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': {}, 'api-c': {} })))
  await waitFor(() => ids().length === 3, 'the event to arrive')
  api.endWatches()
  await waitFor(() => api.watches.length > resumed, 'a new watch')
  const version = (watch: string | undefined) => new URL(watch!, 'http://api').searchParams.get('resourceVersion')
  t.equal(version(api.watches.at(-1)), String(api.version), 'resumed from the last event\'s resourceVersion')
  t.equal(api.lists.length, 2, 'a watch the server ended resumes without a list')

  // The next watch, from a version compacted away meanwhile, is answered 410 itself.
  await waitFor(() => api.openWatches === 1, 'the resumed watch')
  api.goneAsStatus = true
  api.replaceQuietly([endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {} }))])
  api.expire(false)
  const watches = api.watches.length
  api.endWatches()
  await waitFor(() => ids().join() === 'api-a', 'the re-list after an HTTP 410')
  t.equal(api.lists.length, 3)
  await waitFor(() => api.openWatches === 1, 'the watch after the re-list')
  t.equal(api.watches.length, watches + 2, 'one watch answered 410, then one from the new list')
  await settled(app)
})

t.test('while the API server cannot be reached the last set stays, logged once; then changes apply again', async (t) => {
  const pods = await startPods(t, ['api-a', 'api-b', 'api-c'])
  const api = await FakeApiServer.start(t, token)
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': {} })))
  const { app, url, ids, logs } = await startDiscovering(t, api, {}, 'info')
  await waitFor(() => api.openWatches === 1, 'the watch')

  api.down()
  // retryDelay 20 ms, doubling: five retries within about a second.
  await waitFor(() => api.dropped >= 5, 'several retries while the API is down')
  t.same(ids(), ['api-a', 'api-b'], 'the backends known stay')
  t.same(await landed(url, 6), ['api-a', 'api-b'], 'and take traffic')
  const unreachable = () => logs.lines.filter((line) => /Kubernetes API unreachable/.test(line.msg))
  t.equal(unreachable().length, 1, 'logged once, not per retry')
  t.equal(unreachable()[0].level, 40)

  api.up()
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': {}, 'api-c': {} })))
  await waitFor(() => ids().length === 3, 'the change made while down to apply', 15_000)
  t.ok(logs.lines.some((line) => /Kubernetes API reachable again/.test(line.msg)))
  await settled(app)
})

t.test('the API server down at start: the pool starts empty (503) and fills once it answers', async (t) => {
  const pods = await startPods(t, ['api-a'])
  const api = await FakeApiServer.start(t, token)
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {} })))
  api.down()
  const { app, url, ids, logs } = await startDiscovering(t, api)
  t.same(ids(), [])
  const answer = await request(url)
  t.equal(answer.status, 503)
  t.equal(logs.warnings().filter((line) => /unreachable/.test(line.msg)).length, 1)
  api.up()
  await waitFor(() => ids().length === 1, 'the first list', 15_000)
  t.equal((await request(url)).body, 'api-a')
  await settled(app)
})

t.test('in a cluster: HTTPS to KUBERNETES_SERVICE_HOST with the CA file, and a token file read again as it rotates', async (t) => {
  const pki = new TestPki()
  t.teardown(() => { pki.close() })
  const ca = pki.ca('kubernetes-ca')
  const pods = await startPods(t, ['api-a', 'api-b'])
  const api = await FakeApiServer.start(t, 'token-1', pki.server(ca, { ip: ['127.0.0.1'] }))
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {} })))
  const dir = await mkdtemp(join(tmpdir(), 'goload-sa-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await writeFile(join(dir, 'token'), 'token-1\n')
  await writeFile(join(dir, 'ca.crt'), ca.cert)
  const env = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT }
  process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1'
  process.env.KUBERNETES_SERVICE_PORT = new URL(api.origin).port
  t.teardown(() => {
    for (const [name, value] of [['KUBERNETES_SERVICE_HOST', env.host], ['KUBERNETES_SERVICE_PORT', env.port]] as const) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  })

  const { app, url, ids } = await startBalancer(t, {
    discovery: { kubernetes: { service: 'api', namespace: 'prod', port: 'http', tokenFile: join(dir, 'token'), ca: join(dir, 'ca.crt'), retryDelay: 20 } }
  }).then((balancer) => ({ ...balancer, ids: () => balancer.app.goload.stats().backends.map((b) => b.id).sort() }))
  t.same(ids(), ['api-a'], 'listed over HTTPS, the server\'s certificate checked against the CA file')
  t.equal((await request(url)).body, 'api-a')

  await waitFor(() => api.openWatches === 1, 'the watch, made with the first token')
  // The kubelet writes a new token; the API server stops taking the old one and ends the watch.
  await writeFile(join(dir, 'token'), 'token-2\n')
  api.token = 'token-2'
  api.endWatches()
  api.put(endpointSlice('api-x1', 'api', pods.port, endpoints(pods, { 'api-a': {}, 'api-b': {} })))
  await waitFor(() => ids().length === 2, 'the change seen with the new token')
  t.equal(api.unauthorized, 0, 'the old token was never sent after the file changed')
  t.equal(api.authorizations.at(-1), 'Bearer token-2')
  await settled(app)
})
