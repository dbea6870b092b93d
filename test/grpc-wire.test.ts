// What goload writes and reads of gRPC by hand: the two one-field protobufs of grpc.health.v1 (lib/health/grpc-check.ts),
// checked against protobuf.js, which grpc-js's own health implementation uses; and grpc-message's percent-encoding.
import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import t from 'tap'
import { checkRequest, servingStatus } from '../lib/health/grpc-check.js'
import { percentEncoded } from '../lib/proxy/grpc.js'

const healthProto = fileURLToPath(new URL('../node_modules/grpc-health-check/proto/health/v1/health.proto', import.meta.url))
const root = protobuf.loadSync(healthProto)
const Request = root.lookupType('grpc.health.v1.HealthCheckRequest')
const Response = root.lookupType('grpc.health.v1.HealthCheckResponse')

function frame (message: Uint8Array): Buffer {
  const prefix = Buffer.alloc(5)
  prefix.writeUInt32BE(message.length, 1)
  return Buffer.concat([prefix, message])
}

t.test('the request frame is what protobuf.js encodes, for the whole server and for long service names', async (t) => {
  for (const service of ['goload.test.Echo', 'x'.repeat(200), 'é'.repeat(9000)]) {
    const written = checkRequest(service)
    t.same(written, frame(Request.encode({ service }).finish()), `${service.length} characters`)
    t.equal((Request.decode(written.subarray(5)) as unknown as { service: string }).service, service)
  }
  // proto3 leaves a default out (protobuf.js writes it anyway): both read as ''.
  t.same(checkRequest(''), Buffer.from([0, 0, 0, 0, 0]))
  t.equal((Request.decode(Buffer.alloc(0)) as unknown as { service: string }).service, '')
})

t.test('the response is read as protobuf.js writes it, unknown fields skipped; anything else is no status', async (t) => {
  for (const status of [0, 1, 2, 3]) t.equal(servingStatus(frame(Response.encode({ status }).finish())), status)
  // A later version's fields (a string, a number) around the status are skipped.
  const extended = Buffer.from([0x12, 0x02, 0x68, 0x69, 0x08, 0x01, 0x18, 0x96, 0x01])
  t.equal(servingStatus(frame(extended)), 1)
  t.equal(servingStatus(Buffer.from([0, 0, 0])), undefined, 'shorter than a frame header')
  t.equal(servingStatus(Buffer.from([1, 0, 0, 0, 2, 0x08, 0x01])), undefined, 'compressed')
  t.equal(servingStatus(Buffer.from([0, 0, 0, 0, 3, 0x08, 0x01])), undefined, 'a length that is not the body\'s')
  t.equal(servingStatus(frame(Buffer.from([0x0d, 0, 0, 0, 0]))), undefined, 'a wire type it does not read (fixed32)')
  t.equal(servingStatus(frame(Buffer.from([0x08, 0x81]))), undefined, 'a varint cut short')
  t.equal(servingStatus(frame(Buffer.from([0x12, 0x05, 0x68]))), undefined, 'a string cut short')
})

t.test('grpc-message: printable ASCII as is, % and every other byte of the UTF-8 as %XX, which grpc-js decodes back', async (t) => {
  t.equal(percentEncoded('FST_GOLOAD_NO_BACKEND: No backend available'), 'FST_GOLOAD_NO_BACKEND: No backend available')
  t.equal(percentEncoded('100% sûr\n'), '100%25 s%C3%BBr%0A')
  t.equal(decodeURIComponent(percentEncoded('100% sûr\n')), '100% sûr\n')
})
