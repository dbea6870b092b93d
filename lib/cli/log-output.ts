import type { Writable } from 'node:stream'
import type { FastifyRequest, FastifyServerOptions } from 'fastify'
import pino from 'pino'
import { accessMessage } from '../proxy/access-log.js'

// How the goload command writes its log: pino's JSON lines as they are (the default, and the fast path: nothing
// here is on it), or with `log.format: pretty` through pino-pretty, and with `accessLog.format: combined` each
// access line as Apache's and nginx's combined format, for the log tooling that already reads those. With
// `accessLog.buffer`, access lines are gathered and written a few KiB at a time, as nginx's `access_log … buffer=`.

export type LogFormat = 'json' | 'pretty'
export type AccessLogFormat = 'json' | 'combined'

export interface LogFormats {
  format?: LogFormat
  accessFormat?: AccessLogFormat
  /** `accessLog.buffer`: bytes of access lines gathered before one write; 0 or none, each written as it comes. */
  buffer?: number
  /** `accessLog.flush`: ms a gathered line waits at most. */
  flush?: number
  /** Other processes write to the same output (`--workers`). */
  shared?: boolean
  /** Where buffered lines are written: stdout's descriptor unless given. */
  fd?: number
}

/** How an access line's message reads in pino's JSON. */
const accessField = `"msg":${JSON.stringify(accessMessage)}`

/** What pino writes to: an object with write(line), one call per record. */
interface Destination {
  write: (line: string) => void
}

type LoggerOptions = Pick<Exclude<FastifyServerOptions['logger'], boolean | undefined>, 'stream' | 'serializers' | 'hooks'>

/**
 * The logger options of these formats, writing to `stream` (default stdout, buffered when `buffer` asks); throws a
 * clear error when pretty is asked for and pino-pretty is not installed (it is an optional dependency: goload itself
 * never needs it).
 */
export async function loggerOptions ({ format = 'json', accessFormat = 'json', buffer = 0, flush = 1000, shared = false, fd = process.stdout.fd }: LogFormats, stream: Writable | undefined, prettyModule = 'pino-pretty'): Promise<LoggerOptions> {
  const buffered = stream === undefined && buffer > 0 ? bufferedOutput(fd, buffer, flush, shared) : undefined
  const hooks = buffered === undefined ? {} : { hooks: { logMethod: writeAtOnceUnlessAccess(buffered) } }
  const given = stream ?? buffered
  if (format === 'json' && accessFormat === 'json') return { ...hooks, ...(given === undefined ? {} : { stream: given }) }
  const out: Destination = given ?? process.stdout
  let pretty: ((line: string) => string) | undefined
  if (format === 'pretty') {
    let factory: (options: Record<string, unknown>) => (line: string) => string
    try {
      ({ prettyFactory: factory } = await import(prettyModule) as { prettyFactory: typeof factory })
    } catch (error) {
      // pino-pretty itself missing (a loader may leave out the code); anything else (a broken install) as it is.
      if (!(error as Error).message.includes(`'${prettyModule}'`)) throw error
      throw new Error('log.format pretty needs the pino-pretty package, which is not installed: npm install pino-pretty beside fastify-goload, or use log.format json')
    }
    pretty = factory({ colorize: out === process.stdout && process.stdout.isTTY, translateTime: 'SYS:standard' })
  }
  const combined = accessFormat === 'combined'
  const destination: Destination = {
    write (line) {
      if (combined && line.includes(accessField)) out.write(combinedLine(JSON.parse(line) as AccessRecord))
      else out.write(pretty === undefined ? line : pretty(line))
    }
  }
  // The combined format has the Referer and User-Agent, which goload's access line leaves out otherwise.
  return { ...hooks, stream: destination as unknown as Writable, ...(combined ? { serializers: { req: requestWithAgent } } : {}) }
}

/** What a write to a pipe may hold and still be written at once, whole (POSIX's PIPE_BUF on Linux). */
const pipeAtomicBytes = 4096

/**
 * An output to `fd` that gathers lines until `size` bytes, or `flush` ms, then writes them with one write(2). Each
 * write holds whole lines (sonic-boom starts a new chunk rather than split a line). `shared`: other processes write
 * to the same output (`--workers`, often a pipe to systemd or Docker): writes then stay within PIPE_BUF, which a
 * pipe never interleaves with another writer's, so two workers' lines never mix. pino writes what is gathered before
 * the process exits, on an error as on a signal.
 */
export function bufferedOutput (fd: number, size: number, flush: number, shared: boolean): ReturnType<typeof pino.destination> {
  const maxWrite = shared ? pipeAtomicBytes : Math.max(16384, size * 2)
  return pino.destination({ dest: fd, minLength: Math.min(size, maxWrite - 1), maxWrite, periodicFlush: flush, sync: false })
}

/** The lines a buffer holds back: one per request. Any other line (a warning, a reload, shutdown) goes out at once. */
const heldMessages = new Set([accessMessage, 'incoming request', 'request completed'])

/**
 * A pino logMethod hook: after any line but a request's own, what is gathered is written at once, that line with it,
 * so warnings and the lines an operator waits for (listening, reloaded, closing) are never held back, and the order
 * stays as logged.
 */
function writeAtOnceUnlessAccess (output: { flush: () => void, on: (event: 'drain', listener: () => void) => unknown, destroyed?: boolean }) {
  // A flush while a write is under way writes nothing (sonic-boom): the line is written once that write is done,
  // when sonic-boom says 'drain'. (A flush that did write comes here too, and writes nothing more.) A write that
  // ends after the output was closed has nothing left to flush.
  let unflushed = false
  output.on('drain', () => {
    if (!unflushed || output.destroyed) return
    unflushed = false
    output.flush()
  })
  return function (this: unknown, args: unknown[], method: (...args: unknown[]) => void): void {
    method.apply(this, args)
    if (heldMessages.has(args[1] as string)) return
    unflushed = true
    output.flush()
  }
}

/** Fastify's own request serializer, with what the combined format needs besides. */
function requestWithAgent (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: request.url,
    version: request.headers['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket?.remotePort,
    httpVersion: request.raw.httpVersion,
    referer: request.headers.referer,
    userAgent: request.headers['user-agent']
  }
}

interface AccessRecord {
  time: number
  req: { method: string, url: string, remoteAddress?: string, httpVersion?: string, referer?: string, userAgent?: string }
  res: { statusCode: number }
  goload: { bytes: number, upstreamTime?: number }
}

/**
 * `127.0.0.1 - - [07/Dec/2026:07:30:00 +0000] "GET /x HTTP/1.1" 200 5 "-" "curl/8.5.0" 0.012`: nginx's combined
 * format, then the upstream's time in seconds, as nginx's $upstream_response_time (`-` when no backend answered).
 */
export function combinedLine ({ time, req, res, goload }: AccessRecord): string {
  const upstream = goload.upstreamTime === undefined ? '-' : (goload.upstreamTime / 1000).toFixed(3)
  return `${req.remoteAddress ?? '-'} - - [${clfDate(new Date(time))}] "${escape(`${req.method} ${req.url} HTTP/${req.httpVersion ?? '1.1'}`)}" ${res.statusCode} ${goload.bytes} "${escape(req.referer ?? '-')}" "${escape(req.userAgent ?? '-')}" ${upstream}\n`
}

const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

/** `07/Dec/2026:07:30:00 +0000`, in local time as Apache and nginx write it. */
function clfDate (date: Date): string {
  const two = (value: number): string => String(value).padStart(2, '0')
  const offset = -date.getTimezoneOffset()
  const zone = `${offset < 0 ? '-' : '+'}${two(Math.floor(Math.abs(offset) / 60))}${two(Math.abs(offset) % 60)}`
  return `${two(date.getDate())}/${months[date.getMonth()]}/${date.getFullYear()}:${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())} ${zone}`
}

/** As nginx escapes a logged value: `"`, `\` and bytes outside printable ASCII as \xHH, so a field cannot end early. */
function escape (value: string): string {
  return value.replace(/["\\]|[^\x20-\x7e]/g, (character) => character.charCodeAt(0) > 0xff
    ? [...Buffer.from(character)].map((byte) => `\\x${byte.toString(16).toUpperCase()}`).join('')
    : `\\x${character.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`)
}
