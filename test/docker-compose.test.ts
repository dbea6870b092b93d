// The deployment kit's Docker part, read as files (no Docker engine here): docker-compose.yml, the Dockerfile's
// stages, and the image's runtime rebuilt by hand (compiled JavaScript run by node alone) with its HEALTHCHECK.
import { execFile, spawn, spawnSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../lib/config/load.js'
import { programOnPath } from './helpers/ci.js'
import { freePort, spawnGoload, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'
import { waitFor } from './helpers/servers.js'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }

interface Service {
  image?: string
  build?: string | { context?: string, target?: string }
  command?: string
  environment?: Record<string, string>
  ports?: string[]
  volumes?: string[]
  depends_on?: string[]
  restart?: string
  scale?: number
}
const { services } = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> }

// The Dockerfile's instructions by stage: { name, from, lines } for each FROM, continuation lines joined.
const stages = readFileSync(join(root, 'Dockerfile'), 'utf8').replace(/\\\n\s*/g, ' ').split('\n')
  .map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
  .reduce<Array<{ name?: string, from: string, lines: string[] }>>((stages, line) => {
    const from = /^FROM (\S+)(?: AS (\S+))?$/i.exec(line)
    if (from !== null) stages.push({ from: from[1], name: from[2], lines: [] })
    else if (stages.length > 0) stages[stages.length - 1].lines.push(line)
    return stages
  }, [])
const stage = (name: string) => stages.find((stage) => stage.name === name)!
const instruction = (name: string, keyword: string) => stage(name).lines.filter((line) => line.startsWith(`${keyword} `)).map((line) => line.slice(keyword.length + 1))
const image = stages[stages.length - 1]
const healthcheck = JSON.parse(/CMD (\[.*\])$/.exec(instruction('goload', 'HEALTHCHECK')[0] ?? '')?.[1] ?? 'null') as string[] | null
const command = JSON.parse(instruction('goload', 'CMD')[0] ?? 'null') as string[]
const healthUrl = /GOLOAD_HEALTHCHECK_URL=(\S+)/.exec(instruction('goload', 'ENV').join(' '))?.[1]
const configInImage = '/etc/goload/goload.yaml'
const token = 'a-token-of-16-chars-or-more'

t.test('Dockerfile: the balancer is the default (last) stage, on node:22-slim, with no example backend inside', async (t) => {
  t.equal(image.name, 'goload', 'docker build . gives the balancer')
  t.match(readFileSync(join(root, 'Dockerfile'), 'utf8'), /^ARG NODE_IMAGE=node:22-slim$/m)
  t.ok(stages.every((stage) => stage.from === '$' + '{NODE_IMAGE}'), 'every stage from node:22-slim')
  t.ok(stage('build').lines.includes('RUN npm ci --ignore-scripts') && stage('build').lines.includes('RUN npm run build'), 'the build stage installs and compiles')
  t.ok(instruction('goload', 'RUN').some((line) => line.startsWith('npm ci --omit=dev --ignore-scripts')), 'production dependencies only')
  t.same(instruction('goload', 'COPY'), ['package.json package-lock.json ./', '--from=build /app/dist dist', 'deploy/docker/healthcheck.mjs healthcheck.mjs'], 'the compiled command and the healthcheck, no example')
  t.notOk(image.lines.some((line) => /example|tsx/.test(line)), 'nothing of the example, no tsx')
  t.same(instruction('goload', 'USER'), ['node'], 'runs as the node user')
  t.same(command, ['node', 'dist/cli/bin.js', '--config', configInImage], 'CMD runs the goload command on the mounted config')
  t.same(instruction('example-backend', 'CMD'), ['["node", "backend.mjs"]'], 'the example backend is a stage of its own')
})

t.test('Dockerfile: OCI labels, and a HEALTHCHECK on the admin listener\'s /healthz, never a proxied path', async (t) => {
  const labels = Object.fromEntries([...instruction('goload', 'LABEL').join(' ').matchAll(/(org\.opencontainers\.image\.[a-z.]+)="([^"]*)"/g)].map((m) => [m[1], m[2]]))
  for (const key of ['title', 'description', 'version', 'revision', 'licenses', 'base.name']) t.ok(labels[`org.opencontainers.image.${key}`], `label org.opencontainers.image.${key}`)
  t.equal(labels['org.opencontainers.image.licenses'], 'MIT')
  t.ok(instruction('goload', 'ARG').includes(`VERSION=${pkg.version}`), `the version label defaults to package.json's ${pkg.version}`)
  t.same(healthcheck, ['node', 'healthcheck.mjs'])
  t.equal(healthUrl, 'http://127.0.0.1:9090/healthz', 'the admin\'s /healthz on the port the image expects')
  t.match(instruction('goload', 'EXPOSE')[0], /\b9090\b/)
})

t.test('docker-compose.yml: two images, each built once; the status page published with a token from the environment', async (t) => {
  t.same(Object.keys(services).sort(), ['backend', 'balancer'])
  const { backend, balancer } = services
  const built = Object.values(services).map((service) => service.image)
  t.equal(new Set(built).size, built.length, `one image name per build: ${built.join(', ')}`)
  t.same(balancer.build, { context: '.', target: 'goload' })
  t.same(backend.build, { context: '.', target: 'example-backend' })
  t.equal(backend.scale, 3, 'three replicas of the backend')
  for (const [name, service] of Object.entries(services)) t.equal(service.restart, 'unless-stopped', `${name} restarts`)
  t.equal(balancer.command, undefined, "the balancer runs the image's CMD")
  t.same(balancer.ports, ['8080:8080', '127.0.0.1:9090:9090'], 'the proxy, and the admin on this machine only')
  t.match(balancer.environment?.GOLOAD_ADMIN_TOKEN, /^\$\{GOLOAD_ADMIN_TOKEN:\?set GOLOAD_ADMIN_TOKEN .+\}$/, 'the token must be set, with a message')
  t.same(balancer.depends_on, ['backend'])
  const mount = balancer.volumes?.map((volume) => volume.split(':')).find(([, target]) => target === configInImage)
  t.ok(mount !== undefined && mount[2] === 'ro', `a config file is mounted read-only at ${configInImage}`)
  const config = await loadConfig(join(root, mount![0]), { env: { GOLOAD_ADMIN_TOKEN: token } })
  t.same(config.listeners.map(({ port, host }) => ({ port, host })), [{ port: 8080, host: '0.0.0.0' }], 'the file listens on 8080, every interface')
  t.same(config.admin, { host: '0.0.0.0', port: Number(new URL(healthUrl!).port), token }, 'the admin where the HEALTHCHECK asks, reachable for the published port')
  t.match(Object.values(config.pools).map((pool) => pool.backends), [[{ url: 'http://backend:3000', resolve: {} }]], 'every replica, through Docker\'s DNS')
})

t.test('example/backend.ts imports node\'s own modules only: its stage has no node_modules', async (t) => {
  const imports = [...readFileSync(join(root, 'example/backend.ts'), 'utf8').matchAll(/^import (?!type )[^'"]*'([^']*)'/gm)].map((m) => m[1])
  t.ok(imports.length > 0 && imports.every((specifier) => specifier.startsWith('node:')), imports.join(', '))
})

t.test('the image stage has in its production dependencies every package the compiled command imports', async (t) => {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  const imported = new Set<string>()
  const files = readdirTs(join(root, 'lib'))
  for (const file of files) {
    for (const [, specifier] of readFileSync(join(root, file), 'utf8').matchAll(/^import (?!type )[^'"]*'([^'.][^']*)'/gm)) {
      if (!specifier.startsWith('node:')) imported.add(specifier.split('/').slice(0, specifier.startsWith('@') ? 2 : 1).join('/'))
    }
  }
  t.ok(imported.has('fastify') && imported.has('@fastify/reply-from'), `imports found: ${[...imported].join(', ')}`)
  for (const name of imported) {
    const entry = lock.packages[`node_modules/${name}`]
    t.ok(entry !== undefined && entry.dev !== true, `${name} is installed by npm ci --omit=dev`)
  }
})

function readdirTs (dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.ts')).map((file) => relative(root, join(dir, file)))
}

t.test('the image at work, by hand: the backend stage\'s file alone, the command with an admin block, the HEALTHCHECK\'s answers', async (t) => {
  // The example-backend stage's /app: backend.mjs and nothing else, no package.json, no node_modules.
  const dir = await mkdtemp(join(tmpdir(), 'goload-image-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.example.json', '--outDir', join(dir, 'out')], { cwd: root })
  await copyFile(join(dir, 'out/example/backend.js'), join(dir, 'backend.mjs'))
  const { NODE_V8_COVERAGE, ...env } = process.env
  const backend = spawn(process.execPath, ['backend.mjs'], { cwd: dir, env: { ...env, HOST: '127.0.0.1', PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { backend.kill('SIGKILL') })
  let said = ''
  backend.stdout.setEncoding('utf8').on('data', (chunk: string) => { said += chunk })
  await waitFor(() => /listening on/.test(said), 'the backend to listen', 15_000)
  const backendUrl = /listening on (http:\/\/\S+)/.exec(said)![1]
  t.match(said, /^backend \S+ listening/, 'without ID it answers as its hostname')

  const [port, adminPort] = [await freePort(), await freePort()]
  const config = join(dir, 'goload.yaml')
  await writeFile(config, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: hello }]\npools:\n  hello:\n    backends: [${backendUrl}]\nadmin:\n  port: ${adminPort}\n`)
  const healthcheck = async (url: string) => await new Promise<{ code: number | null, said: string }>((resolve) => {
    execFile(process.execPath, [join(root, 'deploy/docker/healthcheck.mjs')], { env: { ...env, GOLOAD_HEALTHCHECK_URL: url } }, (error, stdout) => {
      resolve({ code: error === null ? 0 : (error as { code?: number }).code ?? null, said: stdout })
    })
  })
  const health = `http://127.0.0.1:${adminPort}/healthz`
  const none = await healthcheck(health)
  t.equal(none.code, 1, 'unhealthy while no admin listens')
  t.match(none.said, /^goload unhealthy: nothing listens at .*: give goload\.yaml an admin block on port 9090/, 'and says what the image expects')

  const balancer = spawnGoload(t, ['--config', config])
  await waitFor(() => /goload listening/.test(balancer.stdout), 'goload to listen', startDeadline)
  t.match((await request(`http://127.0.0.1:${port}/`, { agent: false })).body, /^Hello from \S+\n$/, 'the command proxies to the backend stage\'s file')
  const accessLines = () => balancer.stdout.match(/goload: access/g)?.length ?? 0
  await waitFor(() => accessLines() === 1, 'the proxied request\'s access line')
  t.same(await healthcheck(health), { code: 0, said: '' }, 'healthy while goload serves')
  t.equal(accessLines(), 1, 'the check is no proxied request: no access line')
  const answered = await healthcheck(`http://127.0.0.1:${adminPort}/no-such-path`)
  t.match(answered, { code: 1, said: /answered 404/ }, 'any answer but 2xx is unhealthy, with the status')

  balancer.child.kill('SIGTERM')
  t.same(await deadline(balancer.exited, startDeadline, 'goload to exit'), [0, null])
  t.equal((await healthcheck(health)).code, 1, 'unhealthy once goload has exited')
})

const dockerCompose = programOnPath('docker-compose', ['version'], 'apt-get install docker-compose')

t.test('docker-compose config accepts the file, and without GOLOAD_ADMIN_TOKEN says to set it', { skip: dockerCompose.skip }, async (t) => {
  dockerCompose.require()
  const { GOLOAD_ADMIN_TOKEN, ...without } = process.env
  const check = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, encoding: 'utf8', env: { ...without, GOLOAD_ADMIN_TOKEN: token } })
  t.equal(check.status, 0, `docker-compose config -q exits 0\n${check.stderr}`)
  const unset = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, encoding: 'utf8', env: without })
  t.not(unset.status, 0, 'refused without the token')
  t.match(unset.stderr, /set GOLOAD_ADMIN_TOKEN to 16 or more random characters/)
})
