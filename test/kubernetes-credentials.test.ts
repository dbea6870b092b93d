import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import t from 'tap'
import { credentialsOf } from '../lib/discovery/kubernetes-credentials.js'
import { normalizeOptions, type KubernetesDiscoveryOptions } from '../lib/options.js'

async function folder (t: Test, files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'goload-sa-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text)
  return dir
}

function configOf (options: KubernetesDiscoveryOptions) {
  return normalizeOptions({ discovery: { kubernetes: options } }).discovery!.kubernetes
}

const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'
const cluster = { KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443' }

t.test('in a cluster: the service account\'s token, CA and namespace, and the API server from the environment', async (t) => {
  const dir = await folder(t, { token: 'first\n', 'ca.crt': pem, namespace: 'prod\n' })
  const credentials = credentialsOf(configOf({ service: 'api' }), cluster, dir)
  t.equal(credentials.apiServer, 'https://10.96.0.1:443')
  t.equal(credentials.namespace, 'prod')
  t.equal(credentials.ca, pem)
  t.equal(await credentials.token(), 'first')
  await writeFile(join(dir, 'token'), 'rotated\n')
  t.equal(await credentials.token(), 'rotated', 'the token file is read again: the kubelet rotates it in place')

  const ipv6 = credentialsOf(configOf({ service: 'api', namespace: 'other' }), { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '6443' }, dir)
  t.equal(ipv6.apiServer, 'https://[fd00::1]:6443')
  t.equal(ipv6.namespace, 'other', 'a namespace given wins over the pod\'s')
})

t.test('outside a cluster: apiServer, token or tokenFile, ca as a file or PEM text; the service account is not read', async (t) => {
  const dir = await folder(t, { token: 'own\n', 'ca.pem': pem })
  const given = credentialsOf(configOf({ service: 'api', apiServer: 'https://k8s.example:6443/', token: 'abc', ca: join(dir, 'ca.pem') }), {}, dir)
  t.equal(given.apiServer, 'https://k8s.example:6443')
  t.equal(given.namespace, 'default')
  t.equal(given.ca, pem)
  t.equal(await given.token(), 'abc')
  const text = credentialsOf(configOf({ service: 'api', apiServer: 'http://127.0.0.1:8001', ca: pem }), {}, dir)
  t.equal(text.ca, pem, 'PEM text is taken as it is')
  t.equal(await text.token(), undefined, 'no token (kubectl proxy)')

  t.throws(() => credentialsOf(configOf({ service: 'api' }), {}, dir), { code: 'FST_GOLOAD_INVALID_OPTION', message: /discovery\.kubernetes\.apiServer is required outside a Kubernetes cluster/ })
  t.throws(() => credentialsOf(configOf({ service: 'api', apiServer: 'https://k:6443', ca: join(dir, 'missing.pem') }), {}, dir), { message: /discovery\.kubernetes\.ca: cannot read .*missing\.pem/ })
  t.throws(() => credentialsOf(configOf({ service: 'api', apiServer: 'https://k:6443', tokenFile: join(dir, 'missing') }), {}, dir), { message: /discovery\.kubernetes\.tokenFile: cannot read/ })
})

t.test('bad discovery options are refused, naming the key', async (t) => {
  const refused: Array<[unknown, RegExp]> = [
    [{ kubernetes: { namespace: 'prod' } }, /discovery\.kubernetes\.service is required/],
    [{ kubernetes: { service: 'API' } }, /discovery\.kubernetes\.service must be a Service name/],
    [{ kubernetes: { service: 'api', namespace: 'Prod_1' } }, /discovery\.kubernetes\.namespace must be a namespace name/],
    [{ kubernetes: { service: 'api', port: 0 } }, /discovery\.kubernetes\.port must be a port name .* or a number from 1 to 65535, got 0/],
    [{ kubernetes: { service: 'api', port: 'HTTP' } }, /discovery\.kubernetes\.port must be/],
    [{ kubernetes: { service: 'api', apiServer: 'k8s:6443' } }, /discovery\.kubernetes\.apiServer must be an origin/],
    [{ kubernetes: { service: 'api', token: 'a', tokenFile: '/t' } }, /discovery\.kubernetes\.token and discovery\.kubernetes\.tokenFile are one setting/],
    [{ kubernetes: { service: 'api', retryDelay: -1 } }, /discovery\.kubernetes\.retryDelay must be a positive integer/],
    [{ kubernetes: { service: 'api', labels: 'x' } }, /discovery\.kubernetes has an unknown field "labels"/],
    [{ consul: {} }, /discovery has an unknown field "consul"/],
    ['api', /discovery must be an object/]
  ]
  for (const [discovery, message] of refused) {
    t.throws(() => normalizeOptions({ discovery } as never), { code: 'FST_GOLOAD_INVALID_OPTION', message }, JSON.stringify(discovery))
  }
  t.throws(() => normalizeOptions({}), { message: /backends must be a non-empty array .*\(or give discovery\)/ })
  const config = normalizeOptions({ discovery: { kubernetes: { service: 'api', port: 8080 } } })
  t.same(config.backends, [], 'backends may be left out beside discovery')
  t.equal(config.discovery?.kubernetes.retryDelay, 1000)
  t.equal(normalizeOptions({ discovery: { kubernetes: { service: 'api', port: '8080' } } }).discovery?.kubernetes.port, 8080, 'digits (an environment variable substituted) are a port number, not a name')
})
