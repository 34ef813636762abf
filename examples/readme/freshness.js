import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { db } from './db.js'

const app = Fastify({ logger: true })
await app.register(multiCache, { session: false })
const loadCatalog = () => db.products.all()
app.get('/catalog', () =>
  app.appCache.getOrLoad('catalog', loadCatalog, { ttl: '1m', staleWhileRevalidate: '10m', graceOnError: '1h', softTimeout: '200ms' }))
await app.listen({ port: Number(process.env.PORT ?? 3000) })
