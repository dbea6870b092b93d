import { lookup } from 'node:dns/promises'
import net from 'node:net'

// One look at each backend when a config starts serving (start, reload): a typo in a host name or a port is said
// at once, before the first 502. Backends come and go, so this only warns: nothing waits for it, nothing fails by it.

/** How long a backend has to resolve and accept a connection before it is said not to. */
export const defaultReachTimeout = 1000

/** A backend as a config lists it; `resolve` ones belong to DNS discovery, which says when they fail. */
type ListedBackend = string | { url: string, resolve?: unknown }

/**
 * Resolves and connects to every backend the pools list, all at once, and calls `warn` once for each that does not
 * resolve, refuses connections or has not accepted one within `timeout` ms (a backend in several pools is said once,
 * naming them). Returns a stop: what is still under way is dropped, unsaid (a shutdown, or the next reload's check).
 */
export function warnUnreachable (pools: Record<string, { backends?: ListedBackend[] }>, warn: (message: string) => void, timeout = defaultReachTimeout): () => void {
  const poolsOf = new Map<string, string[]>()
  // A pool found by Kubernetes discovery lists none: its endpoints come and go with the cluster.
  for (const [name, { backends = [] }] of Object.entries(pools)) {
    for (const backend of backends) {
      if (typeof backend === 'object' && backend.resolve !== undefined) continue
      const url = typeof backend === 'string' ? backend : backend.url
      poolsOf.set(url, [...poolsOf.get(url) ?? [], name])
    }
  }
  const controller = new AbortController()
  for (const [url, names] of poolsOf) {
    reach(url, timeout, controller.signal).then((problem) => {
      if (problem !== undefined && !controller.signal.aborted) warn(`goload: backend ${url} (pool${names.length > 1 ? 's' : ''} ${names.join(', ')}) ${problem}: its requests will fail until it is up`)
    }, () => {})
  }
  return () => { controller.abort() }
}

/** What is wrong with reaching `url`, or undefined once it has accepted a connection. */
async function reach (url: string, timeout: number, signal: AbortSignal): Promise<string | undefined> {
  const { hostname, port, protocol } = new URL(url)
  const host = hostname.replace(/^\[|\]$/g, '')
  const deadline = Date.now() + timeout
  let address = host
  if (net.isIP(host) === 0) {
    try {
      address = (await within(lookup(host), timeout, signal)).address
    } catch (error) {
      if (error === timedOut) return `did not resolve within ${timeout} ms`
      return `does not resolve (${(error as NodeJS.ErrnoException).code ?? (error as Error).message} ${host})`
    }
  }
  const socket = net.connect({ host: address, port: Number(port === '' ? (protocol === 'https:' ? 443 : 80) : port) })
  socket.unref()
  try {
    await within(new Promise<void>((resolve, reject) => { socket.once('connect', resolve).once('error', reject) }), Math.max(0, deadline - Date.now()), signal)
    return undefined
  } catch (error) {
    if (error === timedOut) return `did not accept a connection within ${timeout} ms`
    const { code, message } = error as NodeJS.ErrnoException
    return code === 'ECONNREFUSED' ? 'refuses connections (ECONNREFUSED)' : `cannot be connected to (${code ?? message})`
  } finally {
    socket.destroy()
  }
}

const timedOut = new Error('timed out')

/** `promise`, or a rejection with timedOut past `ms`, or when `signal` aborts (then with its reason). */
async function within<T> (promise: Promise<T>, ms: number, signal: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  let onAbort = (): void => {}
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => { reject(timedOut) }, ms)
        timer.unref()
        onAbort = () => { reject(signal.reason) }
        if (signal.aborted) onAbort()
        else signal.addEventListener('abort', onAbort, { once: true })
      })
    ])
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
  }
}
