import { execFile, spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { copyFile, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import { parse } from 'yaml'
import { loadConfig } from '../lib/config/load.js'
import { programOnPath } from './helpers/ci.js'
import { freePort } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'

const run = promisify(execFile)

const root = fileURLToPath(new URL('..', import.meta.url))

interface Service {
  build?: string | { context?: string }
  command?: string
  environment?: Record<string, string>
  ports?: string[]
  volumes?: string[]
  depends_on?: string[]
}

const listTs = (dir: string): string[] => readdirSync(dir, { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.ts')).map((file) => relative(root, join(dir, file)))

const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> }
const { services } = compose

// The balancer's config, mounted where the image's CMD reads it.
const configInImage = '/etc/goload/goload.yaml'

t.test('docker-compose.yml: three backends and the goload command in front of them, with a mounted config file', async (t) => {
  t.same(Object.keys(services).sort(), ['backend1', 'backend2', 'backend3', 'balancer'])
  const { balancer } = services
  t.ok(balancer.ports?.includes('8080:8080'), 'the balancer is published on port 8080')
  t.equal(balancer.command, undefined, "the balancer runs the image's CMD")
  const mount = balancer.volumes?.map((volume) => volume.split(':')).find(([, target]) => target === configInImage)
  t.ok(mount !== undefined && mount[2] === 'ro', `a config file is mounted read-only at ${configInImage}`)
  const config = await loadConfig(join(root, mount![0]))
  t.same(config.listeners.map(({ port, host }) => ({ port, host })), [{ port: 8080, host: '0.0.0.0' }], 'the file listens on 8080, every interface')
  t.same(Object.values(config.pools).map((pool) => pool.backends), [['http://backend1:3000', 'http://backend2:3000', 'http://backend3:3000']])
  t.same([...(balancer.depends_on ?? [])].sort(), ['backend1', 'backend2', 'backend3'])
  for (const id of [1, 2, 3]) {
    t.same(services[`backend${id}`].environment, { ID: String(id), PORT: '3000' }, `backend${id} answers as ${id} on port 3000`)
  }
})

// tsconfig.example.json compiles the example's entries to dist-example/, which the image runs with plain node.
const exampleConfig = JSON.parse(readFileSync(join(root, 'tsconfig.example.json'), 'utf8')) as { compilerOptions: { outDir: string }, include: string[] }
const compiled = (script: string) => new RegExp(`^node ${exampleConfig.compilerOptions.outDir}/(example/\\w+)\\.js$`).exec(script)?.[1]

t.test('docker-compose.yml: every service builds from the Dockerfile; the backends run the compiled example with node', async (t) => {
  t.ok(existsSync(join(root, 'Dockerfile')), 'Dockerfile at the top of the repo')
  for (const [name, service] of Object.entries(services)) {
    const context = typeof service.build === 'string' ? service.build : service.build?.context
    t.equal(context, '.', `${name} builds from the top of the repo`)
    if (name === 'balancer') continue
    const source = compiled(service.command ?? '')
    t.ok(source !== undefined && existsSync(join(root, `${source}.ts`)) && exampleConfig.include.includes(`${source}.ts`),
      `${name} runs ${service.command}, compiled from ${source}.ts by tsconfig.example.json`)
    t.equal(source, 'example/backend')
  }
})

// The Dockerfile's instructions by stage: { name, lines } for each FROM, continuation lines joined.
const stages = readFileSync(join(root, 'Dockerfile'), 'utf8').replace(/\\\n/g, ' ').split('\n')
  .map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'))
  .reduce<Array<{ name?: string, lines: string[] }>>((stages, line) => {
    if (line.startsWith('FROM ')) stages.push({ name: / AS (\S+)$/i.exec(line)?.[1], lines: [] })
    else stages[stages.length - 1].lines.push(line)
    return stages
  }, [])
const runtime = stages[stages.length - 1]
const instruction = (keyword: string) => runtime.lines.filter((line) => line.startsWith(`${keyword} `)).map((line) => line.slice(keyword.length + 1))
const healthcheck = JSON.parse(/CMD (\[.*\])$/.exec(instruction('HEALTHCHECK')[0] ?? '')?.[1] ?? 'null') as string[] | null
const command = JSON.parse(instruction('CMD')[0] ?? 'null') as string[] | null

t.test('Dockerfile: a build stage compiles, the runtime stage runs compiled JavaScript as the node user', async (t) => {
  t.ok(stages.length >= 2, 'multi-stage')
  const build = stages.find((stage) => stage.name === 'build')
  t.ok(build?.lines.includes('RUN npm ci --ignore-scripts') && build.lines.includes('RUN npm run build') && build.lines.includes('RUN npm run build:example'), 'the build stage installs and compiles')
  t.ok(instruction('RUN').some((line) => line.startsWith('npm ci --omit=dev --ignore-scripts')), 'the runtime stage installs production dependencies only')
  t.ok(instruction('COPY').includes('--from=build /app/dist dist'), 'copies the compiled plugin and command from the build stage')
  t.ok(instruction('COPY').includes(`--from=build /app/${exampleConfig.compilerOptions.outDir} ${exampleConfig.compilerOptions.outDir}`), 'and the compiled example backend')
  t.same(instruction('USER'), ['node'], 'runs as the node user')
  t.equal(healthcheck?.[0], 'node', 'HEALTHCHECK runs node (slim images have no curl)')
  t.same(command, ['node', 'dist/cli/bin.js', '--config', configInImage], 'CMD runs the goload command on the mounted config')
  t.notOk(runtime.lines.some((line) => /\btsx\b/.test(line)), 'no tsx in the runtime stage')
})

t.test('the runtime stage has in its production dependencies every package the compiled example imports', async (t) => {
  const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8')) as { packages: Record<string, { dev?: boolean }> }
  const imported = new Set<string>()
  for (const file of ['example/backend.ts', ...listTs(join(root, 'lib'))]) {
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

t.test('the compiled goload command runs with node alone on a config file, and the HEALTHCHECK command passes while it answers', async (t) => {
  // The runtime stage's /app, by hand: package.json, node_modules (here the repo's) and the compiled example.
  const app = await mkdtemp(join(tmpdir(), 'goload-image-'))
  t.teardown(() => rm(app, { recursive: true, force: true }))
  const outDir = exampleConfig.compilerOptions.outDir
  await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.example.json', '--outDir', join(app, outDir)], { cwd: root })
  await run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json', '--outDir', join(app, 'dist')], { cwd: root })
  await copyFile(join(root, 'package.json'), join(app, 'package.json'))
  await symlink(join(root, 'node_modules'), join(app, 'node_modules'), 'dir')
  const { NODE_V8_COVERAGE, ...env } = process.env

  const start = async (script: string, vars: Record<string, string>, args: string[], listening: RegExp) => {
    const child = spawn(process.execPath, [script, ...args], { cwd: app, env: { ...env, HOST: '127.0.0.1', PORT: '0', LOG: 'off', ...vars }, stdio: ['ignore', 'pipe', 'pipe'] })
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
    let output = ''
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { output += chunk })
    const port = await deadline(new Promise<string>((resolve, reject) => {
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
        output += chunk
        const match = listening.exec(output)
        if (match !== null) resolve(match[1])
      })
      child.once('exit', (code) => reject(new Error(`${script} exited with code ${code} before listening:\n${output}`)))
    }), 20_000, `${script} to listen`)
    return { child, port }
  }
  const healthy = (port: string) => run(process.execPath, healthcheck!.slice(1), { cwd: app, env: { ...env, PORT: port } }).then(() => true, () => false)

  const backend = await start(`${outDir}/example/backend.js`, { ID: '1' }, [], /listening on http:\/\/127\.0\.0\.1:(\d+)/)
  // The image's CMD, with a config file of this test's in place of the mounted one.
  const port = await freePort()
  const config = join(app, 'goload.yaml')
  await writeFile(config, `listeners:\n  - port: ${port}\n    host: 127.0.0.1\n    routes: [{ pool: hello }]\npools:\n  hello:\n    backends: [http://127.0.0.1:${backend.port}]\n`)
  t.equal(command![2], '--config')
  const balancer = await start(command![1], {}, ['--config', config], /goload listening on port (\d+)/)
  t.equal((await request(`http://127.0.0.1:${balancer.port}/`)).body, 'Hello from 1\n', 'the compiled balancer proxies to the compiled backend')
  t.equal(await healthy(balancer.port), true, 'healthy while the balancer answers')
  t.equal(await healthy(backend.port), true, 'the same check serves the backends, on their PORT')

  const exited = once(balancer.child, 'exit')
  balancer.child.kill('SIGTERM')
  t.same(await deadline(exited, 10_000, 'the balancer to exit after SIGTERM'), [0, null], 'SIGTERM closes the balancer')
  t.equal(await healthy(balancer.port), false, 'unhealthy once nothing answers')
  backend.child.kill('SIGTERM')
})

const dockerCompose = programOnPath('docker-compose', ['version'], 'apt-get install docker-compose')

t.test('docker-compose config accepts the file', { skip: dockerCompose.skip }, async (t) => {
  dockerCompose.require()
  const check = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, encoding: 'utf8' })
  t.equal(check.status, 0, `docker-compose config -q exits 0\n${check.stderr}`)
})
