import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { db } from './db.js'

const app = Fastify({ logger: true })
await app.register(multiCache, { session: false })
// The request's loader of products: the loads of one tick are one query, and each product is loaded once per request
const products = (request) => request.reqCache.loader('products', async (ids) => {
  const rows = await db.products.findMany(ids)
  return new Map(rows.map((row) => [row.id, row]))
})
app.get('/orders', async (request) => {
  const orders = await db.orders.all()
  // Each order asks for its own product, as a resolver would: one query for all of them.
  return await Promise.all(orders.map(async (order) => ({ ...order, product: await products(request).load(order.productId) })))
})
await app.listen({ port: Number(process.env.PORT ?? 3000) })
