import { execFileSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import type http from 'node:http'
import https from 'node:https'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { deadline } from './raw.js'
import { closeServer, type Handler } from './servers.js'

/** A certificate and its private key, PEM. */
export interface KeyPair {
  cert: string
  key: string
}

/**
 * Certificates made for the test run by the openssl command line, in a directory removed right after: no private
 * key is ever committed. EC P-256 keys, valid for a day.
 */
export class TestPki {
  readonly #dir = mkdtempSync(join(tmpdir(), 'goload-tls-'))
  #count = 0

  /** A self-signed CA that can sign the certificates below. */
  ca (name: string): KeyPair {
    const base = this.#file()
    openssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
      '-subj', `/CN=${name}`, '-keyout', `${base}.key`, '-out', `${base}.crt`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    return this.#read(base)
  }

  /** A server certificate for these DNS names and IP addresses, signed by `ca`. */
  server (ca: KeyPair, names: { dns?: string[], ip?: string[] }): KeyPair {
    const san = [...(names.dns ?? []).map((name) => `DNS:${name}`), ...(names.ip ?? []).map((ip) => `IP:${ip}`)].join(',')
    return this.#issue(ca, names.dns?.[0] ?? names.ip?.[0] ?? 'server', [`subjectAltName=${san}`, 'extendedKeyUsage=serverAuth'])
  }

  /** A client certificate for mutual TLS, signed by `ca`. */
  client (ca: KeyPair, name: string): KeyPair {
    return this.#issue(ca, name, ['extendedKeyUsage=clientAuth'])
  }

  /**
   * A server certificate for `name` that expired in 2020, signed by `ca`: `openssl x509` only counts days from now,
   * `openssl ca` takes dates, and wants its database files.
   */
  expired (ca: KeyPair, name: string): KeyPair {
    const base = this.#file()
    writeFileSync(`${base}.ca.crt`, ca.cert)
    writeFileSync(`${base}.ca.key`, ca.key)
    writeFileSync(`${base}.index`, '')
    writeFileSync(`${base}.serial`, `${randomBytes(8).toString('hex')}\n`)
    writeFileSync(`${base}.cnf`, `[ca]\ndefault_ca = test\n[test]\ndatabase = ${base}.index\nserial = ${base}.serial\nnew_certs_dir = ${this.#dir}\ndefault_md = sha256\npolicy = any\ncopy_extensions = copy\n[any]\ncommonName = supplied\n`)
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-subj', `/CN=${name}`, '-addext', `subjectAltName=DNS:${name}`, '-keyout', `${base}.key`, '-out', `${base}.csr`)
    openssl('ca', '-batch', '-notext', '-config', `${base}.cnf`, '-cert', `${base}.ca.crt`, '-keyfile', `${base}.ca.key`,
      '-startdate', '20200101000000Z', '-enddate', '20200102000000Z', '-in', `${base}.csr`, '-out', `${base}.crt`)
    return this.#read(base)
  }

  /** Removes the directory with the keys. */
  close (): void {
    rmSync(this.#dir, { recursive: true, force: true })
  }

  #issue (ca: KeyPair, commonName: string, extensions: string[]): KeyPair {
    const base = this.#file()
    writeFileSync(`${base}.ca.crt`, ca.cert)
    writeFileSync(`${base}.ca.key`, ca.key)
    writeFileSync(`${base}.ext`, extensions.join('\n') + '\n')
    openssl('req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
      '-subj', `/CN=${commonName}`, '-keyout', `${base}.key`, '-out', `${base}.csr`)
    openssl('x509', '-req', '-in', `${base}.csr`, '-CA', `${base}.ca.crt`, '-CAkey', `${base}.ca.key`,
      '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '1', '-extfile', `${base}.ext`, '-out', `${base}.crt`)
    return this.#read(base)
  }

  #file (): string {
    return join(this.#dir, String(this.#count++))
  }

  #read (base: string): KeyPair {
    return { cert: readFileSync(`${base}.crt`, 'utf8'), key: readFileSync(`${base}.key`, 'utf8') }
  }
}

function openssl (...args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (error) {
    const { code, stderr } = error as { code?: string, stderr?: Buffer }
    if (code === 'ENOENT') throw new Error('these tests make their certificates with the openssl command line: install openssl')
    throw new Error(`openssl ${args[0]} failed: ${stderr?.toString() ?? String(error)}`)
  }
}

export interface TlsBackend {
  url: string
  /** Requests it received, with the HTTP version each came in. */
  versions: string[]
}

/** A real https backend on 127.0.0.1 (HTTP/1.1, or HTTP/2 only with `h2`), closed when the test ends. */
export async function startTlsBackend (t: Test, options: https.ServerOptions & { h2?: boolean }, handler: Handler): Promise<TlsBackend> {
  const { h2, ...tls } = options
  const backend: TlsBackend = { url: '', versions: [] }
  const server = h2 === true
    ? http2.createSecureServer({ ...tls, allowHTTP1: false } as http2.SecureServerOptions)
    : https.createServer(tls)
  const sessions = new Set<http2.ServerHttp2Session>()
  server.on('session', (session: http2.ServerHttp2Session) => {
    sessions.add(session)
    session.once('close', () => sessions.delete(session))
  })
  server.on('request', (request: http.IncomingMessage, response: http.ServerResponse) => {
    backend.versions.push(request.httpVersion)
    handler(request, response)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  backend.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  t.teardown(async () => {
    if (server instanceof https.Server) return closeServer(server as unknown as http.Server)
    // An HTTP/2 server closes once its sessions have.
    for (const session of sessions) session.destroy()
    await deadline(new Promise((resolve) => server.close(resolve)), 5000, 'an HTTP/2 backend to close')
  })
  return backend
}
