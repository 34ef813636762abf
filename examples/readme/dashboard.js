import { timingSafeEqual } from 'node:crypto'
import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import cacheAdmin from 'fastify-multi-cache/admin'

const app = Fastify({ logger: true })
await app.register(multiCache, { session: { secret: process.env.SESSION_SECRET } })
const basic = Buffer.from('Basic ' + Buffer.from(`ops:${process.env.ADMIN_TOKEN}`).toString('base64'))
await app.register(cacheAdmin, {
  prefix: '/_cache', // the dashboard is GET /_cache/
  authorize: (request, reply) => {
    const given = Buffer.from(request.headers.authorization ?? '')
    if (given.length === basic.length && timingSafeEqual(given, basic)) return true
    reply.code(401).header('www-authenticate', 'Basic realm="cache"') // so that a browser asks for the password
    return false
  }
})
await app.listen({ port: Number(process.env.PORT ?? 3000) })
