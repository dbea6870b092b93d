// deploy/kubernetes/: every manifest parses (the yaml package) into the kinds the README lists, the Deployment has
// what a rollout needs, and the ConfigMap's goload.yaml passes `goload --check` through the built command.
import { readdirSync, readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import { configFile, spawnGoload, startDeadline } from './helpers/cli.js'
import { deadline } from './helpers/raw.js'

const folder = new URL('../deploy/kubernetes/', import.meta.url)
interface Manifest { apiVersion: string, kind: string, metadata: { name: string }, [key: string]: any }
const manifests: Manifest[] = readdirSync(folder).filter((file) => file.endsWith('.yaml')).flatMap((file) => parseAllDocuments(readFileSync(new URL(file, folder), 'utf8')).map((document) => {
  if (document.errors.length > 0) throw new Error(`${file}: ${document.errors.map(String).join('; ')}`)
  return document.toJS() as Manifest
}))
const ofKind = (kind: string) => manifests.find((manifest) => manifest.kind === kind)!

t.test('every manifest parses, with the kinds of a deployment kit', async (t) => {
  t.same(manifests.map(({ apiVersion, kind }) => `${apiVersion} ${kind}`).sort(), [
    'apps/v1 Deployment', 'policy/v1 PodDisruptionBudget', 'rbac.authorization.k8s.io/v1 Role', 'rbac.authorization.k8s.io/v1 RoleBinding',
    'v1 ConfigMap', 'v1 Service', 'v1 ServiceAccount'
  ])
  t.same(ofKind('Role').rules, [{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['list', 'watch'] }])
  t.same(ofKind('RoleBinding').subjects, [{ kind: 'ServiceAccount', name: ofKind('ServiceAccount').metadata.name }])
})

t.test('the Deployment: probes on the admin\'s /healthz and /readyz, a preStop sleep, resources, non-root, read-only root', async (t) => {
  const pod = ofKind('Deployment').spec.template.spec
  const [container] = pod.containers
  t.equal(pod.serviceAccountName, ofKind('ServiceAccount').metadata.name)
  t.same(container.livenessProbe.httpGet, { path: '/healthz', port: 'admin' })
  t.same(container.readinessProbe.httpGet, { path: '/readyz', port: 'admin' })
  t.same(container.lifecycle.preStop.exec.command, ['sleep', '10'])
  t.ok(pod.terminationGracePeriodSeconds > 10 + 30, 'room for the preStop sleep and a pool\'s closeTimeout')
  t.ok(container.resources.requests.cpu !== undefined && container.resources.limits.memory !== undefined)
  t.equal(pod.securityContext.runAsNonRoot, true)
  t.equal(container.securityContext.readOnlyRootFilesystem, true)
  t.equal(container.securityContext.allowPrivilegeEscalation, false)
  t.same(container.env.map(({ name }: { name: string }) => name), ['GOLOAD_ADMIN_TOKEN'])
  t.equal(pod.volumes[0].configMap.name, ofKind('ConfigMap').metadata.name)
  t.equal(container.volumeMounts[0].mountPath, '/etc/goload', 'the image reads /etc/goload/goload.yaml')
  t.same(ofKind('PodDisruptionBudget').spec.selector, ofKind('Deployment').spec.selector)
  t.same(ofKind('Service').spec.selector, ofKind('Deployment').spec.selector.matchLabels)
})

t.test('the ConfigMap\'s goload.yaml passes goload --check, its admin where the probes ask', async (t) => {
  const text = ofKind('ConfigMap').data['goload.yaml'] as string
  const file = await configFile(t, text)
  await writeFile(file, text)
  process.env.GOLOAD_ADMIN_TOKEN = 'a-token-of-16-chars-or-more'
  t.teardown(() => { delete process.env.GOLOAD_ADMIN_TOKEN })
  const check = spawnGoload(t, ['--check', '--config', file])
  t.same(await deadline(check.exited, startDeadline, 'goload --check'), [0, null], check.stderr)
  t.equal(check.stdout, `${file}: ok\n`)
  t.match(text, /discovery:\n +kubernetes: \{ service: api, port: http \}/, 'the pool follows the Service api\'s EndpointSlices, which the Role lets it read')
  const ports = ofKind('Deployment').spec.template.spec.containers[0].ports
  t.match(text, new RegExp(`admin:\\n  host: 0\\.0\\.0\\.0\\n  port: ${ports.find(({ name }: { name: string }) => name === 'admin').containerPort}\\n`))
})
