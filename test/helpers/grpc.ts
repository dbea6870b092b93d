import { fileURLToPath } from 'node:url'
import * as grpc from '@grpc/grpc-js'
import * as protoLoader from '@grpc/proto-loader'
import { HealthImplementation } from 'grpc-health-check'
import type { Test } from 'tap'
import type { KeyPair } from './tls.js'

const protoPath = fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url))
const definition = grpc.loadPackageDefinition(protoLoader.loadSync(protoPath)) as unknown as {
  goload: { test: { Echo: grpc.ServiceClientConstructor } }
}
export const Echo = definition.goload.test.Echo

export interface Note {
  text?: string
  count?: number
  backend?: string
}

export type EchoHandlers = Partial<Record<'Unary' | 'ServerStream' | 'ClientStream' | 'Bidi', grpc.UntypedHandleCall>>

export interface GrpcBackend {
  name: string
  url: string
  port: number
  server: grpc.Server
  health: HealthImplementation
  /** Calls that reached this backend, by method. */
  calls: Record<string, number>
}

/**
 * A grpc-js server on 127.0.0.1 (over TLS with `tls`, at an https:// URL, else h2c) serving Echo (the handlers given, with `backend` set to its name in each default answer)
 * and grpc.health.v1.Health from grpc-health-check, SERVING until told otherwise.
 */
export async function startGrpcBackend (t: Test, name: string, handlers: (backend: GrpcBackend) => EchoHandlers = () => ({}), tls?: KeyPair): Promise<GrpcBackend> {
  const server = new grpc.Server()
  const health = new HealthImplementation({ '': 'SERVING', 'goload.test.Echo': 'SERVING' })
  health.addToServer(server)
  const backend = { name, server, health, calls: {} as Record<string, number> } as GrpcBackend
  const own = handlers(backend)
  const counted = (method: keyof EchoHandlers, handler: grpc.UntypedHandleCall): grpc.UntypedHandleCall => {
    return ((call: unknown, callback: unknown) => {
      backend.calls[method] = (backend.calls[method] ?? 0) + 1
      ;(handler as (call: unknown, callback: unknown) => void)(call, callback)
    }) as grpc.UntypedHandleCall
  }
  server.addService(Echo.service, {
    Unary: counted('Unary', own.Unary ?? ((call: grpc.ServerUnaryCall<Note, Note>, callback: grpc.sendUnaryData<Note>) => {
      callback(null, { text: call.request.text, backend: name })
    })),
    ServerStream: counted('ServerStream', own.ServerStream ?? ((call: grpc.ServerWritableStream<Note, Note>) => { call.end() })),
    ClientStream: counted('ClientStream', own.ClientStream ?? ((call: grpc.ServerReadableStream<Note, Note>, callback: grpc.sendUnaryData<Note>) => {
      let count = 0
      let text = ''
      call.on('data', (note: Note) => { count++; text += note.text })
      call.on('end', () => { callback(null, { text, count, backend: name }) })
    })),
    Bidi: counted('Bidi', own.Bidi ?? ((call: grpc.ServerDuplexStream<Note, Note>) => {
      call.on('data', (note: Note) => { call.write({ text: note.text, count: note.count, backend: name }) })
      call.on('end', () => { call.end() })
    }))
  })
  const port = await new Promise<number>((resolve, reject) => {
    const credentials = tls === undefined
      ? grpc.ServerCredentials.createInsecure()
      : grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }])
    server.bindAsync('127.0.0.1:0', credentials, (error, port) => { error === null ? resolve(port) : reject(error) })
  })
  t.teardown(() => { server.forceShutdown() })
  return Object.assign(backend, { url: `${tls === undefined ? 'h2c' : 'https'}://127.0.0.1:${port}`, port })
}

/** A grpc-js Echo client of `url` (http://host:port): one channel, so every call goes over one HTTP/2 connection. */
export function echoClient (t: Test, url: string): grpc.Client & Record<string, (...args: unknown[]) => unknown> {
  const client = new Echo(new URL(url).host, grpc.credentials.createInsecure())
  t.teardown(() => { client.close() })
  return client as grpc.Client & Record<string, (...args: unknown[]) => unknown>
}

/** A unary call's answer, or its error. */
export async function unary (client: grpc.Client, request: Note, metadata = new grpc.Metadata(), options: grpc.CallOptions = {}): Promise<{ reply: Note, headers: grpc.Metadata, trailers: grpc.Metadata }> {
  return new Promise((resolve, reject) => {
    let headers = new grpc.Metadata()
    let trailers = new grpc.Metadata()
    let reply: Note | undefined
    const call = (client as unknown as Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>).Unary(request, metadata, options, (error: grpc.ServiceError | null, answer: Note) => {
      if (error !== null) reject(error)
      else reply = answer
    })
    call.on('metadata', (received: grpc.Metadata) => { headers = received })
    call.on('status', (status: grpc.StatusObject) => {
      trailers = status.metadata
      if (reply !== undefined) resolve({ reply, headers, trailers })
    })
  })
}

export { grpc }
