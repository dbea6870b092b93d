/** A certificate a TLS listener serves, as the status page and the expiry metric show it. */
export interface ServedCertificate {
  /** Who it is for: its first DNS name (else its subject). */
  name: string
  /** Where it comes from: its file, `acme <directory>`, or `acme placeholder` until the CA has issued one. */
  source: string
  /** The listener's port. */
  port: number
  /** notAfter, in seconds since the epoch. */
  expires: number
}

/** Where the admin and metrics find the certificates served now, asked at each use: ACME and reloads swap them. */
export type CertificateSource = () => ServedCertificate[]
