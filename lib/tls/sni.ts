import { createSecureContext, type SecureContext, type SecureVersion } from 'node:tls'
import type { ListenerCertificate } from './certificates.js'

/** What a TLS listener is given at start and on each reload: its certificates, the first being the default. */
export interface CertificateSet {
  certificates: ListenerCertificate[]
  minVersion: SecureVersion
}

/**
 * Picks a listener's certificate by the name the client sent in SNI: the first whose names match it (SAN DNS
 * entries with `*.` wildcards of one label, the CN only when there is no SAN, as X509Certificate.checkHost says),
 * else the first one. One secure context per certificate, made once.
 */
export class CertificateSelector {
  readonly #entries: Array<{ certificate: ListenerCertificate, context: SecureContext }>
  /** The default certificate's options: what the server itself serves to clients sending no SNI. */
  readonly defaults: { cert: string, key: string, minVersion: SecureVersion }

  constructor ({ certificates, minVersion }: CertificateSet) {
    this.#entries = certificates.map((certificate) => ({ certificate, context: createSecureContext({ cert: certificate.cert, key: certificate.key, minVersion }) }))
    this.defaults = { cert: certificates[0].cert, key: certificates[0].key, minVersion }
  }

  select (servername: string): SecureContext {
    const found = this.#entries.find(({ certificate }) => certificate.x509.checkHost(servername) !== undefined)
    return (found ?? this.#entries[0]).context
  }
}
