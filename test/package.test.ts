import { execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { createRequire } from 'node:module'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { accepting, freePort, startDeadline } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { deadline } from './helpers/raw.js'

const execFileAsync = promisify(execFile)
// Children run without tap's coverage collection, which would slow every tsc several times over.
const { NODE_V8_COVERAGE, ...env } = process.env
const run = (file: string, args: string[], options: { cwd: string }) => execFileAsync(file, args, { ...options, env })
const root = path.resolve(import.meta.dirname, '..')
const versionOf = (name: string): string => createRequire(import.meta.url)(`${name}/package.json`).version

// What a user gets from npm: pack the package and install the tarball into a fresh app, with the Fastify and
// @types/node this repo is tested with, and the oldest TypeScript versions its types are promised to.
const dir = await mkdtemp(path.join(os.tmpdir(), 'goload-pack-'))
t.teardown(() => rm(dir, { recursive: true, force: true }))
const packed = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root })
const [{ filename, files }] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('[')))
await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true }))
const installed = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(dir, filename),
  `fastify@${versionOf('fastify')}`, `@types/node@${versionOf('@types/node')}`,
  // Fastify 5's own types use NoInfer, so TypeScript before 5.4 compiles them only with skipLibCheck.
  'typescript-5.0@npm:typescript@5.0.4', 'typescript-5.4@npm:typescript@5.4.5'], { cwd: dir })

t.test('the tarball holds the compiled code, both entries and their types, and no sources', async (t) => {
  const paths = files.map((f: { path: string }) => f.path)
  for (const file of ['dist/index.js', 'dist/index.d.ts', 'cjs/index.cjs', 'cjs/index.d.cts', 'cjs/index.ts5.0.d.cts', 'README.md', 'LICENSE',
    'dist/admin/page/index.html', 'dist/admin/page/status.css', 'dist/admin/page/status.js']) {
    t.ok(paths.includes(file), `${file} is published`)
  }
  t.notOk(paths.some((p: string) => p.startsWith('test/') || p.startsWith('lib/')), 'sources and tests stay out')
  t.ok((await readdir(path.join(dir, 'node_modules'))).includes('fastify-goload'))
})

// npm warns (EBADENGINE) where a package's engines leave out the Node installing it. .ci/run runs this on each Node
// goload supports: none of those warnings may come from goload's own tree. Fastify's is its own (light-my-request
// wants cookie@2, for Node 22, and `npm install fastify@5` alone warns so on Node 20).
t.test(`installing on Node ${process.versions.node}: no engine warning from a package of goload's dependency tree`, async (t) => {
  const warned = [...installed.stderr.matchAll(/EBADENGINE\s+package: '([^']+)'/g)].map((m) => m[1])
  const { stdout } = await run('npm', ['ls', '--all', '--json'], { cwd: dir }).catch((error) => error)
  const ours = new Set<string>()
  interface Tree { version?: string, dependencies?: Record<string, Tree> }
  const walk = (node: Tree): void => {
    for (const [name, child] of Object.entries(node.dependencies ?? {})) {
      ours.add(`${name}@${child.version ?? ''}`)
      walk(child)
    }
  }
  walk(JSON.parse(stdout).dependencies['fastify-goload'])
  t.ok(ours.size > 10, `goload's tree read (${ours.size} packages)`)
  t.same(warned.filter((name) => ours.has(name)), [], `EBADENGINE of any (${warned.join(', ') || 'none'}) is from fastify's tree`)
})

// One request through the installed plugin to a real backend; prints what it saw.
const appSource = (loader: string) => `
${loader}
const http = require('node:http')
const backend = http.createServer((req, res) => res.end('Hello from packed')).listen(0, '127.0.0.1', async () => {
  const app = Fastify()
  await app.register(goload, { backends: ['http://127.0.0.1:' + backend.address().port] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const res = await fetch('http://127.0.0.1:' + app.server.address().port + '/')
  console.log(res.status, await res.text(), JSON.stringify(app.goload.stats().backends.map((b) => b.served)))
  await app.close()
  backend.close()
})
`
const esm = "import Fastify from 'fastify'\nimport { createRequire } from 'node:module'\nconst require = createRequire(import.meta.url)\n"
const cjs = "const Fastify = require('fastify')\n"
// The CommonJS forms Fastify plugins support, and that both module systems get the same plugin, not two copies.
const loaders = {
  'esm-default.mjs': `${esm}import goload from 'fastify-goload'\nif (require('fastify-goload') !== goload) throw new Error('two copies')`,
  'esm-named.mjs': `${esm}import { goload } from 'fastify-goload'`,
  'cjs-module.cjs': `${cjs}const goload = require('fastify-goload')\nif (typeof goload !== 'function') throw new Error('not the plugin')`,
  'cjs-default.cjs': `${cjs}const goload = require('fastify-goload').default`,
  'cjs-named.cjs': `${cjs}const { goload } = require('fastify-goload')`
}

for (const [file, loader] of Object.entries(loaders)) {
  t.test(`${file}: the installed package registers and proxies to a real backend`, async (t) => {
    await writeFile(path.join(dir, file), appSource(loader))
    const { stdout } = await run(process.execPath, [file], { cwd: dir })
    t.equal(stdout.trim(), '200 Hello from packed [1]')
  })
}

// Consumers in TypeScript, against the installed package's package.json exports and declarations. Every type the
// ES entry exports is imported by name from both entries, and wrong options must be an error, so types that
// degraded to `any` would fail too.
const consumers = async (t: Test): Promise<string[]> => {
  const declarations = await readFile(path.join(dir, 'node_modules/fastify-goload/dist/index.d.ts'), 'utf8')
  const names = [...declarations.matchAll(/^export type \{([^}]+)\}/gm)].flatMap((m) => m[1].split(',').map((name) => name.trim()))
  t.ok(names.includes('GoloadOptions') && names.includes('PoolStats'), `exported types found: ${names.join(', ')}`)
  const body = (register: string) => `
const app = Fastify()
${register}
// @ts-expect-error backends are URLs or { url } objects
app.register(goload, { backends: [42] })
const stats: PoolStats = app.goload.pool('api').stats()
export const strategy: Strategy = stats.strategy
export type Everything = [${names.join(', ')}]
`
  await writeFile(path.join(dir, 'esm.mts'), `import Fastify from 'fastify'
import goload, { goload as named, type ${names.join(', type ')} } from 'fastify-goload'
${body("await app.register(goload, { backends: ['http://127.0.0.1:3000'] })\nawait app.register(named, { backends: ['http://127.0.0.1:3001'], prefix: '/api', name: 'api' })")}`)
  await writeFile(path.join(dir, 'cjs.cts'), `import Fastify = require('fastify')
import goload = require('fastify-goload')
import { goload as named } from 'fastify-goload'
import type { ${names.join(', ')} } from 'fastify-goload'
${body("app.register(goload, { backends: ['http://127.0.0.1:3000'] })\napp.register(goload.default, { backends: ['http://127.0.0.1:3001'], prefix: '/api', name: 'api' })\napp.register(named, { backends: ['http://127.0.0.1:3002'], prefix: '/b', name: 'b' })")}`)
  return ['esm.mts', 'cjs.cts']
}

const compilers = [
  { name: 'TypeScript 5.0', tsc: path.join(dir, 'node_modules/typescript-5.0/bin/tsc'), skipLibCheck: true },
  { name: 'TypeScript 5.4', tsc: path.join(dir, 'node_modules/typescript-5.4/bin/tsc'), skipLibCheck: false }
]
// The TypeScript this repo builds with checks both entries in types/ (tstyche).

t.test('the published types compile in ESM and CommonJS consumers (module NodeNext)', async (t) => {
  const sources = await consumers(t)
  const args = ['--noEmit', '--strict', '--target', 'ES2022', '--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--types', 'node', ...sources]
  const results = await Promise.all(compilers.map(({ tsc, skipLibCheck }) =>
    run(process.execPath, [tsc, ...args, ...(skipLibCheck ? ['--skipLibCheck'] : [])], { cwd: dir }).then(() => '', (error) => `${error.stdout}${error.stderr}`)))
  compilers.forEach(({ name, skipLibCheck }, i) => {
    t.equal(results[i], '', `${name}${skipLibCheck ? ' with skipLibCheck' : ''} compiles ${sources.join(' and ')}`)
  })
})

t.test('the installed goload command: npx finds it; with --backend URL it proxies, with --admin it serves the status page, and SIGTERM stops it with code 0', async (t) => {
  const paths = files.map((f: { path: string }) => f.path)
  t.ok(paths.includes('dist/cli/bin.js'), 'the compiled command is published')
  t.ok(paths.includes('dist/admin/page/index.html'), 'the status page is published')
  const backend = http.createServer((req, res) => res.end('Hello from npx')).listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => backend.close())
  const [port, adminPort] = [await freePort(), await freePort()]
  const { stdout } = await run('npx', ['--no-install', 'goload', '--version'], { cwd: dir })
  t.equal(stdout, `${JSON.parse(await readFile(path.join(root, 'package.json'), 'utf8')).version}\n`, 'npx goload --version')
  // The command npm linked into node_modules/.bin, run directly (npx would stand between it and the signal).
  const child = spawn(path.join(dir, 'node_modules/.bin/goload'), ['--backend', `http://127.0.0.1:${(backend.address() as AddressInfo).port}`, '--port', String(port), '--host', '127.0.0.1', '--admin', `127.0.0.1:${adminPort}`], { cwd: dir, env, stdio: 'ignore' })
  const exited = once(child, 'exit')
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  await accepting(port, 20_000)
  const answer = await request(`http://127.0.0.1:${port}/`)
  t.equal(answer.body, 'Hello from npx')
  await accepting(adminPort, 20_000)
  const page = await request(`http://127.0.0.1:${adminPort}/`)
  t.equal(page.status, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  child.kill('SIGTERM')
  t.same(await deadline(exited, startDeadline, 'goload to exit'), [0, null])
})
