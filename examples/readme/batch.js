import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { db } from './db.js'

const app = Fastify({ logger: true })
await app.register(multiCache, { session: false })
const ids = { type: 'array', items: { type: 'integer' }, maxItems: 100 } // a list a client chooses: bound it here (400)
// GET /products?ids=1&ids=2&ids=3: one read of the cache for every product, one query for those it lacks
app.get('/products', { schema: { querystring: { type: 'object', properties: { ids }, required: ['ids'] } } }, async (request) => {
  const keys = request.query.ids.map((id) => `product:${id}`)
  return await app.appCache.getOrLoadMany(keys, async (missing) => {
    const rows = await db.products.findMany(missing.map((key) => Number(key.slice('product:'.length))))
    return new Map(rows.map((row) => [`product:${row.id}`, row])) // by key: a product the query did not find stays a miss
  }, { ttl: '10m', tags: ['catalog'] })
})
await app.listen({ port: Number(process.env.PORT ?? 3000) })
