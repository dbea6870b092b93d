import { byLoad, leastBusy } from './least-busy.js'
import type { Selector } from './selector.js'

// Power of two random choices on pending (Envoy's LEAST_REQUEST): two workers drawn at random, the less busy
// one goes. Several balancer processes, each with its own counts, then do not all rush to the same backend.
export const p2c: Selector = {
  compare: byLoad,
  load: leastBusy.load,
  choose (workers, length) {
    if (length === 1) return workers[0]
    const first = Math.floor(Math.random() * length)
    let second = Math.floor(Math.random() * (length - 1))
    if (second >= first) second++
    return byLoad(workers[first], workers[second]) <= 0 ? workers[first] : workers[second]
  }
}
