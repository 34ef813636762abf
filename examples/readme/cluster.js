import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'

// REDIS_CLUSTER=redis+cluster://10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379 (a few nodes: the others are discovered)
const cluster = process.env.REDIS_CLUSTER
const app = Fastify({ logger: true })
await app.register(multiCache, {
  session: { secret: process.env.SESSION_SECRET, store: cluster },
  app: { store: cluster, lock: true }
})
app.post('/cart', async (request) => {
  await request.sessionCache.set('cart', request.body)
  return { id: request.sessionCache.id }
})
app.get('/cart', async (request) => ({ cart: await request.sessionCache.get('cart') ?? null }))
app.get('/rates', async () => await app.appCache.getOrLoad('rates', async () => ({ eur: 1, usd: 1.08 }), { ttl: '1m' }))
await app.listen({ port: Number(process.env.PORT ?? 3000) })
