import { isIP } from 'node:net'

/**
 * The names @fastify/proxy-addr (Fastify's trustProxy) knows for the usual private ranges, and the ranges: a
 * listener's proxyProtocol `trusted` reads the same way.
 */
export const namedRanges: Readonly<Record<string, readonly string[]>> = {
  loopback: ['127.0.0.0/8', '::1/128'],
  linklocal: ['169.254.0.0/16', 'fe80::/10'],
  uniquelocal: ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']
}

/**
 * What is wrong with one `trustProxy` entry, or undefined when Fastify will take it: an address, a CIDR, or one of
 * proxy-addr's names. Checked here so that a typo is an error at its line, not a crash when the app is built.
 */
export function trustedProxyProblem (entry: string): string | undefined {
  if (Object.hasOwn(namedRanges, entry)) return undefined
  const [address, prefix, extra] = entry.split('/')
  const family = isIP(address)
  const bits = family === 4 ? 32 : 128
  const valid = family !== 0 && extra === undefined && (prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits))
  return valid ? undefined : `must be an IP address, a CIDR (10.0.0.0/8) or one of loopback, linklocal, uniquelocal, got ${JSON.stringify(entry)}`
}
