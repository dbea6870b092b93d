import type { Dispatcher } from 'undici'

// grpc.health.v1.HealthCheckResponse.ServingStatus: only SERVING passes; UNKNOWN, NOT_SERVING, SERVICE_UNKNOWN fail.
const SERVING = 1

/*
 * The two messages of grpc.health.v1.Health/Check are written and read here by hand: HealthCheckRequest is one string
 * (field 1) and HealthCheckResponse one enum (field 1), a few bytes each way. A protobuf library (and a .proto file
 * to load at run time) for those would be goload's largest dependency, for the health checks only.
 */

/** A gRPC frame (uncompressed, 4-byte length) of HealthCheckRequest { service }. */
export function checkRequest (service: string): Buffer {
  const name = Buffer.from(service)
  // proto3 leaves an empty string out: the whole server's status is asked with an empty message.
  const message = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(name.length), name])
  const prefix = Buffer.alloc(5)
  prefix.writeUInt32BE(message.length, 1)
  return Buffer.concat([prefix, message])
}

function varint (value: number): Buffer {
  const bytes: number[] = []
  while (value > 0x7f) {
    bytes.push((value & 0x7f) | 0x80)
    value >>>= 7
  }
  bytes.push(value)
  return Buffer.from(bytes)
}

/** The status of the HealthCheckResponse in a response body of one gRPC frame; undefined when it is no such frame. */
export function servingStatus (body: Buffer): number | undefined {
  // A compressed frame (flag 1) is not expected: the probe offers no grpc-accept-encoding.
  if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) return undefined
  let status = 0
  let at = 5
  while (at < body.length) {
    const [key, next] = readVarint(body, at)
    at = next
    const wireType = key & 7
    if (wireType === 0) {
      const [value, after] = readVarint(body, at)
      at = after
      if (key >>> 3 === 1) status = value
    } else if (wireType === 2) {
      const [length, after] = readVarint(body, at)
      at = after + length
    } else {
      return undefined
    }
  }
  return at === body.length ? status : undefined
}

function readVarint (bytes: Buffer, at: number): [number, number] {
  let value = 0
  let shift = 0
  while (at < bytes.length && shift < 35) {
    const byte = bytes[at++]
    value += (byte & 0x7f) * 2 ** shift
    if (byte < 0x80) return [value, at]
    shift += 7
  }
  // Cut short: no field ends here.
  return [-1, bytes.length + 1]
}

/** A header of undici's raw list (names and values, Buffers or strings) or of Node's HTTP/2 object. */
function header (headers: unknown, name: string): string | undefined {
  if (Array.isArray(headers)) {
    for (let i = 0; i < headers.length; i += 2) {
      if (String(headers[i]).toLowerCase() === name) return String(headers[i + 1])
    }
    return undefined
  }
  const value = (headers as Record<string, unknown> | null)?.[name]
  return value === undefined ? undefined : String(value)
}

/**
 * One grpc.health.v1.Health/Check of `service` ('' for the whole server) at `origin`: true when the call ends with
 * grpc-status 0 and SERVING. Dispatched with a handler of its own rather than request(), whose trailers undici leaves
 * empty for an HTTP/2 response (see upstream-agent.ts): the handler gets them as they came. `signal` aborts it.
 */
export async function grpcCheck (dispatcher: Dispatcher, origin: string, service: string, timeout: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let statusCode = 0
    let headerStatus: string | undefined
    const handler = {
      onConnect (abort: (reason?: Error) => void): void {
        if (signal.aborted) abort(signal.reason as Error)
        else signal.addEventListener('abort', () => { abort(signal.reason as Error) }, { once: true })
      },
      onHeaders (status: number, headers: unknown): boolean {
        statusCode = status
        // A trailers-only answer (an error status) has it with the headers.
        headerStatus = header(headers, 'grpc-status')
        return true
      },
      onData (chunk: Buffer): boolean {
        chunks.push(chunk)
        return true
      },
      onComplete (trailers: unknown): void {
        const grpcStatus = header(trailers, 'grpc-status') ?? headerStatus
        resolve(statusCode === 200 && grpcStatus === '0' && servingStatus(Buffer.concat(chunks)) === SERVING)
      },
      onError (error: Error): void {
        reject(error)
      }
    }
    dispatcher.dispatch({
      origin,
      path: '/grpc.health.v1.Health/Check',
      method: 'POST',
      headers: { 'content-type': 'application/grpc', te: 'trailers' },
      body: checkRequest(service),
      headersTimeout: timeout,
      bodyTimeout: timeout
    }, handler as unknown as Dispatcher.DispatchHandler)
  })
}
