import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { configFile, runMain } from './helpers/cli.js'
import { childEnv } from './helpers/child.js'

t.test('--config naming a directory says so, and which file names it expects', async (t) => {
  const folder = dirname(await configFile(t, 'listeners: []\n'))
  const run = runMain(t, ['--check', '--config', folder])
  t.equal(await run.code, 1)
  t.equal(run.stderr(), `${folder}: is a directory: give the config file in it (goload.yaml, goload.yml, goload.toml or goload.json)\n`)
})

// Binding below 1024 needs root or CAP_NET_BIND_SERVICE: the built command run as nobody (the tests run as root here).
t.test('a port below 1024 refused (EACCES) says what would allow it', { skip: process.getuid?.() === 0 ? false : 'needs root to run the command as nobody' }, async (t) => {
  const bin = fileURLToPath(new URL('../dist/cli/bin.js', import.meta.url))
  const child = spawn(process.execPath, [bin, '--backend', 'http://127.0.0.1:1', '--port', '80', '--host', '127.0.0.1'], { uid: 65534, gid: 65534, env: childEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk })
  const [code] = await once(child, 'exit')
  t.equal(code, 1)
  t.ok(stderr.includes("goload: listeners[0]: cannot listen on 127.0.0.1:80: listen EACCES: permission denied 127.0.0.1:80: ports below 1024 need root, or the capability CAP_NET_BIND_SERVICE (setcap 'cap_net_bind_service=+ep' $(command -v node), or AmbientCapabilities=CAP_NET_BIND_SERVICE in a systemd unit), or use a port of 1024 or above\n"), stderr)
})
