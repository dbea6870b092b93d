import { X509Certificate, createPrivateKey } from 'node:crypto'
import { readFileSync } from 'node:fs'

/** One `listeners[].tls.certificates[]` entry as the file gives it: paths to PEM files. */
export interface CertificateFiles {
  cert: string
  key: string
}

/** A certificate read and checked against its key: what a listener serves. */
export interface ListenerCertificate {
  cert: string
  key: string
  x509: X509Certificate
}

/** A problem with one file, at its key path in the config (`['listeners', 0, 'tls', 'certificates', 1, 'cert']`). */
export interface CertificateProblem {
  path: Array<string | number>
  message: string
}

export interface ReadCertificates {
  certificates: ListenerCertificate[]
  /** Files that cannot be served: unreadable, not PEM, a certificate that is not its key's. */
  problems: CertificateProblem[]
  /** Files served anyway: an expired certificate is served (clients decide), and said at start and by --check. */
  warnings: CertificateProblem[]
}

/**
 * What the certificates of one loaded config were read as: loadConfig checks them, and the listeners then serve them,
 * from one read. Each load (a reload) makes its config anew, so it reads the files again.
 */
const readBefore = new WeakMap<CertificateFiles[], ReadCertificates>()

/**
 * Reads each certificate and key, as given in the config at `path`, once for one list. Read synchronously: a few KiB each, at start
 * and on a reload only. Certificates and keys are parsed by node:crypto, never by hand.
 */
export function readCertificates (files: CertificateFiles[], path: Array<string | number>): ReadCertificates {
  const known = readBefore.get(files)
  if (known !== undefined) return known
  const result: ReadCertificates = { certificates: [], problems: [], warnings: [] }
  readBefore.set(files, result)
  files.forEach((entry, index) => {
    const at = (field: keyof CertificateFiles): Array<string | number> => [...path, index, field]
    const cert = readPem(entry.cert, 'CERTIFICATE', at('cert'), result.problems)
    const key = readPem(entry.key, 'PRIVATE KEY', at('key'), result.problems)
    if (cert === undefined || key === undefined) return
    let x509: X509Certificate
    try {
      x509 = new X509Certificate(cert)
    } catch (error) {
      result.problems.push({ path: at('cert'), message: `${entry.cert} is not a valid PEM certificate: ${(error as Error).message}` })
      return
    }
    let privateKey
    try {
      privateKey = createPrivateKey(key)
    } catch (error) {
      result.problems.push({ path: at('key'), message: `${entry.key} is not a valid PEM private key (unencrypted): ${(error as Error).message}` })
      return
    }
    if (!x509.checkPrivateKey(privateKey)) {
      result.problems.push({ path: at('cert'), message: `${entry.cert} does not match its key ${keyPathOf(at('key'))} (${entry.key})` })
      return
    }
    const validTo = new Date(x509.validTo)
    if (validTo.getTime() < Date.now()) result.warnings.push({ path: at('cert'), message: `${entry.cert} expired on ${validTo.toISOString()}: clients will refuse it` })
    result.certificates.push({ cert, key, x509 })
  })
  return result
}

/** A PEM file's text, or undefined with a problem: unreadable, or without a PEM block of `label` (CERTIFICATE, PRIVATE KEY). */
export function readPem (file: string, label: string, path: Array<string | number>, problems: CertificateProblem[]): string | undefined {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (error) {
    problems.push({ path, message: `cannot read ${file}: ${(error as Error).message}` })
    return undefined
  }
  // Node would take DER as well, or a key in a certificate file: the config promises PEM of the right kind.
  if (!new RegExp(`-----BEGIN [A-Z ]*${label}-----`).test(text)) {
    problems.push({ path, message: `${file} is not PEM: expected -----BEGIN ${label === 'CERTIFICATE' ? 'CERTIFICATE' : '... PRIVATE KEY'}-----` })
    return undefined
  }
  return text
}

function keyPathOf (path: Array<string | number>): string {
  return path.map((key, i) => typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${key}`).join('')
}
