import { execFile } from 'node:child_process'
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'

const run = promisify(execFile)
const root = path.resolve(import.meta.dirname, '..')

// What a user gets from npm: pack the package, install the tarball into a fresh app, proxy one request.
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

t.test('npm pack produces a package that installs and proxies in a fresh app, from ESM and CommonJS', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'goload-pack-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const { stdout } = await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: root })
  const [{ filename, files }] = JSON.parse(stdout.slice(stdout.indexOf('[')))
  const packed = files.map((f: { path: string }) => f.path)
  t.ok(packed.includes('dist/index.js') && packed.includes('dist/index.d.ts'), 'compiled code and types are published')
  t.ok(packed.includes('README.md') && packed.includes('LICENSE'))
  t.notOk(packed.some((p: string) => p.startsWith('test/') || p.startsWith('lib/')), 'sources and tests stay out')

  await writeFile(path.join(dir, 'package.json'), JSON.stringify({ name: 'fresh-app', private: true }))
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', path.join(dir, filename), 'fastify@5'], { cwd: dir })
  t.ok((await readdir(path.join(dir, 'node_modules'))).includes('fastify-goload'))

  await writeFile(path.join(dir, 'esm.mjs'), appSource("import Fastify from 'fastify'\nimport goload from 'fastify-goload'\nimport { createRequire } from 'node:module'\nconst require = createRequire(import.meta.url)"))
  await writeFile(path.join(dir, 'cjs.cjs'), appSource("const Fastify = require('fastify')\nconst goload = require('fastify-goload')"))
  for (const file of ['esm.mjs', 'cjs.cjs']) {
    const { stdout } = await run(process.execPath, [file], { cwd: dir })
    t.equal(stdout.trim(), '200 Hello from packed [1]', `${file} registers the plugin and proxies`)
  }
})
