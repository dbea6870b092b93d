import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { hostname } from 'node:os'
import { pathToFileURL } from 'node:url'

/** Milliseconds to wait before answering: a fixed delay, or a random one in [lo, hi]. */
export type Delay = number | [lo: number, hi: number]

export interface BackendOptions {
  id: string | number
  port: number
  host: string
  delay?: Delay
}

function pickDelay (delay: Delay): number {
  if (typeof delay === 'number') return delay
  const [lo, hi] = delay
  return lo + Math.random() * (hi - lo)
}

/** A plain node:http server answering every request with `Hello from <id>\n`; resolves once it listens. */
export async function startBackend ({ id, port, host, delay = 0 }: BackendOptions): Promise<http.Server> {
  const body = `Hello from ${id}\n`
  const server = http.createServer((request, response) => {
    // Read the request to its end before answering, so a kept-alive connection is ready for the next one.
    request.resume()
    request.on('end', () => {
      setTimeout(() => {
        response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' })
        response.end(body)
      }, pickDelay(delay))
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return server
}

/** Closes the server, dropping kept-alive connections instead of waiting for them to time out. */
export async function stopBackend (server: http.Server): Promise<void> {
  await new Promise((resolve) => {
    server.close(resolve)
    server.closeAllConnections()
  })
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  // Without ID, the hostname: each replica of docker-compose.yml's backend service answers with its container's.
  const id = process.env.ID ?? hostname()
  const port = Number(process.env.PORT ?? 3000)
  const host = process.env.HOST ?? '0.0.0.0'
  const server = await startBackend({ id, port, host })
  console.log(`backend ${id} listening on http://${host}:${(server.address() as AddressInfo).port}`)
  // Close the listening socket and kept-alive connections on Ctrl-C or SIGTERM, then exit 0.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => { stopBackend(server).then(() => process.exit(0), () => process.exit(1)) })
  }
}
