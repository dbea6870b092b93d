import { defaults, type Strategy } from '../../options.js'
import { HashRing } from './hash.js'
import { leastBusy } from './least-busy.js'
import { p2c } from './p2c.js'
import { PeakEwma } from './peak-ewma.js'
import { roundRobin } from './round-robin.js'
import type { SelectorFactory } from './selector.js'

export type { Comparator, Selector, SelectorContext } from './selector.js'

// Keyed by options' list of names: a strategy without a selector, or a selector without a name, does not compile.
export const selectors: Record<Strategy, SelectorFactory> = {
  'least-busy': () => leastBusy,
  'round-robin': () => roundRobin,
  p2c: () => p2c,
  // Peak-EWMA keeps a median and a sample count per pool: each pool has its own.
  'peak-ewma': (pool, settings) => new PeakEwma(pool, settings.ewmaDecay),
  // The ring is the pool's own.
  hash: (pool, settings) => new HashRing(pool, settings.balanceFactor ?? defaults.balanceFactor)
}
