import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { db } from './db.js' // your data access

const app = Fastify({ logger: true })
await app.register(multiCache, { session: { secret: process.env.SESSION_SECRET } })

app.appCache.define('catalog', () => db.products.all(), { refreshInterval: '1m' }) // loaded before listen

app.get('/products', () => app.appCache.get('catalog'))
app.post('/cart', async (request) => {
  const cart = (await request.sessionCache.get('cart')) ?? []
  await request.sessionCache.set('cart', [...cart, request.body]) // the cookie is issued on this first write
  return { lines: cart.length + 1 }
})
app.post('/login', async (request, reply) => {
  const user = await db.users.byName(request.body.name) // and check a password
  if (user === undefined) return reply.code(401).send({ error: 'unknown user' })
  await request.sessionCache.regenerate() // a new session id at login, against session fixation
  await request.sessionCache.set('userId', user.id)
  return { id: user.id }
})
app.get('/orders', async (request, reply) => {
  const userId = await request.sessionCache.get('userId')
  if (userId === undefined) return reply.code(401).send({ error: 'log in first' })
  const user = await request.cache.getOrLoad('user', () => db.users.find(userId), { level: 'request' })
  return db.orders.of(user.id) // any later use of 'user' in this request is free
})
await app.listen({ port: Number(process.env.PORT ?? 3000) })
