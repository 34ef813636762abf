import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'

const app = Fastify({ logger: true })
await app.register(multiCache, {
  session: { secret: process.env.SESSION_SECRET, store: process.env.REDIS_URL },
  app: { store: process.env.REDIS_URL, lock: true }
})
app.post('/cart', async (request) => {
  await request.sessionCache.set('cart', request.body)
  return { id: request.sessionCache.id }
})
app.get('/cart', async (request) => ({ cart: await request.sessionCache.get('cart') ?? null }))
await app.listen({ port: Number(process.env.PORT ?? 3000) })
