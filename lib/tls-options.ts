import { X509Certificate } from 'node:crypto'
import { createSecureContext } from 'node:tls'
import { InvalidOptionError } from './errors.js'
import { checkTls } from './options-check.js'
import type { BackendConfig, BackendOptions, PoolConfig } from './options.js'

/** PEM text, as a string or as the Buffer `fs.readFileSync` returns. */
export type Pem = string | Buffer

/**
 * How the balancer connects to `https://` backends: node's `tls.connect` options of the same names. Set on the pool,
 * it applies to each of its backends; set on a backend, each field given replaces the pool's.
 */
export interface TlsOptions {
  /** CA certificates to trust instead of Node's public ones: a private CA, or a self-signed backend's own certificate. */
  ca?: Pem | Pem[]
  /** Client certificate for mutual TLS, given with `key`. */
  cert?: Pem
  /** Private key of `cert`, unencrypted. */
  key?: Pem
  /** Name sent in SNI and checked against the backend's certificate, instead of the URL's hostname. */
  servername?: string
  /** Check the backend's certificate. Default true; `false` accepts any certificate, so anyone on the path can answer. */
  rejectUnauthorized?: boolean
}

const tlsKeys = ['ca', 'cert', 'key', 'servername', 'rejectUnauthorized'] as const

/** Reads the options of one level (the pool's, or a backend's over them) into the fields they set. */
export function normalizeTls (key: string, options: TlsOptions | undefined, inherited?: TlsOptions): TlsOptions | undefined {
  if (options === undefined) return inherited
  checkTls(options, key)
  // The schema has checked the fields and their types; left is what it cannot say: PEM text, usable, in pairs.
  const { ca, cert, key: privateKey } = options
  if (ca !== undefined) {
    const list = Array.isArray(ca) ? ca : [ca]
    if (list.length === 0 || !list.every(isPem)) {
      throw new InvalidOptionError(`${key}.ca must be PEM text (a string or Buffer with -----BEGIN CERTIFICATE-----) or an array of them, got ${describe(ca)}`)
    }
  }
  if (cert !== undefined && !isPem(cert)) {
    throw new InvalidOptionError(`${key}.cert must be PEM text (a string or Buffer with -----BEGIN CERTIFICATE-----), got ${describe(cert)}`)
  }
  if (privateKey !== undefined && !isPem(privateKey)) {
    throw new InvalidOptionError(`${key}.key must be PEM text (a string or Buffer with -----BEGIN ... PRIVATE KEY-----), got ${describe(privateKey)}`)
  }

  const merged: TlsOptions = { ...inherited }
  for (const field of tlsKeys) {
    if (options[field] !== undefined) (merged as Record<string, unknown>)[field] = options[field]
  }
  if ((merged.cert === undefined) !== (merged.key === undefined)) {
    throw new InvalidOptionError(`${key}: cert and key go together for mutual TLS, give both or neither`)
  }
  // Unreadable PEM or a key that does not match its certificate: better said now than as a 502 on every request.
  // Node skips a CA it cannot read without a word, so each one is read here.
  for (const pem of ca === undefined ? [] : Array.isArray(ca) ? ca : [ca]) {
    const blocks = String(pem).match(/-----BEGIN CERTIFICATE-----[^-]*-----END CERTIFICATE-----/g)
    if (blocks === null) throw new InvalidOptionError(`${key}.ca holds no certificate (-----BEGIN CERTIFICATE----- ... -----END CERTIFICATE-----)`)
    for (const block of blocks) usable(`${key}.ca`, () => new X509Certificate(block))
  }
  usable(key, () => createSecureContext({ cert: merged.cert, key: merged.key }))
  return merged
}

/** A backend's settings: the pool's, with the backend's own fields over them. */
export function backendTls (key: string, url: URL, spec: BackendOptions, inherited: TlsOptions | undefined): TlsOptions | undefined {
  if (spec.tls !== undefined && url.protocol !== 'https:') {
    throw new InvalidOptionError(`${key}.tls is for https:// backends, and this one is ${url.protocol}//`)
  }
  if (spec.tls !== undefined && spec.resolve !== undefined) {
    throw new InvalidOptionError(`${key}.tls cannot be combined with resolve: the addresses found connect with the pool's tls option`)
  }
  return normalizeTls(`${key}.tls`, spec.tls, inherited)
}

/**
 * Records the TLS settings of an https backend's origin; false when the origin is already recorded with other ones
 * (undici has one connection pool per origin, so two backends at one URL cannot connect two ways).
 */
export function claimOrigin (origins: PoolConfig['backendTls'], backend: BackendConfig): boolean {
  // DNS-discovered addresses are not known yet: their connections take the pool's tls.
  if (!backend.url.startsWith('https:') || backend.resolve !== undefined) return true
  if (origins.has(backend.url) && !sameTls(origins.get(backend.url), backend.tls)) return false
  origins.set(backend.url, backend.tls)
  return true
}

/** Whether two backends' settings would connect the same way: one undici pool serves each origin. */
export function sameTls (a: TlsOptions | undefined, b: TlsOptions | undefined): boolean {
  if (a === b) return true
  if (a === undefined || b === undefined) return false
  return tlsKeys.every((field) => samePem(a[field], b[field]))
}

function samePem (a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((item, i) => samePem(item, b[i]))
  if ((typeof a === 'string' || Buffer.isBuffer(a)) && (typeof b === 'string' || Buffer.isBuffer(b))) return Buffer.from(a).equals(Buffer.from(b))
  return a === b
}

function usable (key: string, read: () => unknown): void {
  try {
    read()
  } catch (error) {
    throw new InvalidOptionError(`${key} cannot be used: ${(error as Error).message}`)
  }
}

function isPem (value: unknown): boolean {
  return (typeof value === 'string' || Buffer.isBuffer(value)) && value.includes('-----BEGIN ')
}

// Never the PEM itself: a key must not end up in an error message, and so in a log.
function describe (value: unknown): string {
  if (typeof value === 'string') return value.length > 40 ? 'a string without a PEM header' : JSON.stringify(value)
  if (Buffer.isBuffer(value)) return 'a Buffer without a PEM header'
  if (Array.isArray(value)) return value.length === 0 ? 'an empty array' : 'an array with an item that is not PEM text'
  return JSON.stringify(value) ?? typeof value
}
