import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'

// V8's gc(), without running the test file under --expose-gc: the flag set at run time exposes it to a new context.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/**
 * A full collection, after the current job: V8 keeps a WeakRef's target alive until the job that made or read the
 * WeakRef has ended, so collecting in that same job would prove nothing.
 */
export async function collectGarbage (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  await new Promise((resolve) => setImmediate(resolve))
  gc()
}

/** How many of these are still held by something. */
export function stillHeld (refs: Array<WeakRef<object>>): number {
  return refs.filter((ref) => ref.deref() !== undefined).length
}
