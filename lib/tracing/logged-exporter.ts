import { ExportResultCode, type ExportResult } from '@opentelemetry/core'
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base'
import type { FastifyBaseLogger } from 'fastify'

/**
 * The OTLP exporter, its failures said in the log once: a collector that is down is one warning, and one line again
 * when it answers, never a line per batch (nor per request: spans are exported in batches, off the request path).
 * The SDK's own reports go to its diag logger, which stays silent unless an app sets one.
 */
export class LoggedExporter implements SpanExporter {
  readonly #exporter: SpanExporter
  readonly #url: string
  readonly #log: FastifyBaseLogger
  #failing = false

  constructor (exporter: SpanExporter, url: string, log: FastifyBaseLogger) {
    this.#exporter = exporter
    this.#url = url
    this.#log = log
  }

  export (spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.#exporter.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        if (this.#failing) this.#log.info({ collector: this.#url }, 'goload: tracing export works again')
        this.#failing = false
      } else if (!this.#failing) {
        this.#failing = true
        this.#log.warn({ collector: this.#url, cause: result.error?.message, spans: spans.length }, 'goload: tracing export failed: spans are dropped until the collector answers (said once)')
      }
      done(result)
    })
  }

  async shutdown (): Promise<void> {
    await this.#exporter.shutdown()
  }
}
