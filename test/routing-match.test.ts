// The routing pieces on their own: the request's host as routes see it, where a prefix ends in a raw target, and
// header conditions on headers that came several times.
import t from 'tap'
import { hostMatcher, requestHost } from '../lib/routing/host.js'
import { prefixEnd } from '../lib/routing/prefix.js'
import { RouteTable } from '../lib/routing/table.js'

t.test('requestHost: lowercased, without port or trailing dot; an IPv6 literal keeps its brackets', async (t) => {
  t.equal(requestHost('API.Example.com:8080'), 'api.example.com')
  t.equal(requestHost('example.com.'), 'example.com')
  t.equal(requestHost('[::1]:8080'), '[::1]')
  t.equal(requestHost('[::1]'), '[::1]')
  t.equal(requestHost(undefined), '')
})

t.test('hostMatcher: exact, wildcard of one or more labels, RegExp', async (t) => {
  t.ok(hostMatcher('A.test.').matches('a.test'))
  t.notOk(hostMatcher('*.a.test').matches('a.test'))
  t.ok(hostMatcher('*.a.test').matches('x.y.a.test'))
  t.ok(hostMatcher(/^x\d$/).matches('x1'))
})

t.test('prefixEnd: at a segment boundary, percent-encoded characters decoded, an encoded slash never a separator', async (t) => {
  t.equal(prefixEnd('/api', '/api'), 4)
  t.equal(prefixEnd('/api/x', '/api'), 4)
  t.equal(prefixEnd('/api?x', '/api'), 4)
  t.equal(prefixEnd('/apix', '/api'), -1)
  t.equal(prefixEnd('/ap', '/api'), -1)
  t.equal(prefixEnd('/%61pi/x', '/api'), 6)
  t.equal(prefixEnd('/a%2Fb/x', '/a/b'), -1)
  t.equal(prefixEnd('/%zzpi', '/api'), -1, 'a % that is not an escape is a plain character')
  t.equal(prefixEnd('/anything', ''), 0)
})

t.test('a header condition on a header sent several times sees them joined', async (t) => {
  const table = new RouteTable<string>()
  table.add({ host: undefined, prefix: '', methods: undefined, headers: [['x-tag', /(^|, )b$/]], target: 'tagged' })
  table.add({ host: undefined, prefix: '', methods: undefined, headers: [], target: 'any' })
  t.equal(table.match('/', '', 'GET', { 'x-tag': ['a', 'b'] })?.route.target, 'tagged')
  t.equal(table.match('/', '', 'GET', { 'x-tag': 'a' })?.route.target, 'any')
})
