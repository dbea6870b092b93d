import type { FastifyInstance } from 'fastify'
import { UnknownBackendError, UnknownPoolError } from '../errors.js'
import type { BackendOptions } from '../options.js'
import type { BackendStats } from '../pool/pool.js'
import { PoolHandle, type PoolEntry } from '../registry.js'
import { adminRouteNotFound } from './not-found.js'

interface Params { pool: string, '*': string }

/**
 * The runtime changes: add, remove, drain and undrain a backend, through the same GoloadPool methods a plugin user
 * calls, on the pools live now. Like HAProxy's runtime API, they last until the next reload.
 *
 * A backend is named after `/backends/` by its id or its URL, URL-encoded or as it is: the rest of the path is one
 * wildcard, so `/pools/web/backends/http://10.0.0.1:3000/drain` is found, where a `:id` parameter would stop at the
 * URL's first `/` and leave Fastify's `Route POST:/pools/... not found`.
 */
export function actions (app: FastifyInstance, source: () => Iterable<PoolEntry>): void {
  const handle = (name: string): PoolHandle => {
    for (const entry of source()) if (entry.name === name) return new PoolHandle(entry.name, entry.pool, entry.config)
    throw new UnknownPoolError(JSON.stringify(name))
  }

  app.post<{ Params: Params }>('/pools/:pool/backends', async (request, reply) => {
    const pool = handle(request.params.pool)
    pool.add(request.body as BackendOptions, 'body')
    reply.code(201)
    return pool.stats().backends.at(-1)
  })

  app.delete<{ Params: Params }>('/pools/:pool/backends/*', async (request, reply) => {
    if (request.params['*'] === '') return adminRouteNotFound(request, reply)
    const pool = handle(request.params.pool)
    const backend = backendOf(pool, request.params['*'])
    // Answers once its requests in flight have ended and it has left the pool.
    await pool.remove(backend.id)
    return { id: backend.id, removed: true }
  })

  app.post<{ Params: Params }>('/pools/:pool/backends/*', async (request, reply) => {
    const action = /^(.+)\/(drain|undrain)$/.exec(request.params['*'])
    if (action === null) return adminRouteNotFound(request, reply)
    const pool = handle(request.params.pool)
    const { id } = backendOf(pool, action[1])
    if (action[2] === 'drain') pool.drain(id)
    else pool.undrain(id)
    // A backend being removed stays drained.
    return { id, draining: backendOf(pool, id).draining }
  })
}

/**
 * The backend `name` names, as stats() shows it: its id, its URL, or its URL without the scheme (`10.0.0.1:3000`)
 * where only one backend has that address. An unknown one is answered with the names there are.
 */
function backendOf (pool: PoolHandle, name: string): BackendStats {
  const { backends } = pool.stats()
  const found = backends.find((backend) => backend.id === name || backend.url === name) ??
    onlyOne(backends.filter((backend) => backend.url.replace(/^[a-z0-9]+:\/\//, '') === name))
  if (found !== undefined) return found
  const names = backends.map((backend) => backend.id === backend.url ? backend.url : `${backend.id} (${backend.url})`)
  throw new UnknownBackendError(`${JSON.stringify(name)} in pool ${JSON.stringify(pool.name)}: name one by its id or its URL, as is or URL-encoded (${names.length === 0 ? 'it has none' : `it has ${names.join(', ')}`})`)
}

function onlyOne<T> (items: T[]): T | undefined {
  return items.length === 1 ? items[0] : undefined
}
