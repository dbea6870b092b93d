import type { Pool } from '../pool/pool.js'

/**
 * Why a request chosen for mirroring was not sent: its body is over maxBody, too many copies were in flight, the
 * mirror pool had no backend with room, or the client's body did not come whole.
 */
export type MirrorSkipReason = 'too_large' | 'in_flight' | 'no_backend' | 'incomplete_body'
export const mirrorSkipReasons: MirrorSkipReason[] = ['too_large', 'in_flight', 'no_backend', 'incomplete_body']

/**
 * What happened to the copies a pool was sent, whichever routes mirror to it. Each chosen request ends in one of
 * them: sent (the mirror backend answered, whatever its status), failed (no answer: refused, reset, timed out), or
 * skipped (never sent).
 */
export interface MirrorCounts {
  sent: number
  failed: number
  skipped: Record<MirrorSkipReason, number>
}

// Kept beside the pool rather than in it: the pool knows no HTTP. Metrics and the status page read them.
const countsOfPool = new WeakMap<Pool, MirrorCounts>()

/** The counts of copies sent to this pool; undefined while no route mirrors to it. */
export function mirrorCounts (pool: Pool): MirrorCounts | undefined {
  return countsOfPool.get(pool)
}

/** The counts of this mirror pool, made by the first route that mirrors to it. */
export function mirrorCountsOf (pool: Pool): MirrorCounts {
  let counts = countsOfPool.get(pool)
  if (counts === undefined) {
    counts = { sent: 0, failed: 0, skipped: { too_large: 0, in_flight: 0, no_backend: 0, incomplete_body: 0 } }
    countsOfPool.set(pool, counts)
  }
  return counts
}
