import { availableParallelism } from 'node:os'
import { parseArgs } from 'node:util'

/** What the command line asks for, checked: every mistake is a UsageError with a one-line message. */
export type Command =
  | { action: 'help' }
  | { action: 'version' }
  | { action: 'check', config: string }
  | { action: 'print', config: string }
  | { action: 'serve', source: Source, workers: number, admin?: AdminAddress, pidFile?: string }

/** `--admin HOST:PORT`: where the admin API and status page listen (the token comes from GOLOAD_ADMIN_TOKEN). */
export interface AdminAddress { host: string, port: number }

/** Where the listeners and pools come from: a file, or `--backend` flags for one pool on one port. */
export type Source =
  | { config: string }
  | { backends: string[], port: number, host: string, strategy?: string }

export class UsageError extends Error {
  readonly code = 'FST_GOLOAD_USAGE'
}

export const usage = `Usage:
  goload --config goload.yaml           run the listeners and pools the file describes (.yaml, .yml, .toml, .json)
  goload --check --config goload.yaml   validate the file and exit: 0 if it is fine, 1 with one line per problem
  goload --print-config --config goload.yaml
                                        print the effective config (defaults filled in, \${NAME} replaced, secrets
                                        <redacted>) as YAML and exit; 1 and the --check lines when it is invalid
  goload --backend URL [--backend URL…] [--port 8080] [--host 0.0.0.0] [--strategy least-busy]
                                        one pool on one port, without a file

Options:
  --workers N|auto   processes sharing the port(s) (node:cluster). Default 1: each process keeps its own counts, so
                     least-busy is exact only in one; with several, p2c suits best. auto: one per core.
  --admin HOST:PORT  the admin API and status page, e.g. 127.0.0.1:9090 (in place of the file's admin block). Its
                     token is read from GOLOAD_ADMIN_TOKEN, never a flag; a host other than loopback requires one.
  --pid-file PATH    write goload's pid there once it listens, remove it at exit: for kill -HUP $(cat PATH)
  --help, -h         this text
  --version, -v      the version of fastify-goload
`

const options = {
  config: { type: 'string', short: 'c' },
  check: { type: 'boolean' },
  'print-config': { type: 'boolean' },
  backend: { type: 'string', multiple: true },
  port: { type: 'string' },
  host: { type: 'string' },
  strategy: { type: 'string' },
  workers: { type: 'string' },
  admin: { type: 'string' },
  'pid-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'v' }
} as const

export function parseCommand (argv: string[]): Command {
  let values: ReturnType<typeof parseArgs<{ options: typeof options }>>['values']
  try {
    ({ values } = parseArgs({ args: argv, options, strict: true, allowPositionals: false }))
  } catch (error) {
    // node:util's messages end with a hint about '--' that does not apply here; keep the first sentence.
    throw new UsageError(`${(error as Error).message.split('. ')[0].replace(/\.$/, '')} (goload --help lists the options)`)
  }
  if (values.help === true) return { action: 'help' }
  if (values.version === true) return { action: 'version' }

  const backends = values.backend ?? []
  const flagsOfBackends = (['port', 'host', 'strategy'] as const).filter((name) => values[name] !== undefined)
  if (values.config !== undefined) {
    if (backends.length > 0 || flagsOfBackends.length > 0) {
      throw new UsageError(`--config cannot be combined with ${[...(backends.length > 0 ? ['--backend'] : []), ...flagsOfBackends.map((name) => `--${name}`)].join(', ')}: the file says which backends, ports and strategies`)
    }
    if (values.check === true && values['print-config'] === true) throw new UsageError('--check and --print-config: give one (--print-config checks the file too)')
    if (values.check === true || values['print-config'] === true) {
      const action = values.check === true ? 'check' : 'print'
      const flag = values.workers !== undefined ? '--workers' : values.admin !== undefined ? '--admin' : values['pid-file'] !== undefined ? '--pid-file' : undefined
      if (flag !== undefined) throw new UsageError(`--${action === 'check' ? 'check' : 'print-config'} runs nothing: ${flag} does not apply`)
      return { action, config: values.config }
    }
    return { action: 'serve', source: { config: values.config }, workers: parseWorkers(values.workers), ...parseAdmin(values.admin), ...parsePidFile(values['pid-file']) }
  }
  if (values.check === true) throw new UsageError('--check needs --config FILE')
  if (values['print-config'] === true) throw new UsageError('--print-config needs --config FILE')
  if (backends.length === 0) throw new UsageError('nothing to run: give --config FILE, or --backend URL (goload --help)')
  return {
    action: 'serve',
    source: { backends, port: parsePort(values.port), host: values.host ?? '0.0.0.0', ...(values.strategy === undefined ? {} : { strategy: values.strategy }) },
    workers: parseWorkers(values.workers),
    ...parseAdmin(values.admin),
    ...parsePidFile(values['pid-file'])
  }
}

function parseAdmin (value: string | undefined): { admin?: AdminAddress } {
  if (value === undefined) return {}
  // 127.0.0.1:9090, localhost:9090, [::1]:9090
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d+)$/.exec(value)
  if (match === null || Number(match[3]) > 65535) throw new UsageError(`--admin must be HOST:PORT, like 127.0.0.1:9090, got ${JSON.stringify(value)}`)
  return { admin: { host: match[1] ?? match[2], port: Number(match[3]) } }
}

function parsePidFile (value: string | undefined): { pidFile?: string } {
  if (value === undefined) return {}
  if (value === '') throw new UsageError('--pid-file needs a path')
  return { pidFile: value }
}

function parsePort (value: string | undefined): number {
  if (value === undefined) return 8080
  const port = Number(value)
  // Port 0 lets the system choose: useful to tests and scripts that read the port from the log.
  if (!/^\d+$/.test(value) || port > 65535) throw new UsageError(`--port must be a port number (0-65535), got ${JSON.stringify(value)}`)
  return port
}

function parseWorkers (value: string | undefined): number {
  if (value === undefined) return 1
  if (value === 'auto') return availableParallelism()
  const workers = Number(value)
  if (!/^\d+$/.test(value) || workers < 1) throw new UsageError(`--workers must be a positive integer or auto, got ${JSON.stringify(value)}`)
  return workers
}
