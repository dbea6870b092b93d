import { Writable } from 'node:stream'

export type LogLine = Record<string, any>

/** A Fastify logger writing JSON lines into an array the test can read, with the bytes written. */
export function capturedLogs (level = 'warn') {
  const lines: LogLine[] = []
  let bytes = 0
  const stream = new Writable({
    write (chunk, _encoding, done) {
      bytes += chunk.length
      lines.push(JSON.parse(chunk.toString()))
      done()
    }
  })
  return {
    lines,
    get bytes () { return bytes },
    logger: { level, stream },
    /** Lines at warn (40) or above. */
    warnings (): LogLine[] { return lines.filter((line) => line.level >= 40) }
  }
}
