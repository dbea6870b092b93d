import type { ServerResponse } from 'node:http'
import { constants, type Http2ServerResponse } from 'node:http2'

/**
 * Whether a response reached its end, rather than its client leaving first. An HTTP/1.1 response says so with
 * `writableFinished`. Node's HTTP/2 compatibility response says `writableFinished` (and emits 'finish') for a stream
 * the client reset as well: there the stream's RST_STREAM code tells, NO_ERROR for a stream that ended as it should.
 */
export function responseCompleted (response: ServerResponse | Http2ServerResponse): boolean {
  if (!response.writableFinished) return false
  const { stream } = response as Partial<Http2ServerResponse>
  return stream?.rstCode === undefined || stream.rstCode === constants.NGHTTP2_NO_ERROR
}

/**
 * Whether the client is gone before anything was sent: its connection closed, or (HTTP/2) its stream reset. Node's
 * HTTP/2 compatibility response has no `destroyed` of its own; its stream has. A flood of streams reset as soon as
 * opened (rapid reset) would otherwise cost a backend connection each.
 */
export function clientGone (response: ServerResponse | Http2ServerResponse): boolean {
  return (response as Partial<ServerResponse>).destroyed === true || (response as Partial<Http2ServerResponse>).stream?.destroyed === true
}
