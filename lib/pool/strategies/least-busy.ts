import type { Comparator, Selector } from './selector.js'

// Lowest key first; ties fall to the lower weighted turn (least recently chosen, as nginx and HAProxy do),
// then to the order backends were given in, so the order is total and equally idle backends take turns.
export const byLoad: Comparator = (a, b) => (a.load - b.load) || (a.turn - b.turn) || (a.ordinal - b.ordinal)

export const leastBusy: Selector = {
  compare: byLoad,
  // HAProxy leastconn's pending / weight.
  load: (worker) => worker.pending / worker.effectiveWeight
}
