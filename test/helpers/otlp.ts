import http from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Test } from 'tap'
import { closeServer, waitFor } from './servers.js'

/** A span as OTLP/HTTP's JSON encoding sends it, its attributes made a plain object. */
export interface ReceivedSpan {
  traceId: string
  spanId: string
  parentSpanId: string | undefined
  name: string
  /** 2 SERVER, 3 CLIENT. */
  kind: number
  attributes: Record<string, string | number | boolean>
  /** 0 unset, 1 ok, 2 error. */
  status: { code: number, message?: string }
  /** The resource's service.name. */
  service: string
}

export interface Collector {
  /** The base URL, as the tracing option's `otlp` takes it. */
  url: string
  spans: ReceivedSpan[]
  /** Export requests received, each a POST /v1/traces. */
  posts: number
  /** While true, exports are answered 500 (a collector that fails) and their spans dropped. */
  failing: boolean
  /** The spans of one trace, once `count` of them have come. */
  trace: (traceId: string, count: number) => Promise<ReceivedSpan[]>
}

export const SERVER = 2
export const CLIENT = 3

interface AnyValue { stringValue?: string, intValue?: string | number, doubleValue?: number, boolValue?: boolean }
interface KeyValue { key: string, value: AnyValue }

function attributesOf (list: KeyValue[] = []): Record<string, string | number | boolean> {
  const attributes: Record<string, string | number | boolean> = {}
  for (const { key, value } of list) {
    attributes[key] = value.stringValue ?? (value.intValue !== undefined ? Number(value.intValue) : undefined) ?? value.doubleValue ?? value.boolValue!
  }
  return attributes
}

/** A real OTLP/HTTP receiver on 127.0.0.1 (JSON encoding), as a collector would listen on 4318; closed at the test's end. */
export async function startCollector (t: Test): Promise<Collector> {
  const collector: Collector = { url: '', spans: [], posts: 0, failing: false, trace: async () => [] }
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = []
    request.on('data', (chunk: Buffer) => chunks.push(chunk))
    request.on('end', () => {
      if (request.method !== 'POST' || request.url !== '/v1/traces' || request.headers['content-type'] !== 'application/json') {
        response.writeHead(404).end()
        return
      }
      collector.posts++
      if (collector.failing) {
        response.writeHead(500).end()
        return
      }
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        resourceSpans: Array<{ resource: { attributes: KeyValue[] }, scopeSpans: Array<{ spans: Array<Omit<ReceivedSpan, 'attributes' | 'service'> & { attributes: KeyValue[], parentSpanId?: string }> }> }>
      }
      for (const { resource, scopeSpans } of body.resourceSpans) {
        const service = String(attributesOf(resource.attributes)['service.name'])
        for (const { spans } of scopeSpans) {
          for (const span of spans) {
            collector.spans.push({ ...span, parentSpanId: span.parentSpanId === '' ? undefined : span.parentSpanId, attributes: attributesOf(span.attributes), status: span.status ?? { code: 0 }, service })
          }
        }
      }
      response.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  collector.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  collector.trace = async (traceId, count) => {
    const of = () => collector.spans.filter((span) => span.traceId === traceId)
    await waitFor(() => of().length >= count, `${count} spans of trace ${traceId} at the collector`)
    return of()
  }
  t.teardown(() => closeServer(server))
  return collector
}

/** `traceparent` parsed: version-traceId-parentId-flags. */
export function parseTraceparent (value: string): { traceId: string, parentId: string, flags: string } {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value)
  if (match === null) throw new Error(`not a version 00 traceparent: ${JSON.stringify(value)}`)
  return { traceId: match[1], parentId: match[2], flags: match[3] }
}

/** The values of every `name` header line a backend received, duplicates apart (Node's rawHeaders keeps each line). */
export function headerLines (request: http.IncomingMessage, name: string): string[] {
  const values: string[] = []
  for (let i = 0; i < request.rawHeaders.length; i += 2) {
    if (request.rawHeaders[i].toLowerCase() === name) values.push(request.rawHeaders[i + 1])
  }
  return values
}
