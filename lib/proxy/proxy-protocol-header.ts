import { isIPv4, isIPv6 } from 'node:net'

// The PROXY protocol header (haproxy.org's proxy-protocol.txt, versions 1 and 2), parsed by hand. The npm parsers
// looked at do not fit: proxy-protocol-js (v4.0.6) ignores v2's length field (the TLVs and the request after them come
// back as one `data`), parses no TLV, and cannot tell a header cut short from a broken one; @balena/proxy-protocol-
// parser (1.0.2, one release) checks no address, takes no TLV and no LOCAL command either; findhit-proxywrap patches
// net.Server and is no longer maintained. A header arrives in pieces, and what is not yet a header must be told
// from what never will be: that is most of the work, and it is small.

/** v1's longest line, CRLF included (the spec's 107 bytes: "PROXY TCP6" and two full IPv6 addresses and ports). */
export const maxV1Length = 107
/** The longest v2 header taken, TLVs included: nginx's bound too (NGX_PROXY_PROTOCOL_MAX_HEADER). */
export const maxV2Length = 4096

const v1Prefix = Buffer.from('PROXY ', 'latin1')
const v2Signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a])
const v2Fixed = 16
// Address block sizes by v2 address family (AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX).
const addressLengths = [0, 12, 36, 216]

/** Where the connection really comes from, as the balancer in front saw it. */
export interface ProxySource {
  address: string
  port: number
  family: 'IPv4' | 'IPv6'
}

/** One v2 Type-Length-Value field (PP2_TYPE_AUTHORITY 0x02, PP2_TYPE_SSL 0x20, AWS's 0xEA…), value unread. */
export interface ProxyTlv {
  type: number
  value: Buffer
}

export interface ProxyHeader {
  version: 1 | 2
  /** Bytes the header takes: what follows is the client's own (an HTTP request, a TLS ClientHello). */
  length: number
  /**
   * The client, or undefined where the connection's own peer is the one to believe: a v2 LOCAL header (the
   * balancer's own health check), v1 UNKNOWN, or an address family with no IP address (AF_UNSPEC, AF_UNIX).
   */
  source: ProxySource | undefined
  tlvs: ProxyTlv[]
}

export class ProxyHeaderError extends Error {}

/**
 * The header at the start of `bytes` (one byte at least), or undefined while what came so far could still become
 * one. Throws ProxyHeaderError as soon as it cannot: the first byte decides the version, so an HTTP request or a
 * TLS ClientHello sent without a header is refused at its first byte.
 */
export function parseProxyHeader (bytes: Buffer): ProxyHeader | undefined {
  if (bytes[0] === v2Signature[0]) return parseV2(bytes)
  if (bytes[0] === v1Prefix[0]) return parseV1(bytes)
  throw new ProxyHeaderError('no PROXY protocol header')
}

function startsLike (bytes: Buffer, expected: Buffer): boolean {
  const length = Math.min(bytes.length, expected.length)
  return bytes.subarray(0, length).equals(expected.subarray(0, length))
}

function parseV1 (bytes: Buffer): ProxyHeader | undefined {
  if (!startsLike(bytes, v1Prefix)) throw new ProxyHeaderError('not a PROXY protocol v1 line')
  const end = bytes.subarray(0, maxV1Length).indexOf('\r\n')
  if (end === -1) {
    if (bytes.length >= maxV1Length) throw new ProxyHeaderError(`PROXY protocol v1 line longer than ${maxV1Length} bytes`)
    return undefined
  }
  const line = bytes.toString('latin1', 0, end)
  if (!/^[\x20-\x7e]*$/.test(line)) throw new ProxyHeaderError('PROXY protocol v1 line with a control character')
  const header = { version: 1 as const, length: end + 2, tlvs: [] }
  const [, protocol, ...fields] = line.split(' ')
  // "PROXY UNKNOWN" may be followed by anything, which the receiver ignores.
  if (protocol === 'UNKNOWN') return { ...header, source: undefined }
  const [source, destination, sourcePort, destinationPort] = fields
  const isAddress = protocol === 'TCP4' ? isIPv4 : protocol === 'TCP6' ? isIPv6 : undefined
  if (isAddress === undefined) throw new ProxyHeaderError(`PROXY protocol v1 line for ${JSON.stringify(protocol)}: TCP4, TCP6 or UNKNOWN expected`)
  if (fields.length !== 4 || !isAddress(source) || !isAddress(destination) || !isPort(sourcePort) || !isPort(destinationPort)) {
    throw new ProxyHeaderError(`PROXY protocol v1 line not "PROXY ${protocol} <source> <destination> <source port> <destination port>"`)
  }
  return { ...header, source: { address: source, port: Number(sourcePort), family: protocol === 'TCP4' ? 'IPv4' : 'IPv6' } }
}

function isPort (text: string): boolean {
  return /^(0|[1-9]\d{0,4})$/.test(text) && Number(text) <= 65535
}

function parseV2 (bytes: Buffer): ProxyHeader | undefined {
  if (!startsLike(bytes, v2Signature)) throw new ProxyHeaderError('not a PROXY protocol v2 signature')
  if (bytes.length < v2Fixed) return undefined
  const version = bytes[12] >> 4
  const command = bytes[12] & 0x0f
  const family = bytes[13] >> 4
  const transport = bytes[13] & 0x0f
  const length = v2Fixed + bytes.readUInt16BE(14)
  if (version !== 2) throw new ProxyHeaderError(`PROXY protocol v2 signature with version ${version}`)
  if (command > 1) throw new ProxyHeaderError(`PROXY protocol v2 command ${command}: LOCAL (0) or PROXY (1) expected`)
  if (family >= addressLengths.length || transport > 2) throw new ProxyHeaderError(`PROXY protocol v2 address family and transport 0x${bytes[13].toString(16)}`)
  if (length > maxV2Length) throw new ProxyHeaderError(`PROXY protocol v2 header of ${length} bytes, more than ${maxV2Length}`)
  if (bytes.length < length) return undefined
  // LOCAL: the balancer speaking for itself (its health checks); whatever follows the command is to be ignored.
  if (command === 0) return { version: 2, length, source: undefined, tlvs: [] }
  const addressLength = addressLengths[family]
  if (length - v2Fixed < addressLength) throw new ProxyHeaderError(`PROXY protocol v2 header of ${length} bytes, too short for its addresses`)
  const block = bytes.subarray(v2Fixed, v2Fixed + addressLength)
  const source: ProxySource | undefined = family === 1
    ? { address: [...block.subarray(0, 4)].join('.'), port: block.readUInt16BE(8), family: 'IPv4' }
    : family === 2
      ? { address: ipv6(block.subarray(0, 16)), port: block.readUInt16BE(32), family: 'IPv6' }
      : undefined
  return { version: 2, length, source, tlvs: tlvsOf(bytes.subarray(v2Fixed + addressLength, length)) }
}

function tlvsOf (bytes: Buffer): ProxyTlv[] {
  const tlvs: ProxyTlv[] = []
  for (let at = 0; at < bytes.length;) {
    if (bytes.length - at < 3) throw new ProxyHeaderError('PROXY protocol v2 TLV cut short')
    const end = at + 3 + bytes.readUInt16BE(at + 1)
    if (end > bytes.length) throw new ProxyHeaderError('PROXY protocol v2 TLV longer than the header')
    tlvs.push({ type: bytes[at], value: bytes.subarray(at + 3, end) })
    at = end
  }
  return tlvs
}

/**
 * An IPv6 address written as Node writes a peer's (inet_ntop, RFC 5952): the longest run of zero groups as `::`,
 * and an IPv4-mapped one as `::ffff:192.0.2.1`, which proxy-addr and the rate-limit key take for its IPv4 address.
 */
function ipv6 (bytes: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, index) => bytes.readUInt16BE(index * 2))
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) return `::ffff:${[...bytes.subarray(12)].join('.')}`
  let start = -1
  let run = 1
  for (let index = 0; index < 8;) {
    let end = index
    while (end < 8 && groups[end] === 0) end++
    if (end - index > run) [start, run] = [index, end - index]
    index = Math.max(end, index + 1)
  }
  const hex = groups.map((group) => group.toString(16))
  return start === -1 ? hex.join(':') : `${hex.slice(0, start).join(':')}::${hex.slice(start + run).join(':')}`
}
