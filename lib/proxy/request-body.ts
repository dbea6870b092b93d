import { Readable } from 'node:stream'

/**
 * A client's request body on its way to a backend: the part already read (all of it, for a body of up to
 * `bufferBody` bytes) and, for a larger one, the rest still on the client's connection.
 */
export class RequestBody {
  readonly chunks: Buffer[]
  /** The client stream the rest comes from; undefined once the whole body is in `chunks`. */
  readonly rest: Readable | undefined
  /** An attempt started reading `rest`: what it read cannot be sent again, so the request can no longer be retried. */
  spent = false

  constructor (chunks: Buffer[], rest: Readable | undefined) {
    this.chunks = chunks
    this.rest = rest
  }

  /** A stream of the whole body for one upstream attempt. */
  attempt (): AttemptBody {
    return new AttemptBody(this)
  }
}

/**
 * The request body as one upstream attempt reads it. undici destroys the body of a request that fails, and
 * destroying the client's own request would close the connection we still have to answer on (and leave nothing to
 * retry with); this stand-in is what it destroys instead. It replays the chunks read ahead, then reads the rest of
 * the client's body only once undici asks for it, so a failure before that (connection refused) leaves the body
 * whole for another backend.
 */
class AttemptBody extends Readable {
  readonly #body: RequestBody
  #next = 0
  #flowing = false

  constructor (body: RequestBody) {
    super()
    this.#body = body
  }

  _read (): void {
    const { chunks, rest } = this.#body
    while (this.#next < chunks.length) {
      if (!this.push(chunks[this.#next++])) return
    }
    if (rest === undefined) {
      this.push(null)
      return
    }
    if (!this.#flowing) {
      this.#flowing = true
      this.#body.spent = true
      rest.on('data', this.#onData).on('end', this.#onEnd).on('error', this.#onError).on('close', this.#onClose)
    }
    rest.resume()
  }

  _destroy (error: Error | null, callback: (error?: Error | null) => void): void {
    const { rest } = this.#body
    if (this.#flowing && rest !== undefined) {
      rest.off('data', this.#onData).off('end', this.#onEnd).off('error', this.#onError).off('close', this.#onClose)
      rest.pause()
    }
    callback(error)
  }

  #onData = (chunk: Buffer): void => {
    if (!this.push(chunk)) this.#body.rest!.pause()
  }

  #onEnd = (): void => { this.push(null) }

  #onError = (error: Error): void => { this.destroy(error) }

  // The client went away in the middle of its upload.
  #onClose = (): void => {
    if (!this.#body.rest!.readableEnded) this.destroy(Object.assign(new Error('the client request closed before its body ended'), { code: 'ECONNABORTED' }))
  }
}

/** What sees every chunk's size as it is read: the slow-client watch's view of the exchange. */
export interface BodyCounter {
  bodyBytes (bytes: number): void
}

/**
 * Reads up to `limit` bytes of the client's body before a backend is chosen, as nginx's proxy_request_buffering
 * does, so a slow client holds no backend slot or upstream connection while it sends. `done` gets the body: whole
 * when it ended within the limit, else the part read and the stream with the rest (paused). `counter` sees every
 * chunk's size. Nothing is called if the client goes away first.
 */
export function readAhead (source: Readable, limit: number, counter: BodyCounter, done: (body: RequestBody) => void): void {
  const chunks: Buffer[] = []
  let read = 0
  const finish = (rest: Readable | undefined): void => {
    source.off('data', onData).off('end', onEnd)
    done(new RequestBody(chunks, rest))
  }
  const onData = (chunk: Buffer): void => {
    chunks.push(chunk)
    read += chunk.length
    if (read > limit) {
      source.pause()
      finish(source)
    }
  }
  const onEnd = (): void => { finish(undefined) }
  // Every byte counts for the watch, the streamed rest too; a listener on a paused stream does not resume it.
  const count = (chunk: Buffer): void => { counter.bodyBytes(chunk.length) }
  // A client that goes away mid-body is seen by the response's 'close', which ends the exchange.
  source.on('data', count).on('data', onData).on('end', onEnd).on('error', ignore)
}

function ignore (): void {}
