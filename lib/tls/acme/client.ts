import https from 'node:https'
import { createRequire } from 'node:module'
import acme from 'acme-client'

// acme-client sends everything through one axios instance of its own. Two things are set on it for the requests to
// the directories goload orders from, and for no others: the CA a private directory (Pebble, step-ca) is trusted
// by, and no retries of its own (5, 5 to 25 s apart, then a TypeError in place of the network error): goload retries
// a whole order with its own backoff, and logs the real reason.
const agents = new Map<string, https.Agent | undefined>()
const requireFromAcme = createRequire(createRequire(import.meta.url).resolve('acme-client'))
const { getAdapter } = requireFromAcme('axios') as { getAdapter: (name: string) => (config: unknown) => Promise<unknown> }
let intercepting = false
const requestTimeout = 30_000

function intercept (): void {
  if (intercepting) return
  intercepting = true
  const http = getAdapter('http')
  acme.axios.interceptors.request.use((config) => {
    const origin = config.url === undefined ? undefined : new URL(config.url).origin
    if (origin === undefined || !agents.has(origin)) return config
    const agent = agents.get(origin)
    if (agent !== undefined) config.httpsAgent = agent
    // axios waits forever by default: a CA that accepts and never answers would hold the order, and its lock, for good.
    if (config.timeout === undefined || config.timeout === 0) config.timeout = requestTimeout
    const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number } }).acmeSettings
    if (!('retryAttempt' in config)) Object.assign(config, { retryAttempt: settings?.retryMaxAttempts ?? 0 })
    // A response with an error status is acme-client's to read. A network error is thrown again without `config`,
    // which acme-client's retry interceptor passes untouched, message and all.
    config.adapter = async (request) => await http(request).catch((error: Error & { code?: string, response?: unknown }) => {
      if (error.response !== undefined) throw error
      throw new Error(`${request.method?.toUpperCase() ?? 'GET'} ${request.url}: ${error.code ?? ''} ${error.message}`.replace('  ', ' '))
    }) as never
    return config
  })
}

/** An acme-client for `directory`, trusting `ca` (PEM) for its TLS where given, with `accountKey`. */
export function acmeClient (directory: string, accountKey: string, ca: string | undefined): acme.Client {
  intercept()
  agents.set(new URL(directory).origin, ca === undefined ? undefined : new https.Agent({ ca, keepAlive: true }))
  // Polls an authorization or an order every second, then up to every 10 s: a CA validates in seconds.
  return new acme.Client({ directoryUrl: directory, accountKey, backoffMin: 250, backoffMax: 10_000, backoffAttempts: 12 })
}

export { acme }
