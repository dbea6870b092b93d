import { createHash, timingSafeEqual } from 'node:crypto'
import { BlockList, isIP } from 'node:net'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { UnauthorizedError } from '../errors.js'

// 127.0.0.0/8 and ::1; BlockList also matches their IPv4-mapped forms (::ffff:127.0.0.1).
const loopback = new BlockList()
loopback.addSubnet('127.0.0.0', 8, 'ipv4')
loopback.addAddress('::1', 'ipv6')

/** Only this machine can reach the host: 127.0.0.0/8, ::1, ::ffff:127.x, localhost. 0.0.0.0 and :: are every interface. */
export function isLoopback (host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true
  const family = isIP(host)
  return family !== 0 && loopback.check(host, family === 6 ? 'ipv6' : 'ipv4')
}

/** Why the admin must not listen on `host` without a token, or undefined when it may. */
export function exposureProblem (host: string, token: string | undefined): string | undefined {
  if (token !== undefined || isLoopback(host)) return undefined
  return `the admin listener on ${host} is reachable from other machines: set a token (GOLOAD_ADMIN_TOKEN), or listen on 127.0.0.1`
}

/** Shortest admin token accepted: 16 random hex digits are 64 bits, beyond what guessing over HTTP can reach. */
export const tokenMinLength = 16

/**
 * What is wrong with `token`, or undefined if nothing: a short one can be guessed, one with whitespace was mangled
 * on the way (a line break from a file, a quoted space). Says nothing of the token itself, which a log may keep.
 */
export function tokenProblem (token: string): string | undefined {
  if (token.length < tokenMinLength) return `must be at least ${tokenMinLength} characters, has ${token.length}: use a random one, such as \`openssl rand -hex 32\``
  if (/\s/.test(token)) return 'must not contain whitespace (a line break or a space copied with it?)'
  return undefined
}

const digest = (text: string): Buffer => createHash('sha256').update(text).digest()

/**
 * An onRequest hook that lets through only requests carrying `Authorization: Bearer <token>`. The digests are
 * compared, not the strings: timingSafeEqual wants equal lengths, and a digest's says nothing of the token's.
 */
export function bearer (token: string): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
  const expected = digest(token)
  return async (request, reply) => {
    const given = /^Bearer +(.+)$/i.exec(request.headers.authorization ?? '')?.[1]
    if (given !== undefined && timingSafeEqual(digest(given), expected)) return
    reply.header('www-authenticate', 'Bearer realm="goload admin"')
    throw new UnauthorizedError()
  }
}
