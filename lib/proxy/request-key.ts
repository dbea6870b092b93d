import { parse as parseCookie } from 'cookie'
import type { FastifyRequest } from 'fastify'
import type { HashOn } from '../options.js'
import { hash32 } from '../pool/strategies/hash.js'

/** The hash of a request's key for strategy: 'hash', or undefined when the request has none. */
export type RequestKey = (request: FastifyRequest) => number | undefined

/**
 * Made once per pool from `hashOn`. A missing or empty header or cookie is no key: such a request goes to the least
 * busy backend. Cookie values are taken as sent, not URL-decoded: the key only has to be the same each time.
 */
export function requestKey (hashOn: HashOn): RequestKey {
  if (hashOn === 'ip') return (request) => hashOf(request.ip)
  if ('header' in hashOn) {
    const { header } = hashOn
    return (request) => hashOf(request.headers[header])
  }
  const { cookie } = hashOn
  return (request) => {
    const { headers } = request
    return headers.cookie === undefined ? undefined : hashOf(parseCookie(headers.cookie, asSent)[cookie])
  }
}

const asSent = { decode: (value: string) => value }

function hashOf (value: unknown): number | undefined {
  return typeof value === 'string' && value !== '' ? hash32(value) : undefined
}
