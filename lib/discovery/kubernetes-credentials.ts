import { readFileSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { isIPv6 } from 'node:net'
import { join } from 'node:path'
import { InvalidOptionError } from '../errors.js'
import type { KubernetesDiscoveryConfig } from '../options.js'

/** Where the kubelet mounts a pod's service account: token (rotated in place), ca.crt, namespace. */
export const serviceAccountFolder = '/var/run/secrets/kubernetes.io/serviceaccount'

/** How to reach the API server and prove who we are. */
export interface KubernetesCredentials {
  /** https://host:port */
  apiServer: string
  namespace: string
  /** PEM; undefined trusts Node's public CAs. */
  ca: string | undefined
  /** The bearer token to send now: a token file is read again each time, so a rotated token is picked up. */
  token: () => Promise<string | undefined>
}

/**
 * The discovery's credentials: the keys given, and for each one left out the pod's service account (in a cluster)
 * or nothing. Read once at start; a missing API server or unreadable CA is an error there, naming the key.
 * `env` and `folder` are the process's and the kubelet's, replaced in tests.
 */
export function credentialsOf (config: KubernetesDiscoveryConfig, env: NodeJS.ProcessEnv = process.env, folder = serviceAccountFolder): KubernetesCredentials {
  const key = 'discovery.kubernetes'
  const host = env.KUBERNETES_SERVICE_HOST
  const inCluster = host !== undefined && host !== ''
  let apiServer = config.apiServer
  if (apiServer === undefined) {
    if (!inCluster) throw new InvalidOptionError(`${key}.apiServer is required outside a Kubernetes cluster (KUBERNETES_SERVICE_HOST is not set)`)
    apiServer = `https://${isIPv6(host) ? `[${host}]` : host}:${env.KUBERNETES_SERVICE_PORT ?? '443'}`
  }
  const ownFile = (name: string): string | undefined => {
    const path = join(folder, name)
    return inCluster && readable(path) ? path : undefined
  }
  const caFile = config.ca ?? ownFile('ca.crt')
  let ca: string | undefined
  if (caFile !== undefined) {
    try {
      ca = caFile.trimStart().startsWith('-----BEGIN') ? caFile : readFileSync(caFile, 'utf8')
    } catch (error) {
      throw new InvalidOptionError(`${key}.ca: cannot read ${caFile}: ${(error as Error).message}`)
    }
  }
  const namespaceFile = ownFile('namespace')
  const namespace = config.namespace ?? (namespaceFile === undefined ? 'default' : readFileSync(namespaceFile, 'utf8').trim())
  const tokenFile = config.token === undefined ? config.tokenFile ?? ownFile('token') : undefined
  if (tokenFile !== undefined && !readable(tokenFile)) throw new InvalidOptionError(`${key}.tokenFile: cannot read ${tokenFile}`)
  const token = tokenFile === undefined
    ? async () => config.token
    : async () => (await readFile(tokenFile, 'utf8')).trim()
  return { apiServer, namespace, ca, token }
}

function readable (path: string): boolean {
  try {
    readFileSync(path)
    return true
  } catch {
    return false
  }
}
