import { Agent, request, type Dispatcher } from 'undici'
import type { KubernetesCredentials } from './kubernetes-credentials.js'

/** The fields of a discovery.k8s.io/v1 EndpointSlice the discovery reads. */
export interface EndpointSlice {
  metadata: { name: string, resourceVersion?: string }
  addressType: 'IPv4' | 'IPv6' | 'FQDN'
  endpoints?: SliceEndpoint[] | null
  ports?: SlicePort[] | null
}

export interface SliceEndpoint {
  addresses: string[]
  /** Each unset one has its default: ready and serving true, terminating false. */
  conditions?: { ready?: boolean | null, serving?: boolean | null, terminating?: boolean | null }
  targetRef?: { kind?: string, name?: string }
}

export interface SlicePort {
  name?: string | null
  port?: number | null
  protocol?: string | null
}

/** What the watch tells: the whole set (a list), then each change; and whether the API server can be reached. */
export interface SliceHandlers {
  listed: (slices: EndpointSlice[]) => void
  changed: (type: 'ADDED' | 'MODIFIED' | 'DELETED', slice: EndpointSlice) => void
  /** A list or watch failed after going through (or at the start): the set stays, and it is retried until it works. */
  failed: (error: Error) => void
  /** A list or watch went through after a failure. */
  reachable: () => void
}

export interface SliceWatchOptions {
  service: string
  /** ms before the first retry; doubled on each failure in a row, up to maxRetryDelay. */
  retryDelay: number
}

/** The API server's answer that our resourceVersion is too old to watch from (410 Gone): list again. */
class Gone extends Error {}

const maxRetryDelay = 30_000
/** The API server ends each watch after this long; we then watch on from where it left off. */
const watchSeconds = 290
/** Items per page of a list, as kubectl asks for: a Service with thousands of endpoints comes in several answers. */
const pageSize = 500

/**
 * A list + watch of one Service's EndpointSlices over undici, as client-go's reflector does it: list (page by page)
 * for the set and its resourceVersion, then watch from that resourceVersion, and again from the last one seen each
 * time a watch ends. 410 Gone, as an HTTP status or as an ERROR event, means that version is too old: list again.
 * Any other failure keeps what is known and retries after a delay that doubles, up to 30 s.
 */
export class SliceWatch {
  readonly #credentials: KubernetesCredentials
  readonly #options: SliceWatchOptions
  readonly #handlers: SliceHandlers
  readonly #agent: Agent
  readonly #abort = new AbortController()
  #failing = false
  /** ms before the next retry. */
  #delay: number
  #running: Promise<void> | undefined

  constructor (credentials: KubernetesCredentials, options: SliceWatchOptions, handlers: SliceHandlers) {
    this.#credentials = credentials
    this.#options = options
    this.#handlers = handlers
    this.#delay = options.retryDelay
    this.#agent = new Agent({ connect: credentials.ca === undefined ? {} : { ca: credentials.ca } })
  }

  /** Starts watching; resolves after the first list, whether it went through or failed (then it is retried). */
  start (): Promise<void> {
    let listedOnce!: () => void
    const firstList = new Promise<void>((resolve) => { listedOnce = resolve })
    this.#running = this.#run(listedOnce).finally(listedOnce)
    return firstList
  }

  async stop (): Promise<void> {
    this.#abort.abort()
    await this.#running
    await this.#agent.destroy()
  }

  async #run (listedOnce: () => void): Promise<void> {
    const { signal } = this.#abort
    let version: string | undefined
    while (!signal.aborted) {
      const started = Date.now()
      try {
        if (version === undefined) {
          version = await this.#list()
          listedOnce()
          this.#succeeded()
        }
        version = await this.#watch(version)
        // Ended by the API server, as it ends every watch: on at once, unless it keeps ending them at once.
        if (Date.now() - started >= this.#options.retryDelay) continue
      } catch (error) {
        if (signal.aborted) return
        if (error instanceof Gone) {
          version = undefined
          // A list that finds its own version gone at once again waits like any failure.
          if (Date.now() - started >= this.#options.retryDelay) continue
        } else {
          listedOnce()
          // Told once per outage: the retries that follow are not news.
          if (!this.#failing) this.#handlers.failed(error as Error)
          this.#failing = true
        }
      }
      await this.#sleep(this.#delay)
      this.#delay = Math.min(this.#delay * 2, maxRetryDelay)
    }
  }

  #succeeded (): void {
    this.#delay = this.#options.retryDelay
    if (!this.#failing) return
    this.#failing = false
    this.#handlers.reachable()
  }

  /** Every slice of the Service, page by page; returns the list's resourceVersion. */
  async #list (): Promise<string> {
    const slices: EndpointSlice[] = []
    let next: string | undefined
    let version = ''
    do {
      const query: Record<string, string> = { labelSelector: this.#selector, limit: String(pageSize) }
      if (next !== undefined) query.continue = next
      const { statusCode, body } = await this.#get(query, { headersTimeout: 10_000, bodyTimeout: 30_000 })
      // A continue token expires like a resourceVersion: the list starts over.
      if (statusCode === 410) {
        await body.dump()
        throw new Gone('list continue token expired')
      }
      if (statusCode !== 200) throw await statusError(statusCode, body, 'list')
      const page = await body.json() as { metadata?: { resourceVersion?: string, continue?: string }, items?: EndpointSlice[] | null }
      slices.push(...(page.items ?? []))
      version = page.metadata?.resourceVersion ?? ''
      next = page.metadata?.continue === '' ? undefined : page.metadata?.continue
    } while (next !== undefined)
    this.#handlers.listed(slices)
    return version
  }

  /** Watches from `version` until the API server ends the watch; returns the last resourceVersion seen. */
  async #watch (version: string): Promise<string> {
    const query = { labelSelector: this.#selector, watch: 'true', resourceVersion: version, allowWatchBookmarks: 'true', timeoutSeconds: String(watchSeconds) }
    // No byte for a minute past the watch's end (bookmarks come every minute or so): the connection is dead.
    const { statusCode, body } = await this.#get(query, { headersTimeout: 10_000, bodyTimeout: (watchSeconds + 60) * 1000 })
    if (statusCode === 410) {
      await body.dump()
      throw new Gone('watch resourceVersion too old')
    }
    if (statusCode !== 200) throw await statusError(statusCode, body, 'watch')
    this.#succeeded()
    let buffered = ''
    for await (const chunk of body) {
      buffered += (chunk as Buffer).toString('utf8')
      let end: number
      while ((end = buffered.indexOf('\n')) !== -1) {
        const line = buffered.slice(0, end).trim()
        buffered = buffered.slice(end + 1)
        if (line !== '') version = this.#event(JSON.parse(line), version)
      }
    }
    return version
  }

  /** One watch event; returns the resourceVersion to go on from. */
  #event (event: { type: string, object: EndpointSlice & { code?: number, message?: string } }, version: string): string {
    const { type, object } = event
    if (type === 'ERROR') {
      if (object.code === 410) throw new Gone(object.message ?? 'Gone')
      throw new Error(`watch ERROR event: ${object.code ?? ''} ${object.message ?? ''}`.trim())
    }
    if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.#handlers.changed(type, object)
    return object.metadata?.resourceVersion ?? version
  }

  get #selector (): string {
    return `kubernetes.io/service-name=${this.#options.service}`
  }

  async #get (query: Record<string, string>, timeouts: { headersTimeout: number, bodyTimeout: number }): Promise<Dispatcher.ResponseData> {
    const { apiServer, namespace, token } = this.#credentials
    const bearer = await token()
    const path = `/apis/discovery.k8s.io/v1/namespaces/${namespace}/endpointslices?${new URLSearchParams(query).toString()}`
    return await request(apiServer + path, {
      dispatcher: this.#agent,
      signal: this.#abort.signal,
      headers: { accept: 'application/json', ...(bearer === undefined || bearer === '' ? {} : { authorization: `Bearer ${bearer}` }) },
      ...timeouts
    })
  }

  #sleep (ms: number): Promise<void> {
    const { signal } = this.#abort
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms)
      function done (): void {
        clearTimeout(timer)
        signal.removeEventListener('abort', done)
        resolve()
      }
      signal.addEventListener('abort', done)
    })
  }
}

/** A failed answer, with the Status message the API server sends (forbidden: the Role lacks list or watch). */
async function statusError (statusCode: number, body: Dispatcher.ResponseData['body'], what: string): Promise<Error> {
  const text = await body.text().catch(() => '')
  let message = text.slice(0, 300)
  try {
    message = (JSON.parse(text) as { message?: string }).message ?? message
  } catch {}
  return new Error(`EndpointSlice ${what} answered ${statusCode}${message === '' ? '' : `: ${message}`}`)
}
