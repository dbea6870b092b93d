import { resolve } from 'node:path'
import { readPem as readPemFile } from '../tls/certificates.js'
import type { Problem } from './errors.js'
import type { GoloadFileConfig } from './schema.js'

// A file holds backend TLS as file paths, so that a private key need not be pasted into it; the plugin takes PEM
// text. The files are read here, at each load (start, reload, --check): a certificate rotated on disk is taken by the
// next SIGHUP. PEM text written in place is still taken as it is.

type TlsBlock = { ca?: string | string[], cert?: string, key?: string }

const labels = { ca: 'CERTIFICATE', cert: 'CERTIFICATE', key: 'PRIVATE KEY' } as const

/**
 * Replaces each path in the pools' and backends' `tls.ca`, `cert` and `key` with the PEM text of its file (relative
 * paths are the config file's neighbours); a file that cannot be read, or holds no PEM of its kind, is a problem.
 */
export function readBackendTlsFiles (config: GoloadFileConfig, folder: string, sound: (path: Array<string | number>) => boolean): Problem[] {
  const problems: Problem[] = []
  for (const [name, pool] of Object.entries(config.pools)) {
    // A pool the schema found fault with may hold anything where a path should be.
    if (!sound(['pools', name])) continue
    readBlock(pool.tls, ['pools', name, 'tls'], folder, problems)
    pool.backends?.forEach((backend, index) => {
      if (typeof backend === 'object') readBlock(backend.tls, ['pools', name, 'backends', index, 'tls'], folder, problems)
    })
  }
  return problems
}

function readBlock (tls: TlsBlock | undefined, at: Array<string | number>, folder: string, problems: Problem[]): void {
  if (tls === undefined) return
  if (Array.isArray(tls.ca)) {
    const list = tls.ca
    list.forEach((entry, index) => { list[index] = readPem(entry, 'ca', [...at, 'ca', index], folder, problems) })
  } else if (tls.ca !== undefined) {
    tls.ca = readPem(tls.ca, 'ca', [...at, 'ca'], folder, problems)
  }
  if (tls.cert !== undefined) tls.cert = readPem(tls.cert, 'cert', [...at, 'cert'], folder, problems)
  if (tls.key !== undefined) tls.key = readPem(tls.key, 'key', [...at, 'key'], folder, problems)
}

function readPem (value: string, field: keyof typeof labels, at: Array<string | number>, folder: string, problems: Problem[]): string {
  if (value.trimStart().startsWith('-----BEGIN')) return value
  return readPemFile(resolve(folder, value), labels[field], at, problems) ?? value
}
