import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { db } from './db.js'

const app = Fastify({ logger: true })
await app.register(multiCache, { session: { secret: process.env.SESSION_SECRET } })
app.appCache.define('catalog', () => db.products.all(), { refreshInterval: '1m' })
// #region readme
import { timingSafeEqual } from 'node:crypto'
import cacheAdmin from 'fastify-multi-cache/admin'

const token = Buffer.from(`Bearer ${process.env.ADMIN_TOKEN}`)
await app.register(cacheAdmin, { // after the levels
  authorize: (request) => {
    const given = Buffer.from(request.headers.authorization ?? '')
    return given.length === token.length && timingSafeEqual(given, token)
  }
})
// #endregion
await app.listen({ port: Number(process.env.PORT ?? 3000) })
