// The goload image's HEALTHCHECK: GET /healthz on the admin listener, never a proxied path (that would write an
// access line and count in the metrics at every check, and fail whenever a backend is slow). Exits 0 when healthy,
// 1 when not, with one line saying why, which `docker inspect --format '{{json .State.Health}}' <container>` shows.
const url = process.env.GOLOAD_HEALTHCHECK_URL || 'http://127.0.0.1:9090/healthz'

try {
  // Below the HEALTHCHECK's --timeout, so that a hung admin is reported in words rather than killed silently.
  const response = await fetch(url, { signal: AbortSignal.timeout(2000) })
  if (response.ok) process.exit(0)
  console.log(`goload unhealthy: ${url} answered ${response.status} ${await response.text()}`)
} catch (error) {
  console.log(error.cause?.code === 'ECONNREFUSED'
    ? `goload unhealthy: nothing listens at ${url}. The image checks the admin listener: give goload.yaml an admin block on port 9090 (admin: { port: 9090 }), or set GOLOAD_HEALTHCHECK_URL to your admin's /healthz`
    : `goload unhealthy: ${url}: ${error.cause?.message ?? error.message}`)
}
process.exit(1)
