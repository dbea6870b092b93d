// How the admin's actions name a backend: by id, by URL as it is or URL-encoded, by host:port; and what a request
// that names none, or no route, is told.
import t from 'tap'
import { startAdminOf } from './helpers/admin.js'
import { request } from './helpers/client.js'
import { hello, startBackend, startBalancer } from './helpers/servers.js'

const json = (body: string): unknown => JSON.parse(body)

t.test('a backend is named by its id, its URL as it is or URL-encoded, or its host:port; the rest gets a 404 saying how', async (t) => {
  const [a, b] = [await startBackend(t, hello('a')), await startBackend(t, hello('b'))]
  const balancer = await startBalancer(t, { name: 'web', backends: [a.url, { url: b.url, id: 'b' }] })
  const admin = await startAdminOf(t, balancer)
  const post = async (path: string) => {
    const { status, body } = await request(admin.url + path, { method: 'POST' })
    return { status, body: json(body) }
  }

  t.same(await post(`/pools/web/backends/${a.url}/drain`), { status: 200, body: { id: a.url, draining: true } }, 'the URL as it is')
  t.same(await post(`/pools/web/backends/${a.url.slice('http://'.length)}/undrain`), { status: 200, body: { id: a.url, draining: false } }, 'host:port')
  t.same(await post(`/pools/web/backends/${b.url}/drain`), { status: 200, body: { id: 'b', draining: true } }, 'the URL of a backend with an id')
  t.same(await post('/pools/web/backends/b/undrain'), { status: 200, body: { id: 'b', draining: false } }, 'the id')

  const unknown = await post('/pools/web/backends/http://127.0.0.1:1/drain')
  t.same(unknown, {
    status: 404,
    body: {
      statusCode: 404,
      code: 'FST_GOLOAD_UNKNOWN_BACKEND',
      error: 'Not Found',
      message: `fastify-goload: no backend has the url or id "http://127.0.0.1:1" in pool "web": name one by its id or its URL, as is or URL-encoded (it has ${a.url}, b (${b.url}))`
    }
  })

  for (const [method, path] of [['POST', `/pools/web/backends/${a.url}/dran`], ['POST', `/pools/web/backends/${a.url}`], ['DELETE', '/pools/web/backends/'], ['GET', '/pools/web/backends/b']]) {
    const answer = await request(admin.url + path, { method })
    t.equal(answer.status, 404, `${method} ${path}`)
    t.same(json(answer.body), {
      statusCode: 404,
      code: 'FST_GOLOAD_NO_ROUTE',
      error: 'Not Found',
      message: `no admin route ${method} ${path}: the admin has GET /stats, GET /events, GET /metrics, POST /pools/:pool/backends, DELETE /pools/:pool/backends/:backend, POST /pools/:pool/backends/:backend/drain or /undrain, GET /routes, PUT /routes/:route/weights, where :backend is the backend's id or its URL, as is (http://10.0.0.1:3000) or URL-encoded (http%3A%2F%2F10.0.0.1%3A3000)`
    }, `${method} ${path}`)
  }

  const removed = await request(`${admin.url}/pools/web/backends/${a.url}`, { method: 'DELETE' })
  t.same({ status: removed.status, body: json(removed.body) }, { status: 200, body: { id: a.url, removed: true } }, 'DELETE by the URL as it is')
  t.same(balancer.app.goload.stats().backends.map((backend) => backend.id), ['b'])
})
