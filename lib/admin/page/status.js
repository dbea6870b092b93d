// The goload status page: reads the admin listener's snapshots from /events (Server-Sent Events) and keeps one
// section per pool and one table row per backend up to date in place. Vanilla JS, no build step.
// EventSource cannot send an Authorization header, so the stream is read with fetch() and parsed here.
/* global document, sessionStorage, fetch, AbortController, TextDecoderStream, requestAnimationFrame, setTimeout, clearTimeout */

const TOKEN_KEY = 'goload-admin-token'
const MINUTE = 60_000
const SILENCE = 5000 // the server sends a snapshot every 500 ms: this long without a byte and the stream is dead
const SVG = 'http://www.w3.org/2000/svg'

const $ = (id) => document.getElementById(id)
const statusLine = $('status')
const updatedLine = $('updated')
const poolsMain = $('pools')
const routesSection = $('routes')
const routeRows = $('route-rows')
const certificatesSection = $('certificates')
const certificateRows = $('certificate-rows')
const tokenForm = $('token-form')
const tokenInput = $('token')
const forgetButton = $('forget')

// --- the token: kept in sessionStorage (this tab only, never in the URL), sent as a Bearer header ------------------

const token = () => sessionStorage.getItem(TOKEN_KEY)
const authHeaders = () => (token() ? { authorization: `Bearer ${token()}` } : {})

function askToken (message) {
  say(message)
  tokenForm.hidden = false
  tokenInput.focus()
}

tokenForm.addEventListener('submit', (event) => {
  event.preventDefault()
  sessionStorage.setItem(TOKEN_KEY, tokenInput.value)
  tokenInput.value = ''
  tokenForm.hidden = true
  forgetButton.hidden = false
  connect()
})

forgetButton.addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY)
  forgetButton.hidden = true
  connect()
})
forgetButton.hidden = !token()

// The polite live region announces connection changes and action results, not every snapshot.
function say (message) {
  if (statusLine.textContent !== message) statusLine.textContent = message
}

// --- the event stream ------------------------------------------------------------------------------------------

/** An SSE parser (event:/data: lines, blank line ends an event, `:` lines are comments): feed it text chunks. */
function sseParser (onEvent) {
  let partial = ''
  let type = ''
  let data = []
  return (chunk) => {
    let text = partial + chunk
    // A chunk ending in \r may be half of \r\n: keep it for the next one.
    const keep = text.endsWith('\r') ? '\r' : ''
    if (keep) text = text.slice(0, -1)
    const lines = text.split(/\r\n|\r|\n/)
    partial = lines.pop() + keep
    for (const line of lines) {
      if (line === '') {
        if (data.length > 0) onEvent(type || 'message', data.join('\n'))
        type = ''
        data = []
        continue
      }
      if (line.startsWith(':')) continue
      const colon = line.indexOf(':')
      const field = colon === -1 ? line : line.slice(0, colon)
      const value = colon === -1 ? '' : line.slice(colon + 1).replace(/^ /, '')
      if (field === 'event') type = value
      else if (field === 'data') data.push(value)
    }
  }
}

let current = null // the AbortController of the stream being read
let retryTimer = null
let attempts = 0

function connect () {
  current?.abort()
  clearTimeout(retryTimer)
  const controller = new AbortController()
  current = controller
  read(controller).catch((error) => {
    if (controller.signal.aborted && current !== controller) return // replaced by a newer connection
    retry(`Connection lost (${error.message})`)
  })
}

function retry (why) {
  attempts++
  const delay = Math.min(10_000, 500 * 2 ** Math.min(attempts - 1, 5))
  say(`${why}; reconnecting in ${(delay / 1000).toFixed(1)} s`)
  clearTimeout(retryTimer)
  retryTimer = setTimeout(connect, delay)
}

async function read (controller) {
  const response = await fetch('events', { headers: authHeaders(), signal: controller.signal, cache: 'no-store' })
  if (response.status === 401) {
    controller.abort()
    askToken(token() ? 'The admin listener refused this token: enter it again.' : 'This admin listener needs its token.')
    return
  }
  if (!response.ok || !response.body) throw new Error(`the event stream answered ${response.status}`)
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader()
  let watchdog
  const quiet = () => {
    clearTimeout(watchdog)
    watchdog = setTimeout(() => controller.abort(), SILENCE)
  }
  let first = true
  let renew = false // the server ended a stream that had lasted its time: a new one, at once and quietly
  const parse = sseParser((type, data) => {
    if (type === 'reconnect') renew = true
    if (type !== 'snapshot') return
    if (first) say('Live')
    first = false
    attempts = 0
    received(JSON.parse(data))
  })
  quiet()
  try {
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      quiet()
      parse(value)
    }
  } finally {
    clearTimeout(watchdog)
  }
  if (current !== controller) return
  if (renew) connect()
  else retry('The event stream ended')
}

// --- state kept between snapshots --------------------------------------------------------------------------------

const pools = new Map() // pool name → { section, refs, rows: Map(id → row), history: [{ at, rate, p99 }], last }
let latest = null
let frame = 0

function received (snapshot) {
  for (const pool of snapshot.pools) {
    const view = pools.get(pool.name) ?? addPool(pool.name)
    // Requests/s: the server's own 1 s figure, or the difference from the previous snapshot.
    let rate = pool.rate
    if (typeof rate !== 'number') {
      rate = view.last && snapshot.at > view.last.at ? (1000 * (pool.requests - view.last.requests)) / (snapshot.at - view.last.at) : 0
    }
    view.last = { at: snapshot.at, requests: pool.requests }
    view.history.push({ at: snapshot.at, rate, p99: pool.p99 })
    while (view.history.length > 0 && view.history[0].at < snapshot.at - MINUTE) view.history.shift()
    view.rate = rate
  }
  latest = snapshot
  // At most one render per frame, and none while the tab is hidden: the latest snapshot wins.
  if (frame === 0) frame = requestAnimationFrame(render)
}

// --- rendering: elements are made once and then only their text, width and attributes change ---------------------

function el (tag, attributes = {}, ...children) {
  const node = document.createElement(tag)
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value)
  node.append(...children)
  return node
}

function setText (node, text) {
  if (node.textContent !== text) node.textContent = text
}

const COLUMNS = [
  ['Backend'], ['State'], ['Pending'], ['Served'], ['Failed'], ['Retried'], ['Upgraded'],
  ['p50', 'Median upstream latency over the last minute (ms)'], ['p99', '99th percentile upstream latency over the last minute (ms)'],
  ['Weight'], ['Action']
]

let poolCount = 0

function addPool (name) {
  const n = poolCount++
  const dd = () => el('dd')
  const refs = { strategy: dd(), queued: dd(), rate: dd(), p99: dd(), shed: dd(), sticky: dd() }
  const summary = el('dl', { class: 'summary' },
    ...[['Strategy', refs.strategy], ['Queued', refs.queued], ['Requests/s', refs.rate], ['p99', refs.p99], ['Shed', refs.shed], ['Sticky', refs.sticky]]
      .map(([label, value]) => el('div', {}, el('dt', {}, label), value)))
  addPolicies(summary, refs)
  // Shown for a pool with a sticky cookie only.
  refs.sticky.parentElement.hidden = true
  refs.rateSpark = sparkline()
  refs.p99Spark = sparkline()
  const sparks = el('div', { class: 'sparks' },
    el('figure', {}, el('figcaption', {}, 'Requests/s, last minute'), refs.rateSpark.svg),
    el('figure', {}, el('figcaption', {}, 'p99 upstream latency (ms), last minute'), refs.p99Spark.svg))
  const head = el('tr', {}, ...COLUMNS.map(([label, title]) => el('th', title ? { scope: 'col', title } : { scope: 'col' }, label)))
  refs.tbody = el('tbody')
  const table = el('table', {}, el('caption', {}, `Backends of pool ${name}`), el('thead', {}, head), refs.tbody)
  const wrap = el('div', { class: 'table-wrap', role: 'region', 'aria-label': `Backends of pool ${name}`, tabindex: '0' }, table)
  const title = el('h2', { id: `pool-${n}` }, name)
  const section = el('section', { class: 'pool', 'aria-labelledby': `pool-${n}`, 'data-pool': name }, title, summary, sparks, wrap)
  poolsMain.append(section)
  const view = { name, section, refs, rows: new Map(), history: [], last: null, rate: 0 }
  pools.set(name, view)
  return view
}

function addRow (view, id) {
  const cell = () => el('td', { class: 'num' })
  const refs = {
    next: el('span', { class: 'next-mark', title: 'The backend the heap would pick next' }, 'next'),
    state: el('span', { class: 'state' }),
    fill: el('span', { class: 'fill' }),
    pending: el('span', { class: 'count' }),
    served: cell(),
    failed: cell(),
    retried: cell(),
    upgraded: cell(),
    p50: cell(),
    p99: cell(),
    weight: cell(),
    button: el('button', { type: 'button' }, 'Drain')
  }
  refs.next.hidden = true
  // A URL id may wrap after its scheme rather than anywhere.
  const scheme = id.indexOf('://') + 3
  const idText = scheme > 2 ? [id.slice(0, scheme), el('wbr'), id.slice(scheme)] : [id]
  const name = el('th', { scope: 'row' }, el('span', { class: 'id' }, ...idText), ' ', refs.next)
  const bar = el('span', { class: 'bar', 'aria-hidden': 'true' }, refs.fill)
  const row = el('tr', { 'data-backend': id },
    name,
    el('td', {}, refs.state),
    el('td', {}, el('span', { class: 'pending' }, bar, refs.pending)),
    refs.served, refs.failed, refs.retried, refs.upgraded, refs.p50, refs.p99, refs.weight,
    el('td', {}, refs.button))
  refs.button.addEventListener('click', () => act(view.name, id, refs.button.dataset.action, refs.button))
  view.refs.tbody.append(row)
  const entry = { row, refs, url: '' }
  view.rows.set(id, entry)
  return entry
}

const two = (n) => String(n).padStart(2, '0')
const clock = (ms) => {
  const d = new Date(ms)
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}`
}
const ms = (value) => (value === null || value === undefined ? '–' : value < 10 ? value.toFixed(1) : String(Math.round(value)))
const perSecond = (value) => (value < 10 ? value.toFixed(1) : String(Math.round(value)))

function stateText (backend) {
  switch (backend.state) {
    case 'ejected': return backend.ejectedUntil ? `ejected until ${clock(backend.ejectedUntil)}` : 'ejected'
    case 'slow-start': return `slow start ${Math.round(backend.slowStart ?? 0)}%`
    default: return backend.state
  }
}

function render () {
  frame = 0
  const snapshot = latest
  setText(updatedLine, `pid ${snapshot.pid}, snapshot of ${clock(snapshot.at)}`)
  const seen = new Set()
  for (const pool of snapshot.pools) {
    seen.add(pool.name)
    renderPool(pools.get(pool.name), pool)
  }
  for (const [name, view] of pools) {
    if (!seen.has(name)) {
      view.section.remove()
      pools.delete(name)
    }
  }
  renderRoutes(snapshot.routes ?? [])
  renderCertificates(snapshot.certificates ?? [], snapshot.at)
}

// One row per pool of each split route; made again only when what they show changes (a request, a new weight).
let routesShown = ''
function renderRoutes (routes) {
  const key = JSON.stringify(routes)
  if (key === routesShown) return
  routesShown = key
  routesSection.hidden = routes.length === 0
  routeRows.replaceChildren(...routes.flatMap(({ id, pools }) => {
    const total = pools.reduce((sum, { weight }) => sum + weight, 0)
    return pools.map(({ pool, weight, configured, requests }, index) => el('tr', { 'data-route': id, 'data-pool': pool },
      index === 0 ? el('th', { scope: 'row', rowspan: String(pools.length) }, id) : '',
      el('td', {}, pool),
      el('td', { class: 'num', title: weight === configured ? 'as configured' : `configured: ${configured}` }, weight === configured ? String(weight) : `${weight} (was ${configured})`),
      el('td', { class: 'num' }, total === 0 ? '–' : `${Math.round(weight / total * 1000) / 10}%`),
      el('td', { class: 'num' }, String(requests))))
  }))
}

// Few rows that rarely change (a renewal, a reload): made again only when what they show changes.
let certificatesShown = ''
function renderCertificates (certificates, at) {
  const days = (expires) => Math.floor((expires * 1000 - at) / 86_400_000)
  const key = JSON.stringify(certificates.map(({ name, port, source, expires }) => [name, port, source, expires, days(expires)]))
  if (key === certificatesShown) return
  certificatesShown = key
  certificatesSection.hidden = certificates.length === 0
  certificateRows.replaceChildren(...certificates.map(({ name, port, source, expires }) => {
    const left = days(expires)
    const when = `${new Date(expires * 1000).toISOString().slice(0, 10)} (${left < 0 ? 'expired' : `${left} days`})`
    return el('tr', { 'data-certificate': name },
      el('th', { scope: 'row' }, name), el('td', { class: 'num' }, String(port)), el('td', {}, source),
      el('td', left < 14 ? { class: 'expiring' } : {}, when))
  }))
}

/** The circuit breaker and retry budget of a pool that has them: hidden until a snapshot says it does. */
function addPolicies (summary, refs) {
  refs.circuit = el('span', { class: 'state' })
  refs.circuitItem = el('div', { hidden: '' }, el('dt', {}, 'Circuit'), el('dd', {}, refs.circuit))
  refs.budget = el('dd')
  refs.budgetItem = el('div', { hidden: '' }, el('dt', { title: 'Retries in flight now; retries the budget refused' }, 'Retry budget'), refs.budget)
  summary.append(refs.circuitItem, refs.budgetItem)
}

function renderPolicies (refs, pool) {
  const { circuit, retryBudget } = pool
  refs.circuitItem.hidden = !circuit
  if (circuit) {
    const text = circuit.state === 'open' && circuit.retryAfter !== null ? `open (${circuit.retryAfter} s)` : circuit.state
    setText(refs.circuit, text)
    refs.circuit.dataset.state = circuit.state
  }
  refs.budgetItem.hidden = !retryBudget
  if (retryBudget) setText(refs.budget, `${retryBudget.retrying} retrying, ${retryBudget.exhausted} refused`)
}

/** A mirror pool's copies (README, Mirroring): a summary entry of its own, added once a route mirrors to the pool. */
function renderMirror (view, mirror) {
  if (mirror === null || mirror === undefined) return
  if (view.refs.mirror === undefined) {
    view.refs.mirror = el('dd')
    view.section.querySelector('dl.summary').append(el('div', { 'data-mirror': '' }, el('dt', {}, 'Mirrored'), view.refs.mirror))
  }
  const skipped = Object.entries(mirror.skipped).filter(([, count]) => count > 0)
  const reasons = skipped.length === 0 ? '' : ` (${skipped.map(([reason, count]) => `${count} ${reason.replace('_', ' ')}`).join(', ')})`
  setText(view.refs.mirror, `${mirror.sent} sent, ${mirror.failed} failed, ${skipped.reduce((sum, [, count]) => sum + count, 0)} skipped${reasons}`)
}

function renderPool (view, pool) {
  const { refs } = view
  renderPolicies(refs, pool)
  setText(refs.strategy, pool.strategy)
  setText(refs.queued, String(pool.queued))
  setText(refs.rate, perSecond(view.rate))
  setText(refs.p99, pool.p99 === null || pool.p99 === undefined ? '–' : `${ms(pool.p99)} ms`)
  const shed = Object.entries(pool.shed ?? {}).filter(([, count]) => count > 0)
  setText(refs.shed, shed.length === 0 ? '0' : shed.map(([reason, count]) => `${count} ${reason.replace('_', ' ')}`).join(', '))
  renderMirror(view, pool.mirror)
  refs.sticky.parentElement.hidden = !pool.sticky
  if (pool.sticky) setText(refs.sticky, `${pool.sticky.cookie} by cookie, ${pool.sticky.assigned} new`)
  drawSpark(refs.rateSpark, view.history.map((point) => [point.at, point.rate]), 'Requests per second', perSecond)
  drawSpark(refs.p99Spark, view.history.map((point) => [point.at, point.p99]), 'p99 upstream latency in ms', ms)

  const maxPending = Math.max(0, ...pool.backends.map((backend) => backend.pending))
  const seen = new Set()
  let previous = null
  for (const backend of pool.backends) {
    seen.add(backend.id)
    const entry = view.rows.get(backend.id) ?? addRow(view, backend.id)
    const { row, refs: cells } = entry
    // Keep the rows in the snapshot's order (a backend added at runtime appears where the pool lists it).
    if (row.previousElementSibling !== previous) {
      if (previous) previous.after(row)
      else view.refs.tbody.prepend(row)
    }
    previous = row
    if (entry.url !== backend.url) {
      entry.url = backend.url
      row.querySelector('th').title = backend.url
    }
    const isNext = pool.next === backend.id
    if (cells.next.hidden === isNext) cells.next.hidden = !isNext
    row.classList.toggle('is-next', isNext)
    setText(cells.state, stateText(backend))
    if (cells.state.dataset.state !== backend.state) cells.state.dataset.state = backend.state
    // The bar is scaled (a compositor-only change), relative to the busiest backend of this pool.
    const share = maxPending === 0 ? 0 : backend.pending / maxPending
    const transform = `scaleX(${share.toFixed(3)})`
    if (cells.fill.style.transform !== transform) cells.fill.style.transform = transform
    setText(cells.pending, String(backend.pending))
    setText(cells.served, String(backend.served))
    setText(cells.failed, String(backend.failed))
    setText(cells.retried, String(backend.retried))
    setText(cells.upgraded, String(backend.upgraded))
    setText(cells.p50, ms(backend.latency?.p50))
    setText(cells.p99, ms(backend.latency?.p99))
    setText(cells.weight, String(backend.weight))
    const action = backend.draining ? 'undrain' : 'drain'
    if (cells.button.dataset.action !== action) {
      cells.button.dataset.action = action
      cells.button.textContent = backend.draining ? 'Undrain' : 'Drain'
      cells.button.setAttribute('aria-label', `${backend.draining ? 'Undrain' : 'Drain'} ${backend.id}`)
    }
  }
  for (const [id, { row }] of view.rows) {
    if (!seen.has(id)) {
      row.remove()
      view.rows.delete(id)
    }
  }
}

// --- sparklines: one inline SVG path per chart, x over the last minute, y scaled to the minute's peak -------------

const WIDTH = 120
const HEIGHT = 32

function sparkline () {
  const svg = document.createElementNS(SVG, 'svg')
  svg.setAttribute('viewBox', `0 0 ${WIDTH} ${HEIGHT}`)
  svg.setAttribute('preserveAspectRatio', 'none')
  svg.setAttribute('role', 'img')
  svg.setAttribute('class', 'spark')
  const path = document.createElementNS(SVG, 'path')
  path.setAttribute('vector-effect', 'non-scaling-stroke')
  svg.append(path)
  return { svg, path }
}

function drawSpark ({ svg, path }, points, label, format) {
  const values = points.filter(([, value]) => typeof value === 'number')
  const last = points.length > 0 ? points[points.length - 1][0] : 0
  const peak = Math.max(0, ...values.map(([, value]) => value))
  let d = ''
  let pen = 'M'
  for (const [at, value] of points) {
    if (typeof value !== 'number') {
      pen = 'M' // a gap where the value was unknown
      continue
    }
    const x = WIDTH - ((last - at) / MINUTE) * WIDTH
    const y = HEIGHT - 1 - (peak === 0 ? 0 : (value / peak) * (HEIGHT - 2))
    d += `${pen}${x.toFixed(1)} ${y.toFixed(1)}`
    pen = 'L'
  }
  path.setAttribute('d', d || 'M0 0')
  const now = values.length > 0 ? values[values.length - 1][1] : null
  svg.setAttribute('aria-label', now === null ? `${label}: no data yet` : `${label}: now ${format(now)}, peak ${format(peak)} in the last minute`)
}

// --- actions -----------------------------------------------------------------------------------------------------

async function act (pool, id, action, button) {
  button.disabled = true
  try {
    const url = `pools/${encodeURIComponent(pool)}/backends/${encodeURIComponent(id)}/${action}`
    const response = await fetch(url, { method: 'POST', headers: authHeaders() })
    if (response.status === 401) {
      askToken(token() ? `The token was refused, ${id} was not changed: enter it again.` : `To ${action} ${id}, enter the admin token.`)
      return
    }
    const body = await response.json().catch(() => null)
    if (!response.ok) {
      say(`Could not ${action} ${id}: ${body?.message ?? `HTTP ${response.status}`}`)
      return
    }
    say(body?.draining ? `${id} is draining` : `${id} is back in rotation`)
  } catch (error) {
    say(`Could not ${action} ${id}: ${error.message}`)
  } finally {
    button.disabled = false
  }
}

connect()
