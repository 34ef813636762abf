import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { Registry } from 'prom-client' // or fastify-metrics' client: app.metrics.client.register
import { db } from './db.js'

const registry = new Registry()
const app = Fastify({ logger: true })
await app.register(multiCache, { session: { secret: process.env.SESSION_SECRET }, metrics: { registry } })
app.get('/metrics', async (request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
app.get('/products', () => app.appCache.getOrLoad('catalog', () => db.products.all()))
await app.listen({ port: Number(process.env.PORT ?? 3000) })
