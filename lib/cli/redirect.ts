import { STATUS_CODES } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { BadRequestHostError, BadRequestTargetError } from '../errors.js'
import { httpsLocation } from '../routing/redirect-https.js'

/**
 * `redirectHttps`: every request on this listener is answered 308 to its https URL before any routing (308, unlike
 * 301, keeps the method and body). An upgrade (WebSocket) is answered the same way, as a plain response.
 */
export function redirectToHttps (app: FastifyInstance, port: number): void {
  app.addHook('onRequest', async (request, reply) => {
    const found = httpsLocation(request.raw, port)
    if ('refused' in found) return await reply.send(found.refused === 'host' ? new BadRequestHostError() : new BadRequestTargetError())
    return await reply.code(308).header('location', found.location).send()
  })
  app.server.on('upgrade', (request, socket: Duplex) => {
    const found = httpsLocation(request, port)
    const status = 'refused' in found ? 400 : 308
    const location = 'refused' in found ? '' : `Location: ${found.location}\r\n`
    socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n${location}Content-Length: 0\r\nConnection: close\r\n\r\n`)
  })
}
