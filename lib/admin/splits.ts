import type { FastifyInstance } from 'fastify'
import { splitOf, type Split, type SplitSource } from '../policy/split.js'
import { adminRouteNotFound } from './not-found.js'

/** A split route as GET /routes, the snapshots and the status page show it. */
export interface RouteSnapshot {
  id: string
  pools: Array<{ pool: string, weight: number, configured: number, requests: number }>
}

export function routeSnapshot (split: Split): RouteSnapshot {
  return {
    id: split.id,
    pools: split.pools.map(({ name, weight, requests }) => ({ pool: name, weight, configured: split.configured.get(name)!, requests }))
  }
}

/**
 * GET /routes, and PUT /routes/<id>/weights: a progressive rollout without a reload. Like the backend actions, a
 * change lasts until the next reload, which brings back the file's weights. The id is one wildcard, as a backend's
 * URL is, because it holds `/` (`8080:/api`): as it is or URL-encoded.
 */
export function splitActions (app: FastifyInstance, source: SplitSource): void {
  app.get('/routes', async () => ({ routes: [...source()].map(routeSnapshot) }))

  app.put<{ Params: { '*': string } }>('/routes/*', async (request, reply) => {
    const action = /^(.+)\/weights$/.exec(request.params['*'])
    if (action === null) return adminRouteNotFound(request, reply)
    const split = splitOf([...source()], action[1])
    split.setWeights(request.body)
    request.log.info({ route: split.id, weights: Object.fromEntries(split.pools.map((pool) => [pool.name, pool.weight])) }, 'goload: split weights changed')
    return routeSnapshot(split)
  })
}
