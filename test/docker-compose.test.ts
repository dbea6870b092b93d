import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parse } from 'yaml'

const root = fileURLToPath(new URL('..', import.meta.url))

interface Service {
  build?: string | { context?: string }
  command?: string
  environment?: Record<string, string>
  ports?: string[]
  depends_on?: string[]
}

const compose = parse(readFileSync(join(root, 'docker-compose.yml'), 'utf8')) as { services: Record<string, Service> }
const { services } = compose

t.test('docker-compose.yml: three backends and a balancer in front of them', async (t) => {
  t.same(Object.keys(services).sort(), ['backend1', 'backend2', 'backend3', 'balancer'])
  const { balancer } = services
  t.ok(balancer.ports?.includes('8080:8080'), 'the balancer is published on port 8080')
  t.equal(balancer.environment?.PORT, '8080')
  t.same(balancer.environment?.BACKENDS.split(','), ['http://backend1:3000', 'http://backend2:3000', 'http://backend3:3000'])
  t.same([...(balancer.depends_on ?? [])].sort(), ['backend1', 'backend2', 'backend3'])
  for (const id of [1, 2, 3]) {
    t.same(services[`backend${id}`].environment, { ID: String(id), PORT: '3000' }, `backend${id} answers as ${id} on port 3000`)
  }
})

t.test('docker-compose.yml: every service builds from the Dockerfile and runs a file that exists', async (t) => {
  t.ok(existsSync(join(root, 'Dockerfile')), 'Dockerfile at the top of the repo')
  for (const [name, service] of Object.entries(services)) {
    const context = typeof service.build === 'string' ? service.build : service.build?.context
    t.equal(context, '.', `${name} builds from the top of the repo`)
    const script = /\bexample\/\S+\.ts\b/.exec(service.command ?? '')?.[0]
    t.ok(script !== undefined && existsSync(join(root, script)), `${name} runs ${script}, which exists`)
  }
  t.match(services.balancer.command, /example\/balancer\.ts/)
  t.match(services.backend1.command, /example\/backend\.ts/)
})

t.test('docker-compose config accepts the file', async (t) => {
  const check = spawnSync('docker-compose', ['-f', 'docker-compose.yml', 'config', '-q'], { cwd: root, encoding: 'utf8' })
  // Without a docker-compose binary on PATH there is nothing to ask: the structural checks above still ran.
  if ((check.error as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return
  t.equal(check.status, 0, `docker-compose config -q exits 0\n${check.stderr}`)
})
