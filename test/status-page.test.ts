import { mkdir } from 'node:fs/promises'
import http from 'node:http'
import path from 'node:path'
import Fastify from 'fastify'
import puppeteer, { type Page } from 'puppeteer-core'
import t, { type Test } from 'tap'
import goload from '../lib/index.js'
import { programAt } from './helpers/ci.js'
import type { Snapshot } from '../lib/admin/snapshot.js'
import { startAdminOf } from './helpers/admin.js'
import { accepting, configFile, freePort, runMain } from './helpers/cli.js'
import { request } from './helpers/client.js'
import { capturedLogs } from './helpers/logs.js'
import { closeServer, startBackend, startBalancer, waitFor, type Handler } from './helpers/servers.js'

// The status page in a real browser: Debian's chromium, headless, driven by puppeteer-core (which never downloads
// one). Without the binary the test is skipped, except under CI (.ci/run installs it), where it fails.
const chromium = programAt(process.env.CHROMIUM ?? '/usr/bin/chromium', 'apt-get install chromium')
const artifacts = path.resolve(import.meta.dirname, 'artifacts')

const token = 'status-page-test-token'

/** The page in a fresh headless chromium, closed when the test ends; errors thrown in the page are collected. */
async function openPage (t: Test, url: string): Promise<{ page: Page, errors: string[] }> {
  chromium.require()
  const browser = await puppeteer.launch({ executablePath: chromium.command, args: ['--no-sandbox', '--headless=new'] })
  t.teardown(() => browser.close())
  const page = await browser.newPage()
  // Each wait fails the test after 10 s rather than tap's two minutes.
  page.setDefaultTimeout(10_000)
  const errors: string[] = []
  page.on('pageerror', (error) => { errors.push(String(error)) })
  await page.setViewport({ width: 1100, height: 700 })
  await page.goto(url)
  return { page, errors }
}

/** Answers after a random delay in [lo, hi] ms: requests pile up at a backend, so its pending count moves. */
const after = (lo: number, hi: number): Handler => (req, res) => {
  req.resume()
  req.on('end', () => { setTimeout(() => res.end('ok'), lo + Math.random() * (hi - lo)) })
}

t.test('the status page: rows, moving pending bars, the next pick, an ejection shown as /stats says it, drain from the page', { skip: chromium.skip }, async (t) => {
  const fast = await startBackend(t, after(2, 10))
  const slow = await startBackend(t, after(40, 120))
  const victim = await startBackend(t, after(2, 10))
  const [port, adminPort] = [await freePort(), await freePort()]
  const file = await configFile(t, `
listeners:
  - port: ${port}
    host: 127.0.0.1
    routes:
      - path: /
        pool: web
pools:
  web:
    backends: [${fast.url}, ${slow.url}, ${victim.url}]
    passiveHealth:
      maxFails: 1
      window: 10000
      ejectFor: 60000
admin:
  host: 127.0.0.1
  port: ${adminPort}
  token: \${GOLOAD_ADMIN_TOKEN}
log:
  level: warn
`)
  runMain(t, ['--config', file], { GOLOAD_ADMIN_TOKEN: token })
  await Promise.all([accepting(port), accepting(adminPort)])
  const admin = `http://127.0.0.1:${adminPort}`
  const backendStats = async (url: string) => {
    const answer = await request(`${admin}/stats`, { headers: { authorization: `Bearer ${token}` } })
    return JSON.parse(answer.body).pools[0].backends.find((backend: { url: string }) => backend.url === url)
  }

  // Load from this process while the page watches: 12 loops of requests on loopback until the test ends, bounded in
  // time besides. The bound is far past what the steps take: on a loaded machine, chromium's launch and the steps
  // before the ejection took over a minute, and a load that had stopped by then ejected nothing.
  const agent = new http.Agent({ keepAlive: true })
  const done = new AbortController()
  const until = Date.now() + 5 * 60_000
  const loop = async () => {
    while (!done.signal.aborted && Date.now() < until) await request(`http://127.0.0.1:${port}/`, { agent }).catch(() => {})
  }
  const load = Promise.all(Array.from({ length: 12 }, loop))
  t.teardown(async () => {
    done.abort()
    await load
    agent.destroy()
  })

  const { page, errors } = await openPage(t, `${admin}/`)

  // The page itself needs no token; the data does: the page asks for it, and a wrong one is refused.
  await page.waitForSelector('#token-form:not([hidden])')
  await page.type('#token', 'not-the-token')
  await page.click('#token-form button[type=submit]')
  await page.waitForFunction(() => /refused/.test(document.getElementById('status')!.textContent!) && !document.getElementById('token-form')!.hidden)
  await page.type('#token', token)
  await page.click('#token-form button[type=submit]')

  // One row per backend, in a table with headers.
  await page.waitForFunction(() => document.querySelectorAll('tr[data-backend]').length === 3)
  t.same(await page.$$eval('tr[data-backend]', (rows) => rows.map((row) => row.getAttribute('data-backend'))), [fast.url, slow.url, victim.url])
  t.ok((await page.$$eval('thead th[scope=col]', (cells) => cells.map((cell) => cell.textContent))).includes('Pending'), 'column headers')
  t.equal(await page.$eval('#status', (status) => status.textContent), 'Live')
  t.notOk(page.url().includes(token), 'the token is not in the URL')
  t.equal(await page.evaluate(() => sessionStorage.getItem('goload-admin-token')), token, 'the token is kept in sessionStorage')

  // The pending numbers and bars move under load.
  const readPending = (page: Page) => page.$$eval('tr[data-backend]', (rows) => rows.map((row) => [
    row.querySelector('.count')!.textContent, (row.querySelector('.fill') as HTMLElement).style.transform
  ]))
  const before = await readPending(page)
  // The moment they moved, as the page saw it: read again later, the counts may be back where they were.
  const moved = await (await page.waitForFunction((before: string[][]) => {
    const now = [...document.querySelectorAll('tr[data-backend]')].map((row) => [row.querySelector('.count')!.textContent, (row.querySelector('.fill') as HTMLElement).style.transform])
    return now.some(([count], i) => count !== before[i][0]) && now.some(([, bar], i) => bar !== before[i][1]) && JSON.stringify(now)
  }, {}, before)).jsonValue()
  t.not(moved, JSON.stringify(before), 'a pending count and a bar changed')

  // The heap's next pick is marked on exactly one row, as text.
  await page.waitForFunction(() => document.querySelectorAll('tr[data-backend] .next-mark:not([hidden])').length === 1)
  t.equal(await page.$eval('tr[data-backend] .next-mark:not([hidden])', (mark) => mark.textContent), 'next')

  // A backend that goes away is ejected by passive health (maxFails 1): the page says so soon after /stats does.
  const victimRow = `tr[data-backend="${victim.url}"]`
  const shown = page.waitForFunction((selector: string) => /^ejected until \d\d:\d\d:\d\d$/.test(document.querySelector(`${selector} .state`)!.textContent!), {}, victimRow)
    .then(() => Date.now())
  await closeServer(victim.server)
  let ejectedAt = 0
  const giveUp = Date.now() + 10_000
  while (ejectedAt === 0) {
    if (Date.now() > giveUp) throw new Error('/stats never said the closed backend was ejected')
    if ((await backendStats(victim.url)).state === 'ejected') ejectedAt = Date.now()
  }
  const shownAt = await shown
  // The page hears of it through its event stream; the margin is for a loaded machine.
  t.ok(shownAt - ejectedAt < 5000, `the row said ejected ${shownAt - ejectedAt} ms after /stats did`)
  t.equal(await page.$eval(`${victimRow} .state`, (state) => state.getAttribute('data-state')), 'ejected')

  // Drain from the page: the button of the fast backend's row; the row and /stats say draining.
  const fastRow = `tr[data-backend="${fast.url}"]`
  t.equal(await page.$eval(`${fastRow} button`, (button) => button.getAttribute('aria-label')), `Drain ${fast.url}`)
  await page.click(`${fastRow} button`)
  await page.waitForFunction((selector: string) => document.querySelector(`${selector} .state`)!.textContent === 'draining' &&
    document.querySelector(`${selector} button`)!.textContent === 'Undrain', {}, fastRow)
  const drained = await backendStats(fast.url)
  t.equal(drained.draining, true, '/stats says draining')
  t.equal(drained.state, 'draining')
  t.equal(await page.$eval('#status', (status) => status.textContent), `${fast.url} is draining`)

  await mkdir(artifacts, { recursive: true })
  await page.screenshot({ path: path.join(artifacts, 'status-page.png'), fullPage: true })
  t.same(errors, [], 'no errors in the page')
})

t.test('a pool\'s circuit breaker and retry budget in its summary: closed, then open with its seconds left', { skip: chromium.skip }, async (t) => {
  let failing = false
  const backend = await startBackend(t, (req, res) => { req.resume(); res.statusCode = failing ? 500 : 200; res.end() })
  const balancer = await startBalancer(t, {
    backends: [backend.url],
    name: 'api',
    passiveHealth: false,
    circuitBreaker: { minRequests: 2, openFor: 60_000 },
    retryBudget: {}
  })
  const admin = await startAdminOf(t, balancer)
  const { page, errors } = await openPage(t, `${admin.url}/`)
  const circuit = '[data-pool="api"] .summary .state'
  await page.waitForFunction((circuit: string) => document.querySelector(circuit)?.textContent === 'closed', {}, circuit)
  t.match(await page.$eval('[data-pool="api"] .summary', (summary) => summary.textContent), /Retry budget0 retrying, 0 refused/)
  failing = true
  for (let i = 0; i < 3; i++) await request(balancer.url)
  await page.waitForFunction((circuit: string) => /^open \(\d+ s\)$/.test(document.querySelector(circuit)!.textContent!), {}, circuit)
  t.equal(await page.$eval(circuit, (state) => (state as HTMLElement).dataset.state), 'open', 'styled as open')
  t.same(errors, [], 'no errors in the page')
})

t.test('without a token (--admin on loopback) the page connects at once, and Drain and Undrain act without one', { skip: chromium.skip }, async (t) => {
  const [one, two] = [await startBackend(t), await startBackend(t)]
  const [port, adminPort] = [await freePort(), await freePort()]
  runMain(t, ['--backend', one.url, '--backend', two.url, '--host', '127.0.0.1', '--port', String(port), '--admin', `127.0.0.1:${adminPort}`])
  await Promise.all([accepting(port), accepting(adminPort)])
  const { page, errors } = await openPage(t, `http://127.0.0.1:${adminPort}/`)
  await page.waitForFunction(() => document.getElementById('status')!.textContent === 'Live')
  t.equal(await page.$eval('#token-form', (form) => (form as HTMLFormElement).hidden), true, 'no token asked for')
  await page.waitForFunction(() => document.querySelectorAll('tr[data-backend]').length === 2)

  const row = `tr[data-backend="${two.url}"]`
  const stateOf = async () => JSON.parse((await request(`http://127.0.0.1:${adminPort}/stats`)).body).pools[0].backends[1]
  await page.click(`${row} button`)
  await page.waitForFunction((row: string) => document.querySelector(`${row} .state`)!.textContent === 'draining', {}, row)
  t.equal((await stateOf()).draining, true, 'drained')
  await page.click(`${row} button`)
  await page.waitForFunction((row: string) => document.querySelector(`${row} .state`)!.textContent === 'up' &&
    document.querySelector(`${row} button`)!.textContent === 'Drain', {}, row)
  t.equal((await stateOf()).draining, false, 'back in rotation')
  t.equal(await page.$eval('#status', (status) => status.textContent), `${two.url} is back in rotation`)
  t.same(errors, [], 'no errors in the page')
})

t.test('the stream ends when goload stops: the page says so, retries, and is live again once goload is back', { skip: chromium.skip }, async (t) => {
  const backend = await startBackend(t)
  const [port, adminPort] = [await freePort(), await freePort()]
  const argv = ['--backend', backend.url, '--host', '127.0.0.1', '--port', String(port), '--admin', `127.0.0.1:${adminPort}`]
  const first = runMain(t, argv)
  await accepting(adminPort)
  const { page, errors } = await openPage(t, `http://127.0.0.1:${adminPort}/`)
  await page.waitForFunction(() => document.getElementById('status')!.textContent === 'Live')

  first.signals.emit('SIGTERM', 'SIGTERM')
  t.equal(await first.code, 0)
  await page.waitForFunction(() => /^The event stream ended; reconnecting in \d/.test(document.getElementById('status')!.textContent!))
  runMain(t, argv)
  await page.waitForFunction(() => document.getElementById('status')!.textContent === 'Live')
  await page.waitForFunction(() => document.querySelectorAll('tr[data-backend]').length === 1)
  t.same(errors, [], 'no errors in the page')
})

t.test('a page on another origin cannot drive a tokenless admin: its no-cors POSTs are refused and the pool is unchanged; the admin\'s own page acts and renews its stream quietly', { skip: chromium.skip }, async (t) => {
  const a = await startBackend(t)
  const balancer = await startBalancer(t, { name: 'app', backends: [a.url] })
  const logs = capturedLogs('warn')
  const admin = await startAdminOf(t, balancer, { log: Fastify({ logger: logs.logger }).log, streamMaxAge: 1500 })
  // What a page anywhere could run: no preflight is needed for either request, and no-cors hides only the answer.
  const attack = `<!doctype html><title>loading</title><script>
    Promise.allSettled([
      fetch(${JSON.stringify(admin.url)} + '/pools/app/backends', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: 'http://127.0.0.1:1' }),
      fetch(${JSON.stringify(`${admin.url}/pools/app/backends/${encodeURIComponent(a.url)}/drain`)}, { method: 'POST', mode: 'no-cors' })
    ]).then((results) => { document.title = 'sent: ' + results.map((result) => result.status).join(',') })
  </script>`
  const attacker = await startBackend(t, (req, res) => { res.writeHead(200, { 'content-type': 'text/html' }).end(attack) })
  const backends = async () => (JSON.parse((await request(`${admin.url}/stats`)).body) as Snapshot).pools[0].backends.map(({ id, draining }) => ({ id, draining }))

  const origins = [attacker.url, attacker.url.replace('127.0.0.1', 'localhost')]
  const { page: first } = await openPage(t, `${origins[0]}/`)
  for (const [index, origin] of origins.entries()) {
    const page = index === 0 ? first : await first.browser().newPage()
    if (index > 0) await page.goto(`${origin}/`)
    await page.waitForFunction(() => document.title === 'sent: fulfilled,fulfilled')
    t.same(await backends(), [{ id: a.url, draining: false }], `after the page on ${origin}: no backend added, none drained`)
  }
  // Both reached the admin, and were refused for their Origin.
  t.same(logs.warnings().map((line) => [line.origin, line.msg.replace(/: Forbidden.*/, '')]).sort(), origins.flatMap((origin) => [
    [origin, 'goload admin: refused POST /pools/app/backends'],
    [origin, `goload admin: refused POST /pools/app/backends/${encodeURIComponent(a.url)}/drain`]
  ]).sort(), 'each request refused, none answered')

  // The admin's own page, same browser: its stream is renewed after streamMaxAge without a word, and its buttons act.
  const own = await first.browser().newPage()
  own.setDefaultTimeout(10_000)
  let streams = 0
  own.on('request', (sent) => { if (sent.url().endsWith('/events')) streams++ })
  await own.goto(`${admin.url}/`)
  await own.waitForFunction(() => document.getElementById('status')!.textContent === 'Live')
  await own.evaluate(() => {
    const said: string[] = []
    ;(window as unknown as { said: string[] }).said = said
    new MutationObserver(() => { said.push(document.getElementById('status')!.textContent!) }).observe(document.getElementById('status')!, { childList: true, characterData: true, subtree: true })
  })
  const row = `tr[data-backend="${a.url}"]`
  await own.waitForSelector(row)
  const renewedAt = streams + 1
  await waitFor(() => streams >= renewedAt, 'the page to open a new stream')
  await own.click(`${row} button`)
  await own.waitForFunction((selector: string) => document.querySelector(`${selector} .state`)!.textContent === 'draining', {}, row)
  t.same(await backends(), [{ id: a.url, draining: true }], 'drained from its own page')
  t.same(await own.evaluate(() => (window as unknown as { said: string[] }).said), [`${a.url} is draining`], 'nothing said of the renewal')
})

t.test('the Certificates table: each certificate served with its port, source and expiry; one close to expiry is marked', { skip: chromium.skip }, async (t) => {
  const balancer = await startBalancer(t, { name: 'app', backends: [(await startBackend(t)).url] })
  const now = Date.now() / 1000
  const admin = await startAdminOf(t, balancer, {
    certificates: () => [
      { name: 'app.example.com', source: 'acme https://acme.example.com/dir', port: 443, expires: now + 60 * 86_400 + 3600 },
      { name: 'old.example.com', source: '/etc/goload/old.pem', port: 8443, expires: now + 3 * 86_400 + 3600 }
    ]
  })
  const { page, errors } = await openPage(t, `${admin.url}/`)
  await page.waitForFunction(() => document.querySelectorAll('tr[data-certificate]').length === 2)
  t.equal(await page.$eval('#certificates', (section) => (section as HTMLElement).hidden), false)
  const rows = await page.$$eval('tr[data-certificate]', (rows) => rows.map((row) => [...row.children].map((cell) => ({ text: cell.textContent, expiring: cell.classList.contains('expiring') }))))
  t.same(rows.map((cells) => cells.slice(0, 3).map(({ text }) => text)), [['app.example.com', '443', 'acme https://acme.example.com/dir'], ['old.example.com', '8443', '/etc/goload/old.pem']])
  t.match(rows[0][3], { text: /^\d{4}-\d\d-\d\d \(60 days\)$/, expiring: false })
  t.match(rows[1][3], { text: /^\d{4}-\d\d-\d\d \(3 days\)$/, expiring: true }, 'under two weeks left is marked')
  t.same(errors, [], 'no errors in the page')
})

t.test('a mirror pool\'s summary shows its copies: sent, failed and skipped by reason', { skip: chromium.skip }, async (t) => {
  const mirror = await startBackend(t)
  const balancer = await startBalancer(t, { name: 'api', backends: [(await startBackend(t)).url], mirror: { pool: 'next', maxBody: 2 } }, {}, async (app) => {
    await app.register(goload, { name: 'next', prefix: '/next', backends: [mirror.url] })
  })
  t.equal((await request(`${balancer.url}/a`)).status, 200)
  t.equal((await request(`${balancer.url}/b`, { method: 'POST', body: 'too long' })).status, 200)
  await waitFor(() => mirror.received === 1 && mirror.active === 0, 'the copy answered')
  const admin = await startAdminOf(t, balancer)
  const { page, errors } = await openPage(t, `${admin.url}/`)
  await page.waitForFunction(() => document.querySelector('section[data-pool="next"] [data-mirror] dd')?.textContent === '1 sent, 0 failed, 1 skipped (1 too large)')
  t.equal(await page.$('section[data-pool="api"] [data-mirror]'), null, 'nothing on a pool no route mirrors to')
  t.same(errors, [], 'no errors in the page')
})

t.test('the Splits table: each split route\'s pools with their weights, shares and requests, a changed weight marked; sticky counts in the pool summary', { skip: chromium.skip }, async (t) => {
  const app = Fastify()
  for (const name of ['stable', 'canary']) {
    const backend = await startBackend(t)
    await app.register(goload, { name, prefix: `/only-${name}`, backends: [backend.url], ...(name === 'canary' ? { sticky: { cookie: 'web' } } : {}) })
  }
  await app.register(goload, { prefix: '/app', pools: [{ pool: 'stable', weight: 3 }, { pool: 'canary', weight: 1 }] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(() => app.close())
  const { port } = app.server.address() as { port: number }
  const admin = await startAdminOf(t, { app, port, url: `http://127.0.0.1:${port}` })
  for (let i = 0; i < 8; i++) await request(`http://127.0.0.1:${port}/app`)
  const { page, errors } = await openPage(t, `${admin.url}/`)
  await page.waitForFunction(() => document.querySelectorAll('tr[data-route]').length === 2)
  const rows = () => page.$$eval('tr[data-route]', (rows) => rows.map((row) => [...row.querySelectorAll('th, td')].map((cell) => cell.textContent)))
  t.same(await rows(), [['/app', 'stable', '3', '75%', '6'], ['canary', '1', '25%', '2']])
  t.equal(await page.$eval('#routes', (section) => (section as HTMLElement).hidden), false)
  await page.waitForFunction(() => /Sticky0 by cookie, 2 new/.test(document.querySelector('section[data-pool="canary"] .summary')!.textContent!))
  t.equal(await page.$eval('section[data-pool="stable"] .summary', (summary) => summary.textContent!.includes('Sticky')), true, 'the label is there')
  t.equal(await page.$$eval('section[data-pool="stable"] .summary div', (items) => (items.find((item) => item.querySelector('dt')?.textContent === 'Sticky') as HTMLElement).hidden), true, 'but hidden for a pool without sticky')

  await request(`${admin.url}/routes/${encodeURIComponent('/app')}/weights`, { method: 'PUT', body: '{"canary":3}', headers: { 'content-type': 'application/json' } })
  await page.waitForFunction(() => document.querySelector('tr[data-pool="canary"] td:nth-of-type(2)')!.textContent === '3 (was 1)')
  t.same(errors, [], 'no errors in the page')
})
