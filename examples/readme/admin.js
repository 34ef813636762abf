import { timingSafeEqual } from 'node:crypto'
import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import cacheAdmin from 'fastify-multi-cache/admin'
import { db } from './db.js'

const app = Fastify({ logger: true })
await app.register(multiCache, { session: { secret: process.env.SESSION_SECRET } })
app.appCache.define('catalog', () => db.products.all(), { refreshInterval: '1m' })

const token = Buffer.from(`Bearer ${process.env.ADMIN_TOKEN}`)
await app.register(cacheAdmin, { // after the levels
  authorize: (request) => {
    const given = Buffer.from(request.headers.authorization ?? '')
    return given.length === token.length && timingSafeEqual(given, token)
  }
})
await app.listen({ port: Number(process.env.PORT ?? 3000) })
