import { constants } from 'node:fs'
import { open, stat } from 'node:fs/promises'
import { dirname, extname, resolve } from 'node:path'
import { exposureProblem, tokenProblem } from '../admin/auth.js'
import { normalizeOptions, normalizeRateLimit } from '../options.js'
import { checkSplit } from '../options-check.js'
import { readCertificates } from '../tls/certificates.js'
import { substituteEnv } from './env.js'
import { ConfigError, keyPath, type Problem } from './errors.js'
import { formats, parseConfigText, type Locate } from './parse.js'
import type { AdminConfig, GoloadFileConfig } from './schema.js'
import { closest } from './suggest.js'
import { acmeProblems, checkAcme } from './acme.js'
import { readBackendTlsFiles } from './backend-tls-files.js'
import { listenerBlockProblems, placeOf } from './listener-blocks.js'
import { trustedProxyProblem } from './trusted-proxies.js'
import { validateConfig } from './validate.js'

export interface LoadConfigOptions {
  /** Where `${NAME}` values come from. Default `process.env`. */
  env?: NodeJS.ProcessEnv
  /** Told what is served anyway but should not be (an expired certificate), one line each, at the file's line. */
  warn?: (message: string) => void
}

/**
 * Reads a config file (.yaml, .yml, .toml or .json) into plugin options, or throws a ConfigError listing every
 * problem found. Nothing is built: each pool goes through the plugin's own option checks only to find its mistakes.
 */
export async function loadConfig (file: string, { env = process.env, warn }: LoadConfigOptions = {}): Promise<GoloadFileConfig> {
  if (formats[extname(file).toLowerCase()] === undefined) {
    if (await isDirectory(file)) throw new ConfigError([`${file}: is a directory: give the config file in it (goload.yaml, goload.yml, goload.toml or goload.json)`])
    throw new ConfigError([`${file}: unknown format "${extname(file)}": use .yaml, .yml, .toml or .json`])
  }
  const text = await readText(file)

  const parsed = parseConfigText(file, text)
  if (Array.isArray(parsed)) throw new ConfigError(parsed.map((problem) => `${file}:${problem.line}:${problem.column}: ${problem.message}`))
  const { data: raw, locate } = parsed
  // An empty YAML file is null, an empty or comment-only TOML file is {}.
  if (raw === null || raw === undefined || (typeof raw === 'object' && Object.keys(raw).length === 0 && text.trim().startsWith('{') === false)) {
    throw new ConfigError([`${file}: the file is empty: expected listeners and pools`])
  }

  const problems: Problem[] = []
  const data = substituteEnv(raw, env, problems)
  problems.push(...validateConfig(data))
  // Every problem in one pass: the checks beside the schema look at each part the schema found sound, so a typo in
  // one pool does not hide an unknown pool name in a route, nor a missing certificate.
  dropUnknownKeys(data, problems)
  let sound = soundness(data, problems)
  if (sound !== undefined) {
    const config = data as GoloadFileConfig
    // Before the pools' own checks, which take PEM text; a pool whose file could not be read is not looked into further.
    problems.push(...readBackendTlsFiles(config, dirname(file), sound))
    sound = soundness(data, problems)!
    problems.push(...crossCheck(config, sound))
    const { problems: unusable, warnings } = checkCertificates(config, dirname(file), sound)
    problems.push(...unusable)
    if (problems.length === 0) for (const warning of warnings) warn?.(line(file, locate, warning))
  }
  if (problems.length > 0) throw new ConfigError(byLine(problems, locate).map((problem) => line(file, locate, problem)))
  return data as GoloadFileConfig
}

/**
 * Takes out the keys the schema did not know, once said: the checks beside it (a pool's own, as the plugin makes
 * them) would say each again in their own words. The file is refused anyway.
 */
function dropUnknownKeys (data: unknown, problems: Problem[]): void {
  for (const { path, unknownKey } of problems) {
    if (unknownKey !== true) continue
    let parent = data as Record<string | number, unknown> | undefined
    for (const key of path.slice(0, -1)) parent = parent?.[key] as Record<string | number, unknown> | undefined
    if (parent !== undefined && parent !== null) delete parent[path[path.length - 1]]
  }
}

/** Whether the schema found nothing wrong at or under a key path (one listener, one pool, the admin block). */
type Sound = (path: Array<string | number>) => boolean

// undefined when the file's top level is not even listeners and pools to look into.
function soundness (data: unknown, problems: Problem[]): Sound | undefined {
  const { listeners, pools } = (data ?? {}) as Partial<Record<string, unknown>>
  if (!Array.isArray(listeners) || pools === null || typeof pools !== 'object' || Array.isArray(pools)) return undefined
  // A misspelt key leaves the rest of its block as sound as it was: an operator learns of an unknown pool in the same
  // listener, or a bad URL in the same pool, in the same pass.
  const found = problems.filter((problem) => problem.unknownKey !== true).map((problem) => problem.path)
  return (path) => !found.some((at) => path.every((key, index) => at[index] === key))
}

// In the file's order, so a long list reads top to bottom; a problem the format gives no line to keeps its place.
function byLine (problems: Problem[], locate: Locate): Problem[] {
  const lineOf = (problem: Problem): number => problem.line ?? locate(problem.path) ?? Infinity
  return problems.map((problem, index) => ({ problem, index, at: lineOf(problem) }))
    .sort((a, b) => a.at === b.at || !Number.isFinite(a.at) || !Number.isFinite(b.at) ? a.index - b.index : a.at - b.at)
    .map(({ problem }) => problem)
}

/** Config files are a few KiB: past this, the file is not one (or not one a reload should spend its time on). */
export const maxConfigBytes = 4 * 1024 * 1024

/**
 * The file's text, if it is a regular file of at most maxConfigBytes. Opened without blocking: opening a FIFO for
 * reading waits for a writer (a reload, and the shutdown behind it, would wait forever), and a device like
 * /dev/zero never ends.
 */
async function readText (file: string): Promise<string> {
  let handle
  try {
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK)
  } catch (error) {
    throw new ConfigError([`${file}: cannot read the file: ${(error as Error).message}`])
  }
  try {
    const stats = await handle.stat()
    if (!stats.isFile()) throw new ConfigError([`${file}: not a regular file (${kindOf(stats)}): a config file must be one`])
    if (stats.size > maxConfigBytes) throw new ConfigError([`${file}: ${stats.size} bytes, more than a config file may have (${maxConfigBytes / 1024 / 1024} MiB)`])
    // What the file held when it was measured: one growing meanwhile is not read past that.
    const buffer = Buffer.alloc(stats.size)
    let length = 0
    for (let read = -1; read !== 0 && length < buffer.length; length += read) {
      ({ bytesRead: read } = await handle.read(buffer, length, buffer.length - length, length))
    }
    return buffer.toString('utf8', 0, length)
  } finally {
    await handle.close()
  }
}

function kindOf (stats: { isDirectory: () => boolean, isFIFO: () => boolean }): string {
  return stats.isDirectory() ? 'a directory' : stats.isFIFO() ? 'a FIFO' : 'a device or socket'
}

/** A route's mirror goes to one of the pools, and not to the route's own. */
function mirrorProblems (mirror: string, own: string[], names: string[], path: Problem['path']): Problem[] {
  if (own.includes(mirror)) return [{ path, message: `${JSON.stringify(mirror)} is the route's own pool: mirror to another one` }]
  return names.includes(mirror) ? [] : [{ path, message: noPoolNamed(mirror, names) }]
}

function noPoolNamed (name: string, names: string[]): string {
  const suggestion = closest(name, names)
  return `no pool named ${JSON.stringify(name)} (${suggestion === undefined ? `pools: ${names.join(', ')}` : `did you mean ${suggestion}?`})`
}

// What the schema cannot say: a listener's trusted proxies (trustProxy, proxyProtocol.trusted) are addresses, a
// route's pool is one of the pools, each pool is options the plugin accepts, an admin listener other machines can
// reach has a token, and the token is strong enough (a schema error would print it).
function crossCheck (config: GoloadFileConfig, sound: Sound): Problem[] {
  const problems: Problem[] = []
  const names = Object.keys(config.pools)
  problems.push(...listenerBlockProblems(config.listeners))
  // The blocks of one port are one server: a route in two of them is a duplicate too.
  const seenOn = new Map<string, Map<string, [number, number]>>()
  config.listeners.forEach((listener, index) => {
    if (!sound(['listeners', index])) return
    if (Array.isArray(listener.trustProxy)) {
      listener.trustProxy.forEach((entry, entryIndex) => {
        const problem = trustedProxyProblem(entry)
        if (problem !== undefined) problems.push({ path: ['listeners', index, 'trustProxy', entryIndex], message: problem })
      })
    }
    if (typeof listener.proxyProtocol === 'object') {
      listener.proxyProtocol.trusted?.forEach((entry, entryIndex) => {
        const problem = trustedProxyProblem(entry)
        if (problem !== undefined) problems.push({ path: ['listeners', index, 'proxyProtocol', 'trusted', entryIndex], message: problem })
      })
    }
    // The plugin refuses two routes no request could tell apart; say so here, with the file's line, for --check too.
    // A redirecting listener answers every request itself: routes beside it would never be reached.
    if (listener.redirectHttps !== undefined) {
      if (listener.routes !== undefined) problems.push({ path: ['listeners', index, 'routes'], message: 'a listener with redirectHttps answers every request with a redirect: remove its routes' })
      if (listener.tls !== undefined) problems.push({ path: ['listeners', index, 'redirectHttps'], message: 'a TLS listener already serves https: redirectHttps is for a plain one' })
      // Its clients are browsers and the like sent to https, and none of them speaks h2c.
      if (listener.http2 === true && listener.tls === undefined) problems.push({ path: ['listeners', index, 'http2'], message: 'a redirectHttps listener answers clients that do not speak h2c (browsers): remove http2, or give h2c clients a listener of their own' })
    } else if (listener.routes === undefined) {
      problems.push({ path: ['listeners', index, 'routes'], message: 'is required (or redirectHttps)' })
    }
    if (listener.tls !== undefined && listener.tls.certificates === undefined && listener.tls.acme === undefined) {
      problems.push({ path: ['listeners', index, 'tls'], message: 'needs certificates, acme, or both' })
    }
    if (listener.tls?.acme !== undefined) problems.push(...acmeProblems(config, index))
    const seen = seenOn.get(placeOf(listener)) ?? new Map<string, [number, number]>()
    seenOn.set(placeOf(listener), seen)
    listener.routes?.forEach((route, routeIndex) => {
      const at = ['listeners', index, 'routes', routeIndex]
      const unknownPool = (pool: string, path: Array<string | number>): void => {
        if (Object.hasOwn(config.pools, pool)) return
        problems.push({ path: [...at, ...path], message: noPoolNamed(pool, names) })
      }
      if ((route.pool === undefined) === (route.pools === undefined)) {
        problems.push(route.pool === undefined ? { path: [...at, 'pool'], message: 'is required (or pools: a weighted split)' } : { path: at, message: 'has pool and pools: give one of them' })
      } else if (route.pool !== undefined) {
        unknownPool(route.pool, ['pool'])
      } else {
        route.pools!.forEach((entry, entryIndex) => { unknownPool(entry.pool, ['pools', entryIndex, 'pool']) })
        try {
          checkSplit(route.pools)
        } catch (error) {
          const { option, message } = optionError(error)
          problems.push({ path: [...at, ...option], message: message.replace(/^\S+ /, '') })
        }
      }
      if (route.mirror !== undefined) problems.push(...mirrorProblems(route.mirror.pool, route.pool !== undefined ? [route.pool] : (route.pools ?? []).map((entry) => entry.pool), names, ['listeners', index, 'routes', routeIndex, 'mirror', 'pool']))
      const conditions = JSON.stringify([route.host?.toLowerCase(), route.path.replace(/\/+$/, ''), (route.methods ?? []).map((method) => method.toUpperCase()).sort(), Object.entries(route.headers ?? {}).map(([name, value]) => [name.toLowerCase(), String(value)]).sort()])
      const first = seen.get(conditions)
      if (first === undefined) {
        seen.set(conditions, [index, routeIndex])
      } else if (first[0] === index) {
        problems.push({ path: ['listeners', index, 'routes', routeIndex], message: `same host, path, methods and headers as routes[${first[1]}]: no request could reach both` })
      } else {
        problems.push({ path: ['listeners', index, 'routes', routeIndex], message: `same host, path, methods and headers as listeners[${first[0]}].routes[${first[1]}], on the same port: no request could reach both` })
      }
      // What the schema cannot say, as the plugin will (a timeWindow like '1 minute', allowList addresses).
      try {
        normalizeRateLimit(route.rateLimit)
      } catch (error) {
        const { option, message } = optionError(error)
        problems.push({ path: ['listeners', index, 'routes', routeIndex, ...option], message: message.replace(/^\S+ /, '') })
      }
    })
  })
  if (config.admin !== undefined && sound(['admin'])) problems.push(...adminProblems(config.admin, config.listeners))
  for (const name of names) {
    if (!sound(['pools', name])) continue
    try {
      normalizeOptions({ ...config.pools[name], name })
    } catch (error) {
      const { option, message } = optionError(error)
      problems.push({ path: ['pools', name, ...option], message: `${keyPath(['pools', name])}.${message}` })
    }
  }
  return problems
}

// Reachable from elsewhere only with a token, a strong one; on a port of its own (not a listener's, which it would
// take first or fail to bind).
function adminProblems (admin: AdminConfig, listeners: GoloadFileConfig['listeners']): Problem[] {
  const problems: Problem[] = []
  const problem = exposureProblem(admin.host, admin.token)
  if (problem !== undefined) problems.push({ path: ['admin', 'host'], message: problem })
  const weakToken = admin.token === undefined ? undefined : tokenProblem(admin.token)
  if (weakToken !== undefined) problems.push({ path: ['admin', 'token'], message: weakToken })
  const taken = listeners.findIndex((listener) => listener.port === admin.port)
  if (taken !== -1) problems.push({ path: ['admin', 'port'], message: `${admin.port} is also the port of listeners[${taken}]: give the admin a port of its own` })
  return problems
}

/**
 * Certificate files are read here, for --check and a reload alike: paths are made absolute (relative ones are the
 * config file's neighbours, so the config and its certificates move together), then each is read and checked.
 */
function checkCertificates (config: GoloadFileConfig, folder: string, sound: Sound): { problems: Problem[], warnings: Problem[] } {
  const problems: Problem[] = []
  const warnings: Problem[] = []
  config.listeners.forEach((listener, index) => {
    if (listener.tls === undefined || !sound(['listeners', index])) return
    for (const entry of listener.tls.certificates ?? []) {
      entry.cert = resolve(folder, entry.cert)
      entry.key = resolve(folder, entry.key)
    }
    const read = readCertificates(listener.tls.certificates ?? [], ['listeners', index, 'tls', 'certificates'])
    problems.push(...read.problems)
    warnings.push(...read.warnings)
    if (listener.tls.acme !== undefined) problems.push(...checkAcme(listener.tls.acme, folder, ['listeners', index, 'tls', 'acme']))
  })
  return { problems, warnings }
}

/** "fastify-goload: backends[0] is not a valid http(s) or h2c URL: ..." names the option first, where it names one. */
function optionError (error: unknown): { option: Array<string | number>, message: string } {
  const message = (error as Error).message.replace(/^fastify-goload: /, '')
  const option = /^[A-Za-z]+(\[\d+\])?(\.[A-Za-z]+(\[\d+\])?)*(?= )/.exec(message)?.[0]
  return { option: option === undefined ? [] : option.split(/\.|\[(\d+)\]/).filter(Boolean).map((key) => /^\d+$/.test(key) ? Number(key) : key), message }
}

function line (file: string, locate: Locate, problem: Problem): string {
  const at = locate(problem.path)
  const where = at === undefined ? file : `${file}:${at}`
  // The plugin's messages already start with the key path.
  if (problem.path[0] === 'pools' && problem.message.startsWith(`${keyPath(problem.path.slice(0, 2))}.`)) return `${where}: ${problem.message}`
  return `${where}: ${keyPath(problem.path) === '' ? '(top level)' : keyPath(problem.path)}: ${problem.message}`
}

async function isDirectory (path: string): Promise<boolean> {
  return await stat(path).then((stats) => stats.isDirectory(), () => false)
}
