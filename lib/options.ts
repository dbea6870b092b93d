import { InvalidOptionError } from './errors.js'

export type Strategy = 'least-busy' | 'round-robin'

export interface BackendOptions {
  /** `http(s)://host:port`, an origin without a path. */
  url: string
  /** Name shown in stats and logs; defaults to the URL's origin. */
  id?: string
  /** Relative capacity: least-busy orders backends by pending / weight. Default 1. */
  weight?: number
}

export interface GoloadOptions {
  backends: Array<string | BackendOptions>
  /** Names this pool for `fastify.goload.pool(name)`. Defaults to the prefix, or `'default'`. */
  name?: string
  /** Proxy only requests under this path; other paths stay the app's. Default: every path. */
  prefix?: string
  strategy?: Strategy
  /** Upstream response timeout in ms: no response headers, or no body data, for this long answers 504. */
  timeout?: number
  /** Most connections kept open to each backend. */
  connections?: number
  /** HTTP/1.1 requests pipelined on each connection. */
  pipelining?: number
}

export interface BackendConfig {
  id: string
  /** The backend's origin, `http(s)://host:port`. */
  url: string
  weight: number
}

export interface PoolConfig {
  name: string
  prefix: string
  strategy: Strategy
  timeout: number
  connections: number
  pipelining: number
  backends: BackendConfig[]
}

export const defaults = {
  strategy: 'least-busy',
  // nginx's proxy_read_timeout.
  timeout: 60_000,
  // @fastify/reply-from's own defaults for its undici pool.
  connections: 128,
  pipelining: 1
} as const

const strategies: readonly Strategy[] = ['least-busy', 'round-robin']

// Besides ours, the options Fastify itself reads from any register() call.
const knownKeys = new Set([
  'backends', 'name', 'prefix', 'strategy', 'timeout', 'connections', 'pipelining',
  'logLevel', 'logSerializers'
])

export function normalizeOptions (options: GoloadOptions): PoolConfig {
  if (options === null || typeof options !== 'object') {
    throw new InvalidOptionError('options must be an object with a backends array')
  }
  for (const key of Object.keys(options)) {
    if (!knownKeys.has(key)) throw new InvalidOptionError(`unknown option "${key}"`)
  }

  const { backends } = options
  if (!Array.isArray(backends) || backends.length === 0) {
    throw new InvalidOptionError('backends must be a non-empty array of http(s) URLs or { url, id?, weight? } objects')
  }
  const configs = backends.map(normalizeBackend)
  const seen = new Map<string, number>()
  configs.forEach((backend, index) => {
    const first = seen.get(backend.id)
    if (first !== undefined) {
      throw new InvalidOptionError(`backends[${index}] has the same id as backends[${first}]: "${backend.id}" (give each a distinct id)`)
    }
    seen.set(backend.id, index)
  })

  const prefix = normalizePrefix(options.prefix)
  const name = options.name ?? (prefix === '' ? 'default' : prefix)
  if (typeof name !== 'string' || name === '') throw new InvalidOptionError('name must be a non-empty string')

  const strategy = options.strategy ?? defaults.strategy
  if (!strategies.includes(strategy)) {
    throw new InvalidOptionError(`strategy must be one of ${strategies.map((s) => `'${s}'`).join(', ')}, got ${JSON.stringify(strategy)}`)
  }

  return {
    name,
    prefix,
    strategy,
    timeout: positiveInteger('timeout', options.timeout, defaults.timeout),
    connections: positiveInteger('connections', options.connections, defaults.connections),
    pipelining: positiveInteger('pipelining', options.pipelining, defaults.pipelining),
    backends: configs
  }
}

function normalizeBackend (backend: string | BackendOptions, index: number): BackendConfig {
  const key = `backends[${index}]`
  const spec = typeof backend === 'string' ? { url: backend } : backend
  if (spec === null || typeof spec !== 'object') {
    throw new InvalidOptionError(`${key} must be an http(s) URL or a { url, id?, weight? } object`)
  }
  for (const field of Object.keys(spec)) {
    if (field !== 'url' && field !== 'id' && field !== 'weight') {
      throw new InvalidOptionError(`${key} has an unknown field "${field}"`)
    }
  }

  let parsed: URL
  try {
    parsed = new URL(spec.url)
  } catch {
    throw new InvalidOptionError(`${key} is not a valid http(s) URL: ${JSON.stringify(spec.url)}`)
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new InvalidOptionError(`${key} is not a valid http(s) URL: ${JSON.stringify(spec.url)}`)
  }
  // The request path is forwarded verbatim, so a path here would be silently ignored.
  if (parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '' || parsed.username !== '' || parsed.password !== '') {
    throw new InvalidOptionError(`${key} must be an origin like http://host:port, without path, query or credentials: ${JSON.stringify(spec.url)}`)
  }

  const id = spec.id ?? parsed.origin
  if (typeof id !== 'string' || id === '') throw new InvalidOptionError(`${key}.id must be a non-empty string`)

  const weight = spec.weight ?? 1
  if (typeof weight !== 'number' || !Number.isFinite(weight) || weight <= 0) {
    throw new InvalidOptionError(`${key}.weight must be a positive number, got ${JSON.stringify(weight)}`)
  }

  return { id, url: parsed.origin, weight }
}

function normalizePrefix (prefix: string | undefined): string {
  if (prefix === undefined) return ''
  if (typeof prefix !== 'string' || !prefix.startsWith('/')) {
    throw new InvalidOptionError(`prefix must be a path starting with "/", got ${JSON.stringify(prefix)}`)
  }
  if (/[*:?#]/.test(prefix)) {
    throw new InvalidOptionError(`prefix must be a plain path, without wildcards, parameters, query or fragment: ${JSON.stringify(prefix)}`)
  }
  // '/api/' and '/api' mean the same subtree; '/' means every path.
  return prefix.replace(/\/+$/, '')
}

function positiveInteger (key: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new InvalidOptionError(`${key} must be a positive integer, got ${JSON.stringify(value)}`)
  }
  return value
}
