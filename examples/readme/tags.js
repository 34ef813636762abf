import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { db } from './db.js'

const app = Fastify({ logger: true })
await app.register(multiCache, { session: false })
app.get('/products', { config: { cache: { level: 'app', tags: ['catalog'] } } }, () => db.products.all())
app.get('/products/:id', (request) => {
  const id = Number(request.params.id)
  return app.appCache.getOrLoad(`product:${id}`, () => db.products.find(id), { tags: ['catalog', `product:${id}`] })
})
app.put('/products/:id/price', async (request) => {
  await db.products.setPrice(Number(request.params.id), request.body.price)
  await app.appCache.invalidateTag('catalog') // every entry and route response tagged 'catalog', on every instance once the bus reaches it
  return null
})
await app.listen({ port: Number(process.env.PORT ?? 3000) })
