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
