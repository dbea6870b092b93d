import type { IncomingHttpHeaders } from 'node:http'
import { InvalidOptionError, UnknownRouteError } from '../errors.js'
import { splitWeightsProblem } from '../options-check.js'
import type { Forwarder } from '../proxy/forward.js'

/** Where the admin and the metrics find the split routes, walked on every use: a reload replaces them (and their weights). */
export type SplitSource = () => Iterable<Split>

/** One pool of a split, as the admin API and the status page show it. */
export interface SplitPool {
  readonly name: string
  readonly forwarder: Forwarder
  weight: number
  /** Smooth weighted round-robin's running score. */
  current: number
  /** Requests the split sent to this pool. */
  requests: number
}

/**
 * A route's weighted split between pools (a canary beside the stable pool), by nginx's smooth weighted round-robin:
 * deterministic, so 70/30 sends exactly 7 of every 10 requests to the first pool, interleaved rather than in runs.
 * A pool of weight 0 gets nothing. A client whose sticky cookie names a backend of one of the pools (of weight above
 * 0) stays on that pool, so it stays on canary or on stable; that pool's own sticky cookie then picks the backend.
 */
export class Split {
  /** What the admin API and the status page call the route. */
  readonly id: string
  readonly pools: readonly SplitPool[]
  /** The weights the route was registered with (a reload of the file comes back to them). */
  readonly configured: ReadonlyMap<string, number>
  /** The pools with a sticky cookie: read before the weights. */
  readonly #sticky: SplitPool[]

  constructor (id: string, pools: Array<{ name: string, forwarder: Forwarder, weight: number }>) {
    this.id = id
    this.pools = pools.map(({ name, forwarder, weight }) => ({ name, forwarder, weight, current: 0, requests: 0 }))
    this.configured = new Map(pools.map(({ name, weight }) => [name, weight]))
    this.#sticky = this.pools.filter((pool) => pool.forwarder.sticky !== undefined)
    this.#reset()
  }

  /** The pool for this request: the one its sticky cookie pins it to, else the next by weight. */
  choose (headers: IncomingHttpHeaders): Forwarder {
    const pool = (this.#sticky.length === 0 ? undefined : this.#pinned(headers)) ?? this.#next()
    pool.requests++
    return pool.forwarder
  }

  /** New weights for some or all of the pools, by name, from the next request on. */
  setWeights (weights: unknown): void {
    if (weights === null || typeof weights !== 'object' || Array.isArray(weights)) {
      throw new InvalidOptionError(`weights must be an object of pool names to weights, like { "${this.pools[0].name}": 90 }`)
    }
    const names = this.pools.map((pool) => pool.name)
    const next = new Map(this.pools.map((pool) => [pool.name, pool.weight]))
    for (const [name, weight] of Object.entries(weights)) {
      if (!next.has(name)) throw new InvalidOptionError(`route ${JSON.stringify(this.id)} has no pool ${JSON.stringify(name)} (its pools: ${names.join(', ')})`)
      if (!Number.isSafeInteger(weight) || (weight as number) < 0) throw new InvalidOptionError(`weight of ${name} must be a whole number (0 or more), got ${JSON.stringify(weight)}`)
      next.set(name, weight as number)
    }
    const problem = splitWeightsProblem([...next.values()])
    if (problem !== undefined) throw new InvalidOptionError(`weights ${problem}`)
    for (const pool of this.pools) pool.weight = next.get(pool.name)!
    this.#reset()
  }

  #reset (): void {
    for (const pool of this.pools) pool.current = 0
  }

  /**
   * nginx's ngx_http_upstream_get_peer: each pool gains its weight, the highest is taken and loses the total. A pool
   * whose backends are all drained or removed is passed over, as nginx passes over a peer that is down; when every
   * pool is, the first answers (503, no backend).
   */
  #next (): SplitPool {
    let best: SplitPool | undefined
    let total = 0
    for (const pool of this.pools) {
      if (pool.weight === 0 || pool.forwarder.pool.empty) continue
      pool.current += pool.weight
      total += pool.weight
      if (best === undefined || pool.current > best.current) best = pool
    }
    if (best === undefined) return this.pools[0]
    best.current -= total
    return best
  }

  #pinned (headers: IncomingHttpHeaders): SplitPool | undefined {
    if (headers.cookie === undefined) return undefined
    for (const pool of this.#sticky) {
      // A pool turned down to 0 lets its clients go, as Traefik#1939 asked, and so does one with every backend
      // drained: they move by weight. One whose backend alone left keeps them, on another of its backends.
      if (pool.weight > 0 && pool.forwarder.sticky!.known(headers) !== undefined && !pool.forwarder.pool.empty) return pool
    }
    return undefined
  }
}

/** The split route with this id; else FST_GOLOAD_UNKNOWN_ROUTE, listing the ids there are. */
export function splitOf (splits: Split[], id: string): Split {
  const split = splits.find((each) => each.id === id)
  if (split === undefined) throw new UnknownRouteError(`${JSON.stringify(id)} (routes with pools: ${splits.map((each) => each.id).join(', ') || 'none'})`)
  return split
}
