import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { resolve } from 'node:path'
import type { Problem } from './errors.js'
import type { GoloadFileConfig } from './schema.js'

// What the schema cannot say about a listener's `tls.acme`. Nothing here contacts the CA: --check runs offline.

/** Its domains, and that its challenge can be answered by the listeners this config has. */
export function acmeProblems (config: GoloadFileConfig, index: number): Problem[] {
  const acme = config.listeners[index].tls!.acme!
  const at = ['listeners', index, 'tls', 'acme']
  const problems: Problem[] = []
  acme.domains.forEach((domain, domainIndex) => {
    if (domain.includes('*')) problems.push({ path: [...at, 'domains', domainIndex], message: `${domain}: a wildcard needs the dns-01 challenge, which goload does not answer: list each name` })
    else if (isIP(domain) !== 0) problems.push({ path: [...at, 'domains', domainIndex], message: `${domain}: an IP address, not a DNS name` })
    else if (!domain.includes('.')) problems.push({ path: [...at, 'domains', domainIndex], message: `${domain}: not a public DNS name (no dot): no CA issues for it` })
  })
  const duplicate = acme.domains.find((domain, i) => acme.domains.findIndex((other) => other.toLowerCase() === domain.toLowerCase()) !== i)
  if (duplicate !== undefined) problems.push({ path: [...at, 'domains'], message: `${duplicate} is listed twice` })
  if ((acme.challenge ?? 'http-01') === 'http-01' && !config.listeners.some((listener) => listener.tls === undefined)) {
    problems.push({ path: [...at, 'challenge'], message: 'http-01 is answered on the plain listeners, and this config has none: add one on port 80 (redirectHttps: true does), or use tls-alpn-01' })
  }
  if (/^rediss?:\/\//.test(acme.storage)) {
    try {
      // eslint-disable-next-line no-new -- parsed only to refuse a URL ioredis could not use
      new URL(acme.storage)
    } catch {
      problems.push({ path: [...at, 'storage'], message: `${acme.storage} is not a valid redis:// URL` })
    }
  }
  return problems
}

/** Paths made absolute (the config file's neighbours), and directoryCa read: a PEM certificate. */
export function checkAcme (acme: NonNullable<NonNullable<GoloadFileConfig['listeners'][number]['tls']>['acme']>, folder: string, at: Array<string | number>): Problem[] {
  if (!/^rediss?:\/\//.test(acme.storage)) acme.storage = resolve(folder, acme.storage)
  if (acme.directoryCa === undefined) return []
  acme.directoryCa = resolve(folder, acme.directoryCa)
  let text: string
  try {
    text = readFileSync(acme.directoryCa, 'utf8')
  } catch (error) {
    return [{ path: [...at, 'directoryCa'], message: `cannot read ${acme.directoryCa}: ${(error as Error).message}` }]
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) return [{ path: [...at, 'directoryCa'], message: `${acme.directoryCa} is not PEM: expected -----BEGIN CERTIFICATE-----` }]
  return []
}
