import type { FastifyInstance } from 'fastify'
import { UnknownPoolError } from '../errors.js'
import type { BackendOptions } from '../options.js'
import type { BackendStats } from '../pool/pool.js'
import { PoolHandle, type PoolEntry } from '../registry.js'

interface Params { pool: string, id: string }

/**
 * The runtime changes: add, remove, drain and undrain a backend, through the same GoloadPool methods a plugin user
 * calls, on the pools live now. Like HAProxy's runtime API, they last until the next reload.
 */
export function actions (app: FastifyInstance, source: () => Iterable<PoolEntry>): void {
  const handle = (name: string): PoolHandle => {
    for (const entry of source()) if (entry.name === name) return new PoolHandle(entry.name, entry.pool, entry.config)
    throw new UnknownPoolError(JSON.stringify(name))
  }
  // The backend `urlOrId` names, as stats() shows it: the pool's own find() threw already if there is none.
  const backendOf = (pool: PoolHandle, urlOrId: string): BackendStats | undefined => pool.stats().backends.find((backend) => backend.id === urlOrId || backend.url === urlOrId)

  app.post<{ Params: Params }>('/pools/:pool/backends', async (request, reply) => {
    const pool = handle(request.params.pool)
    pool.add(request.body as BackendOptions, 'body')
    reply.code(201)
    return pool.stats().backends.at(-1)
  })

  app.delete<{ Params: Params }>('/pools/:pool/backends/:id', async (request) => {
    const pool = handle(request.params.pool)
    const backend = backendOf(pool, request.params.id)
    // Answers once its requests in flight have ended and it has left the pool.
    await pool.remove(request.params.id)
    return { id: backend!.id, removed: true }
  })

  for (const draining of [true, false]) {
    app.post<{ Params: Params }>(`/pools/:pool/backends/:id/${draining ? 'drain' : 'undrain'}`, async (request) => {
      const pool = handle(request.params.pool)
      if (draining) pool.drain(request.params.id)
      else pool.undrain(request.params.id)
      // A backend being removed stays drained.
      const backend = backendOf(pool, request.params.id)!
      return { id: backend.id, draining: backend.draining }
    })
  }
}
