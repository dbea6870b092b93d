import type { IncomingMessage, ServerResponse } from 'node:http'
import { createSecureContext, type SecureContext } from 'node:tls'
import type { AcmeStorage } from './storage.js'

export const httpChallengePath = '/.well-known/acme-challenge/'

/** Long enough for any validation; what an order left behind (a crash mid-order) goes by itself. */
export const challengeTtl = 3_600_000

/**
 * The challenges under way, for the listeners to answer: this instance's own, and (through the storage) those of
 * another instance sharing it, since the CA may reach any instance behind the same name.
 */
export class ChallengeBoard {
  readonly #http = new Map<string, string>()
  readonly #alpn = new Map<string, SecureContext>()
  readonly storages = new Set<AcmeStorage>()

  async addHttp (storage: AcmeStorage, token: string, keyAuthorization: string): Promise<void> {
    this.#http.set(token, keyAuthorization)
    await storage.write(`challenges/http/${token}`, keyAuthorization, challengeTtl)
  }

  async removeHttp (storage: AcmeStorage, token: string): Promise<void> {
    this.#http.delete(token)
    await storage.remove(`challenges/http/${token}`)
  }

  async addAlpn (storage: AcmeStorage, domain: string, pair: { cert: string, key: string }): Promise<void> {
    this.#alpn.set(domain.toLowerCase(), createSecureContext(pair))
    await storage.write(`challenges/alpn/${domain.toLowerCase()}`, JSON.stringify(pair), challengeTtl)
  }

  async removeAlpn (storage: AcmeStorage, domain: string): Promise<void> {
    this.#alpn.delete(domain.toLowerCase())
    await storage.remove(`challenges/alpn/${domain.toLowerCase()}`)
  }

  /**
   * On a plain listener, before routing and redirectHttps: answers GET /.well-known/acme-challenge/<token> with its
   * key authorization (404 for a token nobody ordered) and says so; any other request is left to the app. Without
   * ACME configured (no storage), nothing is taken.
   */
  answerHttp (request: IncomingMessage, response: ServerResponse): boolean {
    if (this.storages.size === 0 || (request.method !== 'GET' && request.method !== 'HEAD') || request.url?.startsWith(httpChallengePath) !== true) return false
    const token = request.url.slice(httpChallengePath.length)
    this.#lookup(this.#http.get(token), `challenges/http/${token}`, /^[A-Za-z0-9_-]+$/.test(token)).then((found) => {
      response.writeHead(found === undefined ? 404 : 200, { 'content-type': 'text/plain' })
      response.end(found ?? 'no such ACME challenge\n')
    }, () => {
      response.writeHead(503, { 'content-type': 'text/plain' })
      response.end('ACME storage unavailable\n')
    })
    return true
  }

  /** The TLS-ALPN-01 certificate for `domain` (RFC 8737), if an order under way asked for one. */
  async alpnContext (domain: string): Promise<SecureContext | undefined> {
    const name = domain.toLowerCase()
    const local = this.#alpn.get(name)
    if (local !== undefined) return local
    const stored = await this.#lookup(undefined, `challenges/alpn/${name}`, /^[a-z0-9.-]+$/.test(name))
    return stored === undefined ? undefined : createSecureContext(JSON.parse(stored) as { cert: string, key: string })
  }

  async #lookup (local: string | undefined, name: string, wellFormed: boolean): Promise<string | undefined> {
    if (local !== undefined || !wellFormed) return local
    for (const storage of this.storages) {
      const found = await storage.read(name)
      if (found !== undefined) return found
    }
    return undefined
  }
}
