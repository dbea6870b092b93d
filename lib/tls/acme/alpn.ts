import type { SecureContext, TLSSocket, TlsOptions } from 'node:tls'
import type { ChallengeBoard } from './challenges.js'

export const acmeTlsProtocol = 'acme-tls/1'

/** Connections whose client asked for acme-tls/1: the CA validating, to be shown the challenge certificate. */
const validating = new WeakSet<TLSSocket>()

/**
 * TLS-ALPN-01 (RFC 8737) on a TLS listener. Node calls ALPNCallback before SNICallback, each with the socket as
 * `this`: the first marks a connection that asks for acme-tls/1, the second then hands it the challenge
 * certificate for the name in SNI instead of the listener's own. Any other client's protocol is the listener's
 * own choice (`choose`: h2 or HTTP/1.1, see createListenerServer).
 */
export function tlsAlpnOptions (challenges: ChallengeBoard, choose: (offered: string[]) => string | undefined, select: (servername: string) => SecureContext): Pick<TlsOptions, 'ALPNCallback' | 'SNICallback'> {
  return {
    ALPNCallback (this: TLSSocket, { protocols: offered }) {
      if (offered.includes(acmeTlsProtocol)) {
        validating.add(this)
        return acmeTlsProtocol
      }
      return choose(offered)
    },
    SNICallback (this: TLSSocket, servername, done) {
      if (!validating.has(this)) {
        done(null, select(servername))
        return
      }
      challenges.alpnContext(servername).then((context) => {
        done(context === undefined ? new Error(`no TLS-ALPN-01 challenge under way for ${servername}`) : null, context)
      }, (error: Error) => { done(error) })
    }
  }
}

/** A validation connection carries no HTTP: it ends once the CA has seen the certificate. */
export function endValidation (socket: TLSSocket): void {
  if (socket.alpnProtocol === acmeTlsProtocol) socket.end()
}
