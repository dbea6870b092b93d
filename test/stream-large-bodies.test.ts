import http from 'node:http'
import { Readable } from 'node:stream'
import t from 'tap'
import { deadline } from './helpers/raw.js'
import { settled, startBackend, startBalancer } from './helpers/servers.js'

const size = 256 * 1024 * 1024
const chunk = Buffer.alloc(64 * 1024, 'g')
const agent = new http.Agent({ keepAlive: false })

/** size bytes, produced as they are read, from one reused chunk. */
function generated (): Readable {
  let sent = 0
  return new Readable({
    read () {
      if (sent >= size) {
        this.push(null)
        return
      }
      sent += chunk.length
      this.push(chunk)
    }
  })
}

/** Samples the resident set size while the exchange runs; the growth tells whether the body was buffered whole. */
function rssWatch () {
  const start = process.memoryUsage.rss()
  let peak = start
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage.rss()) }, 20)
  return () => {
    clearInterval(timer)
    return (Math.max(peak, process.memoryUsage.rss()) - start) / 1024 / 1024
  }
}

t.test('a 256 MiB upload streams through without being buffered', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    let received = 0
    req.on('data', (data: Buffer) => { received += data.length })
    req.on('end', () => res.end(String(received)))
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url], timeout: 60_000 })
  const growth = rssWatch()
  const answer = await deadline(new Promise<string>((resolve, reject) => {
    const req = http.request(url + '/upload', { method: 'POST', agent, headers: { 'content-type': 'application/octet-stream', 'content-length': size } }, (res) => {
      let body = ''
      res.on('data', (data) => { body += data })
      res.on('end', () => resolve(body))
    })
    req.on('error', reject)
    generated().pipe(req)
  }), 60_000, 'the answer to the 256 MiB upload')
  const grewMiB = growth()
  t.equal(Number(answer), size, 'the backend received every byte')
  t.ok(grewMiB < 128, `memory grew by ${grewMiB.toFixed(1)} MiB, far below the 256 MiB body`)
  await settled(app)
})

t.test('a 256 MiB download streams through without being buffered', async (t) => {
  const backend = await startBackend(t, (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': size })
    generated().pipe(res)
  })
  const { app, url } = await startBalancer(t, { backends: [backend.url], timeout: 60_000 })
  const growth = rssWatch()
  const received = await deadline(new Promise<number>((resolve, reject) => {
    http.get(url + '/download', { agent }, (res) => {
      let bytes = 0
      res.on('data', (data: Buffer) => { bytes += data.length })
      res.on('end', () => resolve(bytes))
    }).on('error', reject)
  }), 60_000, 'the whole 256 MiB download')
  const grewMiB = growth()
  t.equal(received, size, 'the client received every byte')
  t.ok(grewMiB < 128, `memory grew by ${grewMiB.toFixed(1)} MiB, far below the 256 MiB body`)
  await settled(app)
})
