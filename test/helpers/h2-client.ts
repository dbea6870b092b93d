import { once } from 'node:events'
import http2 from 'node:http2'
import type { Test } from 'tap'
import { deadline } from './raw.js'

export interface H2Answer {
  status: number
  headers: http2.IncomingHttpHeaders
  body: string
}

/**
 * A real HTTP/2 client session (node:http2) to `origin`: `https://` negotiates h2 by ALPN, `http://` speaks h2c with
 * prior knowledge. Resolves once the server's SETTINGS have come; destroyed when the test ends.
 */
export async function h2Connect (t: Test, origin: string, options: http2.SecureClientSessionOptions = {}): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(origin, { rejectUnauthorized: false, ...options })
  session.on('error', () => {})
  t.teardown(() => { session.destroy() })
  await deadline(Promise.race([once(session, 'remoteSettings'), once(session, 'error').then(([error]) => { throw error })]), 10_000, `an HTTP/2 session to ${origin}`)
  return session
}

/** One request on `session`, read to its end. A body is sent with its content-length. */
export async function h2Request (session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string): Promise<H2Answer> {
  const sent = body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) }
  const stream = session.request({ ':method': body === undefined ? 'GET' : 'POST', ...sent }, { endStream: body === undefined })
  if (body !== undefined) stream.end(body)
  const [response] = await deadline(once(stream, 'response'), 10_000, `a response to ${String(headers[':path'])}`) as [http2.IncomingHttpHeaders]
  let text = ''
  stream.setEncoding('utf8').on('data', (chunk: string) => { text += chunk })
  await deadline(once(stream, 'end'), 10_000, `the end of the response to ${String(headers[':path'])}`)
  return { status: Number(response[':status']), headers: response, body: text }
}
