import type { Strategy } from './options.js'
import type { Worker } from './pool.js'

export type Comparator = (a: Worker, b: Worker) => number

// Every strategy is a heap order: the worker at the top is the one chosen.
// Ties fall to the lower weighted turn (least recently chosen, as nginx and HAProxy do),
// then to the order backends were given in, so the order is total and equally idle backends take turns.
export const comparators: Record<Strategy, Comparator> = {
  // Fewest requests in flight for its weight: HAProxy leastconn's pending / weight.
  'least-busy': (a, b) => (a.load - b.load) || (a.turn - b.turn) || (a.ordinal - b.ordinal),
  // Weighted turns only, whatever the load: the baseline least-busy is measured against.
  'round-robin': (a, b) => (a.turn - b.turn) || (a.ordinal - b.ordinal)
}
