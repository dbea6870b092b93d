// The routing pieces on their own: the request's host as routes see it, the path routes match and where their prefix
// ends in the raw target, and header conditions on headers that came several times.
import t from 'tap'
import { checkedHost, hostMatcher, requestHost } from '../lib/routing/host.js'
import { matchPath, matchPrefix, rawEnd } from '../lib/routing/path.js'
import { RouteTable } from '../lib/routing/table.js'

t.test('requestHost: lowercased, without port or trailing dot; an IPv6 literal keeps its brackets', async (t) => {
  t.equal(requestHost('API.Example.com:8080'), 'api.example.com')
  t.equal(requestHost('example.com.'), 'example.com')
  t.equal(requestHost('[::1]:8080'), '[::1]')
  t.equal(requestHost('[::1]'), '[::1]')
  t.equal(requestHost(undefined), '')
})

t.test('checkedHost: one Host, a host name or address with an optional port; an absolute-form target\'s authority wins', async (t) => {
  const check = (host: string | undefined, url = '/', rawHeaders = host === undefined ? [] : ['Host', host]) => checkedHost({ url, headers: { host }, rawHeaders })
  for (const host of ['a.test', 'A.test:8080', 'a.test.', 'a.test:', '127.0.0.1:80', '[::1]:8080', '[2001:db8::1]', 'x_y.test', '']) t.equal(check(host), host, host)
  for (const host of ['a..test', '.a.test', 'a b.test', 'a/b', 'a,b', 'a@b', 'a.test:80x', 'a.test:123456', '[::1', '[]', '[::g]', 'a%2eb', 'a\\b']) t.equal(check(host), undefined, host)
  t.equal(check(undefined), '', 'HTTP/1.0 without Host')
  t.equal(check('a.test', '/', ['Host', 'a.test', 'HOST', 'b.test']), undefined, 'Host twice, whatever the case')
  const request = { url: 'http://b.test:81/x', headers: { host: 'a.test' }, rawHeaders: ['Host', 'a.test'] }
  t.equal(checkedHost(request), 'b.test:81')
  t.equal(request.headers.host, 'b.test:81', 'the target\'s authority replaces Host')
  t.equal(check('a.test', 'http://user@b.test/'), undefined)
  t.equal(check('a.test', 'http:///x'), undefined)
  t.equal(checkedHost({ headers: { host: 'a.test' }, rawHeaders: ['Host', 'a.test'] }), 'a.test', 'a request without url (as Node types it)')
})

t.test('hostMatcher: exact, wildcard of one or more labels, RegExp', async (t) => {
  t.ok(hostMatcher('A.test.').matches('a.test'))
  t.notOk(hostMatcher('*.a.test').matches('a.test'))
  t.ok(hostMatcher('*.a.test').matches('x.y.a.test'))
  t.ok(hostMatcher(/^x\d$/).matches('x1'))
})

t.test('matchPath: decoded, separators merged, parameters cut; control characters, bad escapes and dot segments refused', async (t) => {
  const matched: Array<[target: string, path: string]> = [
    ['/login', '/login'],
    ['/login?next=%2F..%2F', '/login'],
    ['//login', '/login'],
    ['/a//b///c/', '/a/b/c/'],
    ['/login;jsessionid=x', '/login'],
    ['/a;v=1/b;x', '/a/b'],
    ['/login%3Bx', '/login'],
    ['/login%2f', '/login/'],
    ['/%2flogin', '/login'],
    ['/%2F%2Flogin', '/login'],
    ['/login\\x', '/login/x'],
    ['/login%5Cx', '/login/x'],
    ['/%61pi/x', '/api/x'],
    ['/LOGIN', '/LOGIN'],
    ['/a/.../b', '/a/.../b'],
    ['/caf%C3%A9', '/caf\u00c3\u00a9'],
    ['/.well-known/x', '/.well-known/x']
  ]
  for (const [target, path] of matched) t.equal(matchPath(target), path, target)
  const refused = ['/login%00', '/login%0a', '/login%1F', '/login%7f', '/login\u0001', '/%zz', '/login%2', '/login%C0%AF', '/x%E9', '/a/./b', '/a/..', '/a%2F..%2Fb', '/a/%2e%2E/b', '/a\\..\\b', '/..;/admin']
  for (const target of refused) t.equal(matchPath(target), undefined, JSON.stringify(target))
})

t.test('rawEnd: where a matched prefix ends in the raw target, so that the rest goes on byte for byte', async (t) => {
  t.equal(rawEnd('/api/x', 4), 4)
  t.equal(rawEnd('/api', 0), 0)
  t.equal(rawEnd('//api//x', 4), 5)
  t.equal(rawEnd('/api;v=1/x', 4), 4)
  t.equal(rawEnd('/%61pi/x', 4), 6)
  t.equal(rawEnd('/a%2Fb/x', 4), 6)
  t.equal(rawEnd('/a%2F', 9), 5, 'a path shorter than the prefix (a target refused, matched as received): its length')
})

t.test('matchPrefix: a route prefix in the matched form, non-ASCII as UTF-8 bytes; one matchPath refuses stays as given', async (t) => {
  t.equal(matchPrefix('/api'), '/api')
  t.equal(matchPrefix('/caf\u00e9'), '/caf\u00c3\u00a9')
  t.equal(matchPrefix('/a%2fb'), '/a/b')
  t.equal(matchPrefix('/a/%zz'), '/a/%zz')
})

t.test('a route\'s prefix matches every spelling of its path, at a segment boundary only', async (t) => {
  const table = new RouteTable<string>()
  table.add({ host: undefined, prefix: '/login', methods: undefined, headers: [], target: 'login' })
  table.add({ host: undefined, prefix: '/caf\u00e9', methods: undefined, headers: [], target: 'cafe' })
  table.add({ host: undefined, prefix: '', methods: undefined, headers: [], target: 'any' })
  for (const target of ['/login', '/login/', '/login?x', '//login', '/login;jsessionid=x', '/login%2f', '/%2flogin', '/l%6Fgin', '/login\\x']) {
    t.equal(table.match(target, '', 'GET', {})?.route.target, 'login', target)
  }
  for (const target of ['/loginx', '/LOGIN', '/x/login']) t.equal(table.match(target, '', 'GET', {})?.route.target, 'any', target)
  t.equal(table.match('/caf%C3%A9/menu', '', 'GET', {})?.route.target, 'cafe', 'a non-ASCII prefix matches its UTF-8 escapes')
  t.equal(table.match('//login//x', '', 'GET', {})?.prefixEnd, 7)
})

t.test('a header condition on a header sent several times sees them joined', async (t) => {
  const table = new RouteTable<string>()
  table.add({ host: undefined, prefix: '', methods: undefined, headers: [['x-tag', /(^|, )b$/]], target: 'tagged' })
  table.add({ host: undefined, prefix: '', methods: undefined, headers: [], target: 'any' })
  t.equal(table.match('/', '', 'GET', { 'x-tag': ['a', 'b'] })?.route.target, 'tagged')
  t.equal(table.match('/', '', 'GET', { 'x-tag': 'a' })?.route.target, 'any')
})
