// deploy/systemd/goload.service: the keys the README promises, and systemd's own check where systemd-analyze is
// installed (the binary paths swapped for one that exists here: verify wants every ExecStart to be executable).
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { programOnPath } from './helpers/ci.js'

const unitFile = new URL('../deploy/systemd/goload.service', import.meta.url)

/** A unit's keys by section, each key's values in order (a key may repeat). */
function parseUnit (text: string): Record<string, Record<string, string[]>> {
  const sections: Record<string, Record<string, string[]>> = {}
  let section = ''
  for (const line of text.split('\n').map((line) => line.trim())) {
    if (line === '' || line.startsWith('#')) continue
    const header = /^\[(\w+)\]$/.exec(line)
    if (header !== null) {
      section = header[1]
      sections[section] = {}
      continue
    }
    const [key, ...value] = line.split('=')
    sections[section][key] = [...(sections[section][key] ?? []), value.join('=')]
  }
  return sections
}

t.test('goload.service: reload by SIGHUP, a dedicated user, hardening, restart on failure, a file descriptor limit', async (t) => {
  const { Unit, Service, Install } = parseUnit(await readFile(unitFile, 'utf8'))
  t.ok(Unit.After?.includes('network-online.target'))
  t.same(Service.ExecStart, ['/usr/bin/goload --config /etc/goload/goload.yaml'])
  t.same(Service.ExecStartPre, ['/usr/bin/goload --check --config /etc/goload/goload.yaml'], 'a bad file fails the start with its problems')
  t.same(Service.ExecReload, ['/bin/kill -HUP $MAINPID'])
  t.same(Service.User, ['goload'])
  t.same(Service.Restart, ['on-failure'])
  t.ok(Number(Service.LimitNOFILE?.[0]) >= 65536, 'LimitNOFILE')
  t.same(Service.AmbientCapabilities, ['CAP_NET_BIND_SERVICE'], 'ports below 1024 without root')
  for (const key of ['NoNewPrivileges', 'ProtectHome', 'PrivateTmp']) t.same(Service[key], ['true'], key)
  t.same(Service.ProtectSystem, ['strict'])
  t.same(Install.WantedBy, ['multi-user.target'])
})

const analyze = programOnPath('systemd-analyze', ['--version'], 'apt-get install systemd')

t.test('systemd-analyze verify accepts the unit', { skip: analyze.skip }, async (t) => {
  analyze.require()
  const dir = await mkdtemp(join(tmpdir(), 'goload-unit-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const unit = join(dir, 'goload.service')
  await writeFile(unit, (await readFile(unitFile, 'utf8')).replaceAll('/usr/bin/goload', '/bin/true'))
  const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' })
  t.equal(verify.status, 0, `systemd-analyze verify exits 0\n${verify.stderr}`)
  t.equal(verify.stderr, '', 'with nothing to say')
})
