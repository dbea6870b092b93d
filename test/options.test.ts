import Fastify from 'fastify'
import t from 'tap'
import goload, { type GoloadOptions } from '../lib/index.js'

async function registerError (options: unknown): Promise<Error & { code?: string }> {
  const app = Fastify()
  try {
    await app.register(goload, options as GoloadOptions)
    await app.ready()
  } catch (error) {
    return error as Error
  } finally {
    await app.close()
  }
  throw new Error('register succeeded')
}

const cases: Array<[string, unknown, RegExp]> = [
  ['no options', undefined, /backends must be a non-empty array/],
  ['empty backends', { backends: [] }, /backends must be a non-empty array/],
  ['backends not an array', { backends: 'http://a:1' }, /backends must be a non-empty array/],
  ['a URL that does not parse', { backends: ['http://127.0.0.1:3000', 'not a url'] }, /backends\[1\] is not a valid http\(s\) or h2c URL: "not a url"/],
  ['a URL of another scheme', { backends: ['http://a:1', 'http://b:2', 'ftp://c:3'] }, /backends\[2\] is not a valid http\(s\) or h2c URL: "ftp:\/\/c:3"/],
  ['a URL with a path', { backends: ['http://a:1/api'] }, /backends\[0\] must be an origin like http:\/\/host:port/],
  ['a URL with credentials', { backends: ['http://user:pw@a:1'] }, /backends\[0\] must be an origin/],
  ['a backend of the wrong type', { backends: [42] }, /backends\[0\] must be an http\(s\) or h2c URL or a \{ url, id\?, weight\? \} object, got 42/],
  ['an object without url', { backends: [{ id: 'x' }] }, /backends\[0\]\.url is required/],
  ['an unknown backend field', { backends: [{ url: 'http://a:1', wieght: 2 }] }, /backends\[0\] has an unknown field "wieght"/],
  ['a zero weight', { backends: [{ url: 'http://a:1', weight: 0 }] }, /backends\[0\]\.weight must be a positive number, got 0/],
  ['a weight that is not a number', { backends: [{ url: 'http://a:1', weight: '2' }] }, /backends\[0\]\.weight must be a positive number, got "2"/],
  ['an empty id', { backends: [{ url: 'http://a:1', id: '' }] }, /backends\[0\]\.id must be a non-empty string/],
  ['the same backend twice', { backends: ['http://a:1', 'http://a:1/'] }, /backends\[1\] has the same id as backends\[0\]: "http:\/\/a:1"/],
  ['an unknown strategy', { backends: ['http://a:1'], strategy: 'random' }, /strategy must be one of "least-busy", "round-robin", "p2c", "peak-ewma", "hash", got "random"/],
  ['a negative timeout', { backends: ['http://a:1'], timeout: -1 }, /timeout must be a positive integer, got -1/],
  ['a fractional timeout', { backends: ['http://a:1'], timeout: 1.5 }, /timeout must be a positive integer, got 1.5/],
  ['zero connections', { backends: ['http://a:1'], connections: 0 }, /connections must be a positive integer, got 0/],
  ['a string pipelining', { backends: ['http://a:1'], pipelining: '2' }, /pipelining must be a positive integer, got "2"/],
  ['a relative prefix', { backends: ['http://a:1'], prefix: 'api' }, /prefix must be a plain path starting with "\/" \(no wildcards, parameters, query or fragment\), got "api"/],
  ['a prefix with a wildcard', { backends: ['http://a:1'], prefix: '/api/*' }, /prefix must be a plain path/],
  ['an empty name', { backends: ['http://a:1'], name: '' }, /name must be a non-empty string/],
  ['a misspelt option', { backends: ['http://a:1'], timout: 100 }, /unknown option "timout" \(did you mean timeout\?\)/],
  ['negative retries', { backends: ['http://a:1'], retries: -1 }, /retries must be a whole number \(0 or more\), got -1/],
  ['a retryNonIdempotent that is not a boolean', { backends: ['http://a:1'], retryNonIdempotent: 'yes' }, /retryNonIdempotent must be a boolean, got "yes"/],
  ['passiveHealth of the wrong type', { backends: ['http://a:1'], passiveHealth: true }, /passiveHealth must be an object or false/],
  ['a zero maxFails', { backends: ['http://a:1'], passiveHealth: { maxFails: 0 } }, /passiveHealth\.maxFails must be a positive integer, got 0/],
  ['a maxEjectedPercent above 100', { backends: ['http://a:1'], passiveHealth: { maxEjectedPercent: 150 } }, /passiveHealth\.maxEjectedPercent must be a number from 0 to 100, got 150/],
  ['an unknown passiveHealth field', { backends: ['http://a:1'], passiveHealth: { maxFail: 2 } }, /passiveHealth has an unknown field "maxFail" \(did you mean maxFails\?\)/],
  ['a healthCheck without path', { backends: ['http://a:1'], healthCheck: { interval: 1000 } }, /healthCheck\.path must be a path starting with "\/", got undefined/],
  ['a healthCheck interval of 0', { backends: ['http://a:1'], healthCheck: { path: '/h', interval: 0 } }, /healthCheck\.interval must be a positive integer, got 0/],
  ['an expectStatus that is not a status', { backends: ['http://a:1'], healthCheck: { path: '/h', expectStatus: '2xxx' } }, /healthCheck\.expectStatus must be a status code, a '2xx'-style class, or a list of them, got "2xxx"/],
  ['an empty expectStatus list', { backends: ['http://a:1'], healthCheck: { path: '/h', expectStatus: [] } }, /healthCheck\.expectStatus must not be empty/],
  ['a negative slowStart', { backends: ['http://a:1'], slowStart: -5 }, /slowStart must be a whole number \(0 or more\), got -5/],
  ['a zero maxPending', { backends: ['http://a:1'], maxPending: 0 }, /maxPending must be a positive integer, got 0/],
  ['a backend maxPending that is not a number', { backends: [{ url: 'http://a:1', maxPending: 'ten' }] }, /backends\[0\]\.maxPending must be a positive integer, got "ten"/],
  ['an unknown queue field', { backends: ['http://a:1'], queue: { size: 5 } }, /queue has an unknown field "size"/],
  ['a zero queue timeout', { backends: ['http://a:1'], queue: { timeout: 0 } }, /queue\.timeout must be a positive integer, got 0/],
  ['a fractional closeTimeout', { backends: ['http://a:1'], closeTimeout: 0.5 }, /closeTimeout must be a whole number \(0 or more\), got 0.5/],
  ['a zero ewmaDecay', { backends: ['http://a:1'], ewmaDecay: 0 }, /ewmaDecay must be a positive integer, got 0/],
  ['a resolve interval of 0', { backends: [{ url: 'http://a:1', resolve: { interval: 0 } }] }, /backends\[0\]\.resolve\.interval must be a positive integer, got 0/],
  ['a resolve lookup that is not a function', { backends: [{ url: 'http://a:1', resolve: { lookup: 'dns' } }] }, /backends\[0\]\.resolve\.lookup must be a function/],
  ['tls of the wrong type', { backends: ['https://a:1'], tls: 'ca.pem' }, /tls must be an object, got "ca.pem"/],
  ['an unknown tls field', { backends: ['https://a:1'], tls: { cafile: 'ca.pem' } }, /^fastify-goload: tls has an unknown field "cafile"/],
  ['an unknown backend tls field', { backends: ['https://a:1', { url: 'https://b:1', tls: { foo: 1 } }] }, /backends\[1\]\.tls has an unknown field "foo"/],
  ['a file name for tls.ca', { backends: ['https://a:1'], tls: { ca: './ca.pem' } }, /tls\.ca must be PEM text \(a string or Buffer with -----BEGIN CERTIFICATE-----\) or an array of them, got "\.\/ca\.pem"/],
  ['an empty tls.ca list', { backends: ['https://a:1'], tls: { ca: [] } }, /tls\.ca must not be empty/],
  ['a tls.cert without PEM header', { backends: ['https://a:1'], tls: { cert: Buffer.from('MIIB'.repeat(20)) } }, /tls\.cert must be PEM text .*, got a Buffer without a PEM header/],
  ['a tls.key that is not text', { backends: ['https://a:1'], tls: { key: 42 } }, /tls\.key must be PEM text .*, got 42/],
  ['an empty servername', { backends: [{ url: 'https://a:1', tls: { servername: '' } }] }, /backends\[0\]\.tls\.servername must be a non-empty string, got ""/],
  ['a rejectUnauthorized that is not a boolean', { backends: ['https://a:1'], tls: { rejectUnauthorized: 'no' } }, /tls\.rejectUnauthorized must be a boolean, got "no"/],
  ['a cert without its key', { backends: ['https://a:1'], tls: { cert: '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n' } }, /tls: cert and key go together for mutual TLS, give both or neither/],
  ['a CA that does not parse', { backends: ['https://a:1'], tls: { ca: '-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n' } }, /tls\.ca cannot be used: .*bad base64 decode/],
  ['a CA that holds a key instead', { backends: ['https://a:1'], tls: { ca: '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n' } }, /tls\.ca holds no certificate/],
  ['tls on an http backend', { backends: [{ url: 'http://a:1', tls: { rejectUnauthorized: false } }] }, /backends\[0\]\.tls is for https:\/\/ backends, and this one is http:\/\//],
  ['tls on a DNS-discovered backend', { backends: [{ url: 'https://a:1', resolve: {}, tls: { rejectUnauthorized: false } }] }, /backends\[0\]\.tls cannot be combined with resolve/],
  ['one URL with two tls settings', { backends: ['https://a:1', { url: 'https://a:1', id: 'again', tls: { rejectUnauthorized: false } }] }, /backends\[1\] has the URL of an earlier backend with other tls settings/],
  ['an allowH2 that is not a boolean', { backends: ['https://a:1'], allowH2: 'yes' }, /allowH2 must be a boolean, got "yes"/],
  ['a websocket that is not a boolean', { backends: ['http://a:1'], websocket: 'no' }, /websocket must be a boolean, got "no"/],
  ['an h2c URL with a path', { backends: ['h2c://a:1/api'] }, /backends\[0\] must be an origin like http:\/\/host:port/],
  ['an h2c URL without a host', { backends: ['h2c:x'] }, /backends\[0\] is not a valid http\(s\) or h2c URL: "h2c:x"/],
  ['tls on an h2c backend', { backends: [{ url: 'h2c://a:1', tls: { rejectUnauthorized: false } }] }, /backends\[0\]\.tls is for https:\/\/ backends, and this one is h2c:\/\//],
  ['a gRPC health check that is neither true nor an object', { backends: ['h2c://a:1'], healthCheck: { grpc: 'yes' } }, /healthCheck\.grpc must be true or \{ service: name \}, got "yes"/],
  ['a gRPC health check with an unknown field', { backends: ['h2c://a:1'], healthCheck: { grpc: { service: 'x', name: 'y' } } }, /healthCheck\.grpc has an unknown field "name"/],
  ['a gRPC health check with a path', { backends: ['h2c://a:1'], healthCheck: { grpc: true, path: '/health' } }, /healthCheck\.path is for HTTP probes: a gRPC health check/],
  ['a gRPC health check of an HTTP/1.1 backend', { backends: ['h2c://a:1', 'http://b:1'], healthCheck: { grpc: true } }, /healthCheck\.grpc needs HTTP\/2 to every backend, and backends\[1\] is http:\/\/b:1/],
  ['a gRPC health check of https without allowH2', { backends: ['https://a:1'], healthCheck: { grpc: true } }, /healthCheck\.grpc needs HTTP\/2 to every backend, and backends\[0\] is https:\/\/a:1: give h2c:\/\/ URLs, or https:\/\/ ones with allowH2: true/],
  ['a health check with neither path nor grpc', { backends: ['h2c://a:1'], healthCheck: { interval: 100 } }, /healthCheck\.path must be a path starting with "\/", got undefined/],
  ['one address as h2c and as HTTP/1.1', { backends: ['http://a:1', 'h2c://a:1'] }, /backends\[1\] is h2c:\/\/a:1 and backends\[0\] http:\/\/a:1: one address speaks one protocol/],
  // What the schema takes (text, a Buffer) but is not PEM: said without the value, which may be a key.
  ['a tls.key that is text but not PEM', { backends: ['https://a:1'], tls: { key: 'not a pem' } }, /^fastify-goload: tls\.key must be PEM text .*, got "not a pem"$/],
  ['a tls.cert that is a Buffer but not PEM', { backends: ['https://a:1'], tls: { cert: Buffer.from('secret bytes') } }, /^fastify-goload: tls\.cert must be PEM text .*, got a Buffer without a PEM header$/],
  ['a tls.ca list with an item that is not PEM', { backends: ['https://a:1'], tls: { ca: [Buffer.from('x')] } }, /^fastify-goload: tls\.ca must be PEM text .*, got an array with an item that is not PEM text$/],
  ['a mirror that is not an object', { backends: ['http://a:1'], mirror: 'next' }, /^fastify-goload: mirror must be an object like \{ pool: 'api-next', percent: 10 \}/],
  ['a tracing that is not an object', { backends: ['http://a:1'], tracing: 'http://collector:4318' }, /^fastify-goload: tracing must be an object like \{ otlp: 'http:\/\/collector:4318' \}/]
]

for (const [what, options, message] of cases) {
  t.test(`${what} fails at register, naming the option`, async (t) => {
    const error = await registerError(options)
    t.equal(error.code, 'FST_GOLOAD_INVALID_OPTION')
    t.match(error.message, message)
  })
}

t.test('two registrations with the same name fail, naming it', async (t) => {
  const app = Fastify()
  await app.register(goload, { backends: ['http://a:1'], prefix: '/a', name: 'api' })
  await t.rejects(async () => { await app.register(goload, { backends: ['http://b:1'], prefix: '/b', name: 'api' }) }, {
    code: 'FST_GOLOAD_INVALID_OPTION',
    message: /name "api" is already taken/
  })
  await app.close()
})

t.test('an h2c URL is spelt as an origin: lower case, its default port left out', async (t) => {
  const app = Fastify()
  await app.register(goload, { backends: ['H2C://GRPC.Example:80', 'h2c://[::1]:50051/'] })
  await app.ready()
  t.same(app.goload.stats().backends.map((backend) => [backend.id, backend.url]), [
    ['h2c://grpc.example', 'h2c://grpc.example'],
    ['h2c://[::1]:50051', 'h2c://[::1]:50051']
  ])
  t.throws(() => { app.goload.add('http://grpc.example') }, { code: 'FST_GOLOAD_INVALID_OPTION', message: /backend "http:\/\/grpc.example" is http:\/\/grpc.example and backend "h2c:\/\/grpc.example" h2c:\/\/grpc.example: one address speaks one protocol/ })
  await app.close()
})

t.test('valid options register, with defaults filled in', async (t) => {
  const app = Fastify()
  await app.register(goload, { backends: ['https://a.example', { url: 'http://b:8080/', id: 'b', weight: 2 }] })
  await app.ready()
  t.same(app.goload.stats(), {
    strategy: 'least-busy',
    queued: 0,
    backends: [
      { id: 'https://a.example', url: 'https://a.example', weight: 1, pending: 0, served: 0, failed: 0, retried: 0, upgraded: 0, healthy: true, ejectedUntil: null, draining: false },
      { id: 'b', url: 'http://b:8080', weight: 2, pending: 0, served: 0, failed: 0, retried: 0, upgraded: 0, healthy: true, ejectedUntil: null, draining: false }
    ]
  })
  await app.close()
})
