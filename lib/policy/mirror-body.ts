import type { Readable } from 'node:stream'
import type { Mirror } from './mirror.js'

/**
 * The copy of a request body a mirror sends, taken from the client's stream as the primary reads it: one more
 * 'data' listener, which never pauses the stream nor resumes it (a listener added to a paused stream leaves it
 * paused), so the primary's flow and back-pressure stay its own and a slow mirror cannot hold it back. The copy is
 * sent once the body has ended: whole and at most maxBody bytes, which is all it ever holds; past maxBody it is
 * dropped at once. A body that never comes whole (the client left, or Node discarded the rest of a body the
 * primary's backend did not read, which takes every 'data' listener off) is not mirrored.
 */
export class BodyCopy {
  readonly #mirror: Mirror
  readonly #source: Readable
  readonly #done: (chunks: Buffer[]) => void
  readonly #chunks: Buffer[] = []
  #size = 0

  private constructor (mirror: Mirror, source: Readable, done: (chunks: Buffer[]) => void) {
    this.#mirror = mirror
    this.#source = source
    this.#done = done
    source.on('data', this.#onData).on('end', this.#onEnd).on('close', this.#onClose)
  }

  static start (mirror: Mirror, source: Readable, done: (chunks: Buffer[]) => void): void {
    // eslint-disable-next-line no-new -- it lives as the source's listeners
    new BodyCopy(mirror, source, done)
  }

  #stop (): void {
    this.#source.off('data', this.#onData).off('end', this.#onEnd).off('close', this.#onClose)
  }

  #onData = (chunk: Buffer): void => {
    this.#size += chunk.length
    if (this.#size > this.#mirror.config.maxBody) {
      // A chunked body that grew past the limit: what was kept goes with it.
      this.#stop()
      this.#chunks.length = 0
      this.#mirror.skip('too_large')
      return
    }
    this.#chunks.push(chunk)
  }

  #onEnd = (): void => {
    // Node's discarding of an unread body removes 'data' listeners: what came after went unseen.
    const whole = this.#source.listeners('data').includes(this.#onData)
    this.#stop()
    if (whole) this.#done(this.#chunks)
    else this.#mirror.skip('incomplete_body')
  }

  #onClose = (): void => {
    this.#stop()
    this.#mirror.skip('incomplete_body')
  }
}
