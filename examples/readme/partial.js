import Fastify from 'fastify'
import appCache from 'fastify-multi-cache/app' // or: import { appCache } from 'fastify-multi-cache'

const app = Fastify({ logger: true })
await app.register(appCache, { max: 5000, ttl: '10m' })
app.get('/answer', () => app.appCache.getOrLoad('answer', () => 42))
await app.listen({ port: Number(process.env.PORT ?? 3000) })
