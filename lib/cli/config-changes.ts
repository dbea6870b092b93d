import { serversOf, serverSettings, placeOf } from '../config/listener-blocks.js'
import type { GoloadFileConfig, ListenerConfig } from '../config/schema.js'

type PoolFile = GoloadFileConfig['pools'][string]

/**
 * What a reload changed, as one line for the log: `pool api: +1 backend, -0; listener 8443 added`, or `nothing
 * changed`. Backends are told apart by id (their URL unless given one); a pool's other settings by key.
 */
export function describeChanges (before: GoloadFileConfig, after: GoloadFileConfig): string {
  const changes: string[] = []
  for (const name of new Set([...Object.keys(before.pools), ...Object.keys(after.pools)])) {
    const [old, now] = [before.pools[name], after.pools[name]]
    if (old === undefined) changes.push(`pool ${name} added (${now.backends === undefined ? 'backends by discovery' : count(now.backends.length, 'backend')})`)
    else if (now === undefined) changes.push(`pool ${name} removed`)
    else changes.push(...poolChanges(name, old, now))
  }
  const servers = (config: GoloadFileConfig): Map<string, ListenerConfig> => new Map(serversOf(config.listeners).map(({ listener }) => [placeOf(listener), listener]))
  const [old, now] = [servers(before), servers(after)]
  for (const place of new Set([...old.keys(), ...now.keys()])) {
    const [was, is] = [old.get(place), now.get(place)]
    const name = `listener ${nameOf((was ?? is)!)}`
    if (was === undefined) changes.push(`${name} added`)
    else if (is === undefined) changes.push(`${name} removed`)
    else {
      const changed = [...serverSettings, 'routes' as const].filter((key) => JSON.stringify(was[key]) !== JSON.stringify(is[key]))
      if (changed.length > 0) changes.push(`${name}: ${changed.join(', ')} changed`)
    }
  }
  // The apps a reload builds take it (one exporter each); the old ones export their last spans as they close.
  if (JSON.stringify(before.tracing) !== JSON.stringify(after.tracing)) changes.push('tracing changed')
  return changes.length === 0 ? 'nothing changed' : changes.join('; ')
}

function poolChanges (name: string, old: PoolFile, now: PoolFile): string[] {
  const [was, is] = [byId(old.backends), byId(now.backends)]
  const added = [...is.keys()].filter((id) => !was.has(id)).length
  const removed = [...was.keys()].filter((id) => !is.has(id)).length
  const changed = [...is.keys()].filter((id) => was.has(id) && was.get(id) !== is.get(id)).length
  const { backends: _old, ...oldSettings } = old
  const { backends: _now, ...newSettings } = now
  const settings = [...new Set([...Object.keys(oldSettings), ...Object.keys(newSettings)])]
    .filter((key) => JSON.stringify(oldSettings[key as keyof typeof oldSettings]) !== JSON.stringify(newSettings[key as keyof typeof newSettings]))
  if (added === 0 && removed === 0 && changed === 0 && settings.length === 0) return []
  const parts = [`+${count(added, 'backend')}`.replace(/^\+0 backends$/, '+0'), `-${removed}`]
  if (changed > 0) parts.push(`${changed} changed`)
  if (settings.length > 0) parts.push(`${settings.join(', ')} changed`)
  return [`pool ${name}: ${parts.join(', ')}`]
}

/** Each backend's written form, by its id: the URL, unless it is given one. */
function byId (backends: PoolFile['backends'] = []): Map<string, string> {
  return new Map(backends.map((backend) => typeof backend === 'string' ? [backend, backend] : [backend.id ?? backend.url, JSON.stringify(backend)]))
}

function count (value: number, noun: string): string {
  return `${value} ${noun}${value === 1 ? '' : 's'}`
}

/** The port alone where the listener is on every address (the default), else host:port. */
function nameOf (listener: ListenerConfig): string {
  return listener.host === '0.0.0.0' ? String(listener.port) : `${listener.host}:${listener.port}`
}
