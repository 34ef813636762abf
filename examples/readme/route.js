import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { db } from './db.js'

const app = Fastify({ logger: true })
await app.register(multiCache) // before the routes it caches
app.get('/products', { config: { cache: { level: 'app', ttl: '1m' } } }, () => db.products.all())
await app.listen({ port: Number(process.env.PORT ?? 3000) })
