import type { Strategy } from '../../options.js'
import { leastBusy } from './least-busy.js'
import { p2c } from './p2c.js'
import { peakEwmaSelector } from './peak-ewma.js'
import { roundRobin } from './round-robin.js'
import type { Selector } from './selector.js'

export type { Comparator, Selector } from './selector.js'
export { fade, peakEwma } from './peak-ewma.js'

// Keyed by options' list of names: a strategy without a selector, or a selector without a name, does not compile.
export const selectors: Record<Strategy, Selector> = {
  'least-busy': leastBusy,
  'round-robin': roundRobin,
  p2c,
  'peak-ewma': peakEwmaSelector
}
