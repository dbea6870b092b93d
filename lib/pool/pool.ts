import type { BackendConfig, Strategy } from '../options.js'
import { selectors, type Selector } from './strategies/index.js'
import { WorkerHeap } from './heap.js'
import { LatencyHistogram } from './latency.js'
import { WaitQueue } from './queue.js'

/** Why a request failed at a backend: no connection, the connection broke, no timely answer, an unusable answer. */
export type FailureReason = 'refused' | 'reset' | 'timeout' | 'bad_response'

/** Why the balancer answered a request itself rather than send it to a backend (503, 429). */
export type ShedReason = 'queue_full' | 'queue_timeout' | 'no_backend' | 'rate_limited' | 'circuit_open'

/** Something about a worker an observer may show changed: its rotation, health, drain, weight, or membership. */
export type PoolChange = (worker: Worker) => void

export class Worker {
  readonly id: string
  readonly url: string
  /** What undici connects to: the url, but an h2c:// one as the http:// origin it is (the agent speaks h2c there). */
  readonly origin: string
  /** Both set by Pool.configure only, which puts the worker where its new values belong. */
  weight: number
  maxPending: number
  /** Position in the backends list: the last tie-break, so the heap order is total. */
  readonly ordinal: number
  /** The weight the heap uses: below `weight` while a slow start ramps it up. */
  effectiveWeight: number
  /** Requests dispatched to this backend and not yet ended: what least-busy orders by. */
  pending = 0
  /** The strategy's key (least-busy: pending / effectiveWeight), kept up to date so the heap compares without dividing. */
  load = 0
  // The five below are peak-ewma's, kept and read by strategies/peak-ewma.ts. They stay here rather than in a map of
  // its own: its load() reads them on every acquire and release, and every worker keeps one shape.
  /** Peak-EWMA of the backend's own latency in ms (request sent to response headers); peak-ewma orders by it. */
  latency = 1
  /**
   * Plain EWMA of the same samples, without the peak, 0 before the first one: a sample above it pulls it 1/32 of the
   * way, one below 1/4. What tells an outlier. One stalled sample makes `latency` jump, and must neither make a fast
   * backend an outlier nor move the pool's median so far that the slow one stops being one; while a few fast answers
   * from an outlier are enough to bring it back.
   */
  typical = 0
  /** When `latency` was last brought up to date (performance.now()). */
  latencyAt = 0
  /** Far slower than the pool's median, so it is explored one request at a time, with rests between. */
  outlier = false
  /** An outlier that just answered, waiting out the pause before its next exploration. */
  resting = false
  /** Weighted virtual time of this worker's last choice (see Pool.acquire). */
  turn = 0
  /** Requests the backend answered (response headers received). */
  served = 0
  /** Requests that ended in a connection error, a timeout or an unusable answer at this backend. */
  failed = 0
  /** Requests that failed here and were sent on to another backend. */
  retried = 0
  /** Responses by status class: [1xx, 2xx, 3xx, 4xx, 5xx]. */
  readonly responses = [0, 0, 0, 0, 0]
  /** `failed`, by what went wrong (see Forwarder's failureReason). */
  readonly failures: Record<FailureReason, number> = { refused: 0, reset: 0, timeout: 0, bad_response: 0 }
  /** Request written → response headers, for every strategy. */
  readonly latencies = new LatencyHistogram()
  /** Upgraded connections (WebSocket) open to this backend; each also counts in `pending` while it is open. */
  upgraded = 0
  /** Active health checks say it can take traffic. */
  healthy = true
  /** Passive health took it out until this time (ms since the epoch); 0 when it is in. */
  ejectedUntil = 0
  /** Taking no new requests: drained by the user, or being removed. */
  draining = false
  /** Where this worker sits in the heap, -1 when out of it, so any change sifts it without a search. */
  heapIndex = -1
  /** Its effective weight while in rotation, else 0, as last added into the pool's weight in rotation. */
  weightInRotation = 0

  constructor (config: BackendConfig, ordinal: number) {
    this.id = config.id
    this.url = config.url
    this.origin = config.url.startsWith('h2c:') ? 'http:' + config.url.slice(4) : config.url
    this.weight = config.weight
    this.effectiveWeight = config.weight
    this.maxPending = config.maxPending
    this.ordinal = ordinal
  }

  /** Not drained, not failing: it would take traffic if it had room. */
  get inRotation (): boolean {
    return this.healthy && this.ejectedUntil === 0 && !this.draining
  }

  get hasRoom (): boolean {
    return this.pending < this.maxPending
  }
}

export interface BackendStats {
  id: string
  url: string
  weight: number
  pending: number
  served: number
  failed: number
  retried: number
  /** Upgraded connections (WebSocket) open to it, each also one of `pending`. */
  upgraded: number
  healthy: boolean
  /** When passive health lets it back (ms since the epoch), or null when it is not ejected. */
  ejectedUntil: number | null
  draining: boolean
}

export interface PoolStats {
  strategy: Strategy
  /** Requests waiting for a backend with room. */
  queued: number
  backends: BackendStats[]
}

export interface PoolSettings {
  strategy: Strategy
  /** ms over which a joining or recovering backend ramps up to its weight; 0 for none. */
  slowStart: number
  /** Share of the pool (0–100) passive health may eject at once. */
  maxEjectedPercent: number
  queue: { max: number, timeout: number }
  /** peak-ewma: ms over which latency samples fade. */
  ewmaDecay: number
  /** hash: how far above the average of requests in flight a backend may go before its keys walk on. Default 1.25. */
  balanceFactor?: number
}

// A slow start reaches full weight in this many steps; the first step already takes some traffic.
const rampSteps = 10

/**
 * The workers of one pool. The heap holds exactly the workers that can take a request now (in rotation and with
 * room), least loaded on top; every change to a worker goes through `#place`, which moves it in or out of the heap
 * or sifts it, so acquire is a peek and every change is O(log n).
 */
export class Pool {
  readonly strategy: Strategy
  readonly workers: Worker[] = []
  readonly queue: WaitQueue<Worker>
  readonly #settings: PoolSettings
  readonly #selector: Selector
  readonly #heap: WorkerHeap
  readonly #drained = new Map<Worker, () => void>()
  /** Removals waiting for the worker's last request to end. */
  readonly #removals = new Map<Worker, Promise<void>>()
  readonly #timers = new Set<NodeJS.Timeout>()
  readonly #ramps = new Map<Worker, symbol>()
  #ordinal = 0
  /** Virtual time: the turn of the latest choice. */
  #clock = 0
  /** Requests in flight on all workers. */
  #pending = 0
  /** The effective weights of the workers in rotation, added up (see #weigh). */
  #weight = 0
  readonly #observers = new Set<PoolChange>()
  /** Requests the balancer answered itself, by why: read by metrics. */
  readonly shed: Record<ShedReason, number> = { queue_full: 0, queue_timeout: 0, no_backend: 0, rate_limited: 0, circuit_open: 0 }

  constructor (settings: PoolSettings, backends: BackendConfig[]) {
    this.strategy = settings.strategy
    this.#settings = settings
    // The strategy's hold on the pool: private moves handed over as closures, so they stay off Pool's own API.
    // Made before the heap, which orders by the selector's compare.
    this.#selector = selectors[settings.strategy]({
      workers: this.workers,
      pending: () => this.#pending,
      weight: () => this.#weight,
      reorder: (worker) => { this.#reorder(worker) },
      reorderAll: () => {
        for (const worker of this.workers) worker.load = this.#selector.load(worker)
        this.#heap.rebuild()
      },
      later: (ms, run) => { this.#later(ms, run) }
    }, settings)
    this.#heap = new WorkerHeap([], this.#selector.compare)
    this.queue = new WaitQueue(settings.queue.max, settings.queue.timeout)
    for (const config of backends) this.#join(config)
    this.#selector.start?.()
  }

  /**
   * Takes the least loaded worker that can take a request, and counts one more request on it.
   * `exclude`: workers already tried for this request. `key`: the hash of the request's key, for a strategy that
   * picks by it (hash). When health has taken every worker out of rotation, fails open to those still with room
   * rather than refuse all traffic. Undefined: wait in the queue, or no backend at all.
   */
  acquire (exclude?: readonly Worker[], key?: number): Worker | undefined {
    if (exclude !== undefined) for (const worker of exclude) if (worker.heapIndex >= 0) this.#heap.remove(worker)
    const worker = this.#choose(key) ?? this.#failOpen(exclude)
    if (exclude !== undefined) for (const tried of exclude) this.#place(tried)
    if (worker === undefined) return undefined
    this.#take(worker)
    return worker
  }

  /**
   * Takes this worker for a request that asks for it (a sticky cookie), when it can take one now: in rotation, with
   * room, and no request waiting in the queue before it. False: choose as for any request.
   */
  acquireWorker (worker: Worker): boolean {
    if (worker.heapIndex < 0 || this.queue.length > 0) return false
    this.#take(worker)
    return true
  }

  /** Counts one more request on the worker and moves it in the heap. */
  #take (worker: Worker): void {
    this.#pending++
    worker.pending++
    worker.load = this.#selector.load(worker)
    // A worker that was passed over for a while restarts from the current virtual time,
    // so it cannot bank turns and then take a burst; heavier workers advance more slowly.
    this.#clock = Math.max(worker.turn, this.#clock)
    worker.turn = this.#clock + 1 / worker.effectiveWeight
    // Its key only went up: sink it, unless it is now full and leaves the heap.
    if (worker.heapIndex >= 0 && worker.hasRoom) this.#heap.sink(worker)
    else this.#place(worker)
  }

  /** Ends one request on this worker. Called exactly once per acquire. */
  release (worker: Worker): void {
    this.#pending--
    worker.pending--
    worker.load = this.#selector.load(worker)
    // Its key only went down: sift it up, unless it was out of the heap (full, say) and comes back.
    if (worker.heapIndex >= 0) this.#heap._up(worker.heapIndex)
    else this.#place(worker)
    if (worker.pending === 0 && this.#drained.size > 0) this.#drained.get(worker)?.()
    if (this.queue.length > 0) this.#serveQueue()
  }

  /** A latency sample of this worker, in ms: how long it took to start answering. Kept for metrics; peak-ewma orders by it. */
  observe (worker: Worker, ms: number): void {
    worker.latencies.observe(ms)
    this.#selector.observe?.(worker, ms)
  }

  /** No backend that could ever take the request: every one is drained or removed. */
  get empty (): boolean {
    return !this.workers.some((worker) => !worker.draining)
  }

  stats (): PoolStats {
    return {
      strategy: this.strategy,
      queued: this.queue.length,
      backends: this.workers.map((worker) => ({
        id: worker.id,
        url: worker.url,
        weight: worker.weight,
        pending: worker.pending,
        served: worker.served,
        failed: worker.failed,
        retried: worker.retried,
        upgraded: worker.upgraded,
        healthy: worker.healthy,
        ejectedUntil: worker.ejectedUntil === 0 ? null : worker.ejectedUntil,
        draining: worker.draining
      }))
    }
  }

  find (urlOrId: string): Worker | undefined {
    return this.workers.find((worker) => worker.id === urlOrId || worker.url === urlOrId)
  }

  add (config: BackendConfig): Worker {
    return this.#join(config, true)
  }

  /** New weight and maxPending for a worker (a reload changed them): its counts stay, its heap place follows. */
  configure (worker: Worker, { weight, maxPending }: Pick<BackendConfig, 'weight' | 'maxPending'>): void {
    worker.maxPending = maxPending
    if (weight !== worker.weight) {
      // A slow start under way reaches the new weight by its own steps.
      if (!this.#ramps.has(worker)) worker.effectiveWeight = weight
      worker.weight = weight
      this.#selector.workersChanged?.()
    }
    this.#reorder(worker)
    this.#changed(worker)
    this.#serveQueue()
  }

  /** Stops new requests to the worker and resolves once its last request has ended; then it leaves the pool. */
  remove (worker: Worker): Promise<void> {
    // Removing it again waits for the same removal: a second resolver must not replace the first one.
    const removing = this.#removals.get(worker)
    if (removing !== undefined) return removing
    this.setDraining(worker, true)
    if (worker.pending === 0) {
      this.#leave(worker)
      return Promise.resolve()
    }
    this.onRemove?.(worker)
    const removal = new Promise<void>((resolve) => {
      this.#drained.set(worker, () => {
        this.#drained.delete(worker)
        this.#removals.delete(worker)
        this.#leave(worker)
        resolve()
      })
    })
    this.#removals.set(worker, removal)
    return removal
  }

  setDraining (worker: Worker, draining: boolean): void {
    // A worker being removed stays drained: back in the heap, it would take requests after it left the pool.
    if (!draining && this.#removals.has(worker)) return
    if (worker.draining !== draining) {
      worker.draining = draining
      this.#changed(worker)
    }
    this.#place(worker)
    if (!draining) this.#serveQueue()
  }

  /** Active health: out of rotation when unhealthy, back (with a slow start) when healthy again. */
  setHealthy (worker: Worker, healthy: boolean): void {
    if (worker.healthy === healthy) return
    worker.healthy = healthy
    this.#changed(worker)
    if (healthy) this.#rampUp(worker)
    this.#place(worker)
    if (healthy) this.#serveQueue()
  }

  /**
   * Passive health: takes the worker out of rotation for `ms`, unless that would eject more than
   * maxEjectedPercent of the pool (one backend may always be ejected, as in Envoy). Returns whether it did.
   */
  eject (worker: Worker, ms: number): boolean {
    if (worker.ejectedUntil !== 0) return false
    const ejected = this.workers.filter((w) => w.ejectedUntil !== 0).length
    const allowed = Math.max(1, Math.floor(this.workers.length * this.#settings.maxEjectedPercent / 100))
    if (ejected >= allowed) return false
    const until = Date.now() + ms
    worker.ejectedUntil = until
    this.#changed(worker)
    this.#place(worker)
    this.#later(ms, () => { if (worker.ejectedUntil === until) this.uneject(worker) })
    return true
  }

  /** Back into rotation before its time: its ejection ran out, or an active probe passed (as Envoy does). */
  uneject (worker: Worker): void {
    if (worker.ejectedUntil === 0) return
    worker.ejectedUntil = 0
    this.#changed(worker)
    this.onUneject?.(worker)
    this.#rampUp(worker)
    this.#place(worker)
    this.#serveQueue()
  }

  /**
   * The worker the heap would hand out next (its top), undefined when none can take a request: what the status page
   * marks. p2c and hash may pick another one; least-busy, round-robin and peak-ewma take exactly this one.
   */
  get next (): Worker | undefined {
    return this.#heap.length === 0 ? undefined : this.#heap.peek()
  }

  /**
   * Calls `observer` whenever a worker's state changes (drained, healthy, ejected, back, a slow-start step, joined,
   * left); returns what stops it. Not per request: pending counts are read when wanted.
   */
  watch (observer: PoolChange): () => void {
    this.#observers.add(observer)
    return () => { this.#observers.delete(observer) }
  }

  #changed (worker: Worker): void {
    for (const observer of this.#observers) observer(worker)
  }

  /** Told when an ejected worker comes back into rotation (passive health logs it). */
  onUneject: ((worker: Worker) => void) | undefined

  /** Told when a worker with requests in flight starts leaving (its upgraded connections get closeTimeout). */
  onRemove: ((worker: Worker) => void) | undefined

  /** Stops every timer the pool started and answers the requests still queued. */
  close (): void {
    for (const timer of this.#timers) clearTimeout(timer)
    this.#timers.clear()
    this.queue.close()
  }

  /** `added`: joins a running pool (add()), rather than being one of the backends it was built with. */
  #join (config: BackendConfig, added = false): Worker {
    const worker = new Worker(config, this.#ordinal++)
    // A newcomer starts at the current virtual time, level with the others, not ahead of them all.
    worker.turn = this.#clock
    this.#selector.joined?.(worker, added)
    worker.load = this.#selector.load(worker)
    this.workers.push(worker)
    if (added) {
      this.#selector.workersChanged?.()
      this.#rampUp(worker)
    }
    this.#place(worker)
    this.#changed(worker)
    this.#serveQueue()
    return worker
  }

  /** Takes the worker out of the list: it is out of the heap already, being drained. */
  #leave (worker: Worker): void {
    const index = this.workers.indexOf(worker)
    if (index >= 0) this.workers.splice(index, 1)
    this.#selector.workersChanged?.()
    this.#changed(worker)
  }

  /** Its key changed outside acquire and release (weight, latency): takes it again and moves the worker. */
  #reorder (worker: Worker): void {
    worker.load = this.#selector.load(worker)
    this.#place(worker)
  }

  /** Puts the worker where it belongs: in the heap, sifted, while it can take requests; out of it otherwise. */
  #place (worker: Worker): void {
    const weight = worker.inRotation ? worker.effectiveWeight : 0
    if (weight !== worker.weightInRotation) this.#weigh(worker, weight)
    const belongs = worker.inRotation && worker.hasRoom
    if (belongs && worker.heapIndex < 0) this.#heap.push(worker)
    else if (!belongs && worker.heapIndex >= 0) this.#heap.remove(worker)
    else if (belongs) this.#heap.update(worker)
  }

  /**
   * The worker's weight in rotation changed (it joined, left rotation or came back, or its slow start took a step):
   * the pool's total is added up again, rather than kept by differences, so fractional weights leave no rounding
   * behind. O(n), on those rare events only.
   */
  #weigh (worker: Worker, weight: number): void {
    worker.weightInRotation = weight
    this.#weight = 0
    for (const each of this.workers) this.#weight += each.weightInRotation
  }

  #choose (key: number | undefined): Worker | undefined {
    const { length } = this.#heap
    if (length === 0) return undefined
    const picked = key === undefined ? undefined : this.#selector.pick?.(key)
    if (picked !== undefined) return picked
    return this.#selector.choose === undefined ? this.#heap.peek() : this.#selector.choose(this.#heap.data, length)
  }

  /** Health took everyone out: the least loaded worker with room, whatever its health (a rare, linear path). */
  #failOpen (exclude?: readonly Worker[]): Worker | undefined {
    if (this.workers.some((worker) => worker.inRotation)) return undefined // healthy ones are full: queue
    let best: Worker | undefined
    for (const worker of this.workers) {
      if (worker.draining || !worker.hasRoom || exclude?.includes(worker) === true) continue
      if (best === undefined || worker.load < best.load) best = worker
    }
    return best
  }

  #serveQueue (): void {
    // Requests wait only while no worker can take one, and each event that makes room makes it on one worker: the
    // longest waiting request takes that one whatever its key (hash), so the queue keeps no keys.
    while (this.queue.length > 0) {
      const worker = this.acquire()
      if (worker === undefined) return
      if (!this.queue.dispatch(worker)) this.release(worker)
    }
  }

  /** Slow start: the effective weight climbs from a tenth of the weight to all of it over `slowStart` ms. */
  #rampUp (worker: Worker): void {
    const { slowStart } = this.#settings
    if (slowStart === 0) return
    // A newer ramp (the worker failed and recovered again) replaces this one.
    const ramp = Symbol('ramp')
    this.#ramps.set(worker, ramp)
    let step = 1
    const setWeight = () => {
      if (this.#ramps.get(worker) !== ramp) return
      worker.effectiveWeight = worker.weight * step / rampSteps
      this.#reorder(worker)
      this.#changed(worker)
      if (step++ < rampSteps) this.#later(slowStart / rampSteps, setWeight)
      else this.#ramps.delete(worker)
    }
    setWeight()
  }

  #later (ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer)
      run()
    }, ms)
    timer.unref()
    this.#timers.add(timer)
  }
}
