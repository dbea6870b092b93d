import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import { programOnPath } from './ci.js'
import { freePort } from './cli.js'
import { deadline } from './raw.js'
import { TestPki } from './tls.js'

const pebbleProgram = programOnPath('pebble-challtestsrv', ['-h'], 'apt-get install pebble')

/** For tap's `skip`: why a test that needs Debian's pebble cannot run here, or false (see Program). */
export const withoutPebble = pebbleProgram.skip

export interface Pebble {
  /** The ACME directory URL (HTTPS, signed by `directoryCa`). */
  directory: string
  /** PEM file of the CA pebble's own HTTPS is signed by: goload's `directoryCa`. */
  directoryCa: string
  /** The root pebble issues from (a new one each run), from its management API. */
  root: () => Promise<string>
  /** Certificates pebble has issued so far, counted from its log. */
  issued: () => number
  /** Everything pebble has logged. */
  output: () => string
}

/**
 * Debian's pebble (the ACME test server of Let's Encrypt) on free loopback ports, validating HTTP-01 on `httpPort`
 * and TLS-ALPN-01 on `tlsPort` of 127.0.0.1: pebble-challtestsrv is its DNS server and answers 127.0.0.1 for every
 * name (and no IPv6). No validation sleeps, no nonces rejected. Both stop when the test ends.
 */
export async function startPebble (t: Test, { httpPort, tlsPort }: { httpPort: number, tlsPort: number }): Promise<Pebble> {
  pebbleProgram.require()
  const dir = await mkdtemp(join(tmpdir(), 'goload-pebble-'))
  const pki = new TestPki()
  const ca = pki.ca('pebble directory CA')
  const server = pki.server(ca, { dns: ['localhost'], ip: ['127.0.0.1'] })
  pki.close()
  const [acmePort, managementPort, dnsPort, dnsManagementPort] = [await freePort(), await freePort(), await freePort(), await freePort()]
  writeFileSync(join(dir, 'ca.pem'), ca.cert)
  writeFileSync(join(dir, 'cert.pem'), server.cert)
  writeFileSync(join(dir, 'key.pem'), server.key)
  writeFileSync(join(dir, 'pebble.json'), JSON.stringify({
    pebble: {
      listenAddress: `127.0.0.1:${acmePort}`,
      managementListenAddress: `127.0.0.1:${managementPort}`,
      certificate: join(dir, 'cert.pem'),
      privateKey: join(dir, 'key.pem'),
      httpPort,
      tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: false
    }
  }))
  const children: ChildProcess[] = []
  t.teardown(async () => {
    await Promise.all(children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = once(child, 'exit')
      child.kill('SIGKILL')
      await exited
    }))
    await rm(dir, { recursive: true, force: true })
  })
  const run = async (command: string, args: string[], ready: string, env: NodeJS.ProcessEnv = {}): Promise<() => string> => {
    const child = spawn(command, args, { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
    children.push(child)
    let output = ''
    await deadline(new Promise<void>((resolve, reject) => {
      child.once('error', reject)
      child.once('exit', (code) => { reject(new Error(`${command} exited with ${String(code)}: ${output}`)) })
      for (const stream of [child.stdout!, child.stderr!]) {
        stream.setEncoding('utf8').on('data', (chunk: string) => {
          output += chunk
          if (output.includes(ready)) resolve()
        })
      }
    }), 10_000, `${command} to start`)
    return () => output
  }
  await run('pebble-challtestsrv', ['-management', `127.0.0.1:${dnsManagementPort}`, '-dns01', `127.0.0.1:${dnsPort}`,
    '-http01', '', '-https01', '', '-tlsalpn01', '', '-defaultIPv4', '127.0.0.1', '-defaultIPv6', ''], 'Starting challenge servers')
  const output = await run('pebble', ['-config', join(dir, 'pebble.json'), '-dnsserver', `127.0.0.1:${dnsPort}`],
    'ACME directory available', { PEBBLE_VA_NOSLEEP: '1', PEBBLE_WFE_NONCEREJECT: '0', PEBBLE_AUTHZREUSE: '0' })
  return {
    directory: `https://127.0.0.1:${acmePort}/dir`,
    directoryCa: join(dir, 'ca.pem'),
    root: async () => await new Promise<string>((resolve, reject) => {
      https.get(`https://127.0.0.1:${managementPort}/roots/0`, { ca: ca.cert }, (response) => {
        let body = ''
        response.setEncoding('utf8').on('data', (chunk: string) => { body += chunk }).on('end', () => { resolve(body) })
      }).on('error', reject)
    }),
    issued: () => output().match(/Issued certificate serial/g)?.length ?? 0,
    output
  }
}
