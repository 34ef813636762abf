import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'

const app = Fastify({ logger: { level: 'debug' } }) // misses, loads and invalidations are logged at debug
await app.register(multiCache, { session: { secret: process.env.SESSION_SECRET }, logKeys: false }) // keys hashed
app.get('/user/:email', (request) => request.cache.getOrLoad(`user:${request.params.email}`, () => ({ plan: 'free' }), { level: 'app' }))
await app.listen({ port: Number(process.env.PORT ?? 3000) })
