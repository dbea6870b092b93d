import { leastBusy } from './least-busy.js'
import type { Selector } from './selector.js'

// Weighted turns only, whatever the load: the baseline least-busy is measured against.
export const roundRobin: Selector = {
  compare: (a, b) => (a.turn - b.turn) || (a.ordinal - b.ordinal),
  load: leastBusy.load
}
