import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { FastifyBaseLogger } from 'fastify'
import type { ListenerCertificate } from '../certificates.js'
import type { ChallengeBoard } from './challenges.js'
import { acme, acmeClient } from './client.js'
import { placeholderCertificate } from './placeholder.js'
import type { AcmeStorage } from './storage.js'

/** A listener's `tls.acme`, as the config gives it (paths made absolute by loadConfig). */
export interface AcmeConfig {
  directory: string
  email?: string
  domains: string[]
  challenge?: 'http-01' | 'tls-alpn-01'
  storage: string
  directoryCa?: string
}

/** What a listener serves for an ACME block now: the certificate issued, or a placeholder until there is one. */
export interface AcmeCertificate extends ListenerCertificate {
  placeholder: boolean
}

// Test-only knobs (the README says so): a renewal that comes this many ms after a certificate is taken into
// service, and a first retry this many ms after a failure, so that tests need not wait for 2/3 of a lifetime or a
// minute.
const renewAfterOverride = (): number | undefined => numberOf(process.env.GOLOAD_ACME_RENEW_AFTER_MS)
const firstRetry = (): number => numberOf(process.env.GOLOAD_ACME_RETRY_MS) ?? 60_000
const lastRetry = 6 * 3_600_000
/** setTimeout's limit: a renewal 60 days ahead is waited for in steps. */
const longestTimer = 2 ** 31 - 1

/**
 * One ACME block: the certificate for its domains, kept valid. At start it takes the stored certificate if there is
 * one for these domains, else a placeholder, and orders at once where there is nothing valid; then it renews at two
 * thirds of the lifetime. Ordering happens under the storage's lock, and the storage is read again once the lock is
 * held: another instance may have ordered meanwhile, and then its certificate is taken as is. A failure (the CA
 * down, a challenge refused, the storage away) is one warning, then another try after a doubling wait; what is
 * served meanwhile stays.
 */
export class CertificateManager {
  readonly config: AcmeConfig
  readonly #storage: AcmeStorage
  readonly #challenges: ChallengeBoard
  readonly #log: FastifyBaseLogger
  readonly #changed: () => void
  readonly #names: { account: string, cert: string, key: string, lock: string }
  #current!: AcmeCertificate
  /** When the current certificate is due for renewal (ms since the epoch). */
  #due = 0
  #timer: NodeJS.Timeout | undefined
  #failures = 0
  #closed = false

  constructor (config: AcmeConfig, storage: AcmeStorage, challenges: ChallengeBoard, log: FastifyBaseLogger, changed: () => void) {
    this.config = config
    this.#storage = storage
    this.#challenges = challenges
    this.#log = log
    this.#changed = changed
    const directory = new URL(config.directory)
    const namespace = `${directory.host}${directory.pathname}`.replace(/[^A-Za-z0-9.-]+/g, '_')
    const name = config.domains[0].toLowerCase()
    this.#names = { account: `${namespace}/account.key`, cert: `${namespace}/certificates/${name}.crt`, key: `${namespace}/certificates/${name}.key`, lock: `${namespace}/certificates/${name}` }
  }

  /** The certificate to serve now. */
  get current (): AcmeCertificate {
    return this.#current
  }

  /** Ready to serve once this resolves: the stored certificate, or a placeholder. Nothing is ordered before begin(). */
  async load (): Promise<void> {
    const stored = await this.#readStored().catch((error: Error) => {
      this.#log.warn(`goload: ACME ${this.#what()}: cannot read the storage ${this.#storage.location}: ${error.message}`)
      return undefined
    })
    if (stored !== undefined) {
      this.#take(stored)
    } else {
      this.#current = { ...await this.#placeholder(), placeholder: true }
      this.#due = 0
    }
  }

  /** Orders now if there is nothing valid, else when the certificate is due; in the background from here on. */
  begin (): void {
    this.#schedule(this.#due - Date.now())
  }

  close (): void {
    this.#closed = true
    clearTimeout(this.#timer)
  }

  #what (): string {
    return this.config.domains.join(', ')
  }

  async #placeholder (): Promise<ListenerCertificate> {
    const { cert, key } = await placeholderCertificate(this.config.domains)
    return { cert, key, x509: new X509Certificate(cert) }
  }

  /** The stored certificate for these domains, if it covers them all and has not expired. */
  async #readStored (): Promise<ListenerCertificate | undefined> {
    const [cert, key] = await Promise.all([this.#storage.read(this.#names.cert), this.#storage.read(this.#names.key)])
    if (cert === undefined || key === undefined) return undefined
    let x509
    try {
      x509 = new X509Certificate(cert)
      if (!x509.checkPrivateKey(createPrivateKey(key))) return undefined
    } catch {
      return undefined
    }
    if (Date.parse(x509.validTo) <= Date.now()) return undefined
    if (!this.config.domains.every((domain) => x509.checkHost(domain) !== undefined)) return undefined
    return { cert, key, x509 }
  }

  #take (certificate: ListenerCertificate): void {
    this.#current = { ...certificate, placeholder: false }
    const from = Date.parse(certificate.x509.validFrom)
    const to = Date.parse(certificate.x509.validTo)
    this.#due = Math.min(to, Date.now() + (renewAfterOverride() ?? Infinity), from + (to - from) * 2 / 3)
  }

  #schedule (delay: number): void {
    if (this.#closed) return
    clearTimeout(this.#timer)
    const wait = Math.max(0, delay)
    this.#timer = setTimeout(() => {
      if (wait > longestTimer) this.#schedule(this.#due - Date.now())
      else this.#renew().catch(() => {})
    }, Math.min(wait, longestTimer)).unref()
  }

  async #renew (): Promise<void> {
    try {
      const issued = await this.#storage.locked(this.#names.lock, async () => {
        // Another instance sharing the storage may have renewed it while this one waited for the lock.
        const stored = await this.#readStored()
        if (stored !== undefined && stored.x509.fingerprint256 !== this.#current.x509.fingerprint256) {
          return { certificate: stored, from: `taken from ${this.#storage.location}` }
        }
        if (this.#closed) return undefined
        return { certificate: await this.#order(), from: `issued by ${this.config.directory}` }
      })
      if (this.#closed || issued === undefined) return
      this.#failures = 0
      this.#take(issued.certificate)
      this.#changed()
      this.#log.info(`goload: ACME ${this.#what()}: certificate ${issued.from}, valid until ${issued.certificate.x509.validTo}, now served`)
      this.#schedule(this.#due - Date.now())
    } catch (error) {
      if (this.#closed) return
      const wait = Math.min(lastRetry, firstRetry() * 2 ** this.#failures++)
      this.#log.warn(`goload: ACME ${this.#what()}: order from ${this.config.directory} failed (attempt ${this.#failures}), serving the ${this.#current.placeholder ? 'placeholder' : 'current'} certificate, next try in ${Math.round(wait / 1000)} s: ${(error as Error).message}`)
      this.#schedule(wait)
    }
  }

  async #order (): Promise<ListenerCertificate> {
    const { config } = this
    const client = acmeClient(config.directory, await this.#accountKey(), config.directoryCa === undefined ? undefined : readFileSync(config.directoryCa, 'utf8'))
    const key = (await acme.crypto.createPrivateEcdsaKey()).toString()
    const [, csr] = await acme.crypto.createCsr({ commonName: config.domains[0], altNames: config.domains }, key)
    this.#log.info(`goload: ACME ${this.#what()}: ordering a certificate from ${config.directory} (${config.challenge ?? 'http-01'})`)
    const storage = this.#storage
    const cert = await client.auto({
      csr,
      email: config.email,
      termsOfServiceAgreed: true,
      challengePriority: [config.challenge ?? 'http-01'],
      // acme-client would fetch the challenge itself first, through public DNS: the CA's own check is the one that counts.
      skipChallengeVerification: true,
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        if (challenge.type === 'http-01') await this.#challenges.addHttp(storage, challenge.token, keyAuthorization)
        else {
          const [alpnKey, alpnCert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, await acme.crypto.createPrivateEcdsaKey())
          await this.#challenges.addAlpn(storage, authz.identifier.value, { cert: alpnCert.toString(), key: alpnKey.toString() })
        }
      },
      challengeRemoveFn: async (authz, challenge) => {
        if (challenge.type === 'http-01') await this.#challenges.removeHttp(storage, challenge.token)
        else await this.#challenges.removeAlpn(storage, authz.identifier.value)
      }
    })
    const x509 = new X509Certificate(cert)
    await storage.write(this.#names.key, key)
    await storage.write(this.#names.cert, cert)
    return { cert, key, x509 }
  }

  /** The account's key: stored, or made and stored, once for every instance sharing the storage. */
  async #accountKey (): Promise<string> {
    const stored = await this.#storage.read(this.#names.account)
    if (stored !== undefined) return stored
    return await this.#storage.locked(this.#names.account, async () => {
      const again = await this.#storage.read(this.#names.account)
      if (again !== undefined) return again
      const key = (await acme.crypto.createPrivateEcdsaKey()).toString()
      await this.#storage.write(this.#names.account, key)
      return key
    })
  }
}

function numberOf (value: string | undefined): number | undefined {
  return value === undefined || value === '' || !Number.isFinite(Number(value)) ? undefined : Number(value)
}
