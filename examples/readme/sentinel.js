import Fastify from 'fastify'
import { Redis } from 'ioredis'
import multiCache from 'fastify-multi-cache'

// SENTINELS=10.0.0.1:26379,10.0.0.2:26379: ioredis asks them for the master of 'mymaster', and again after a failover.
const sentinels = process.env.SENTINELS.split(',').map((node) => ({ host: node.split(':')[0], port: Number(node.split(':')[1]) }))
// No offline queue: while the master is being replaced, commands fail at once and the levels answer without Redis.
const redis = new Redis({ sentinels, name: 'mymaster', enableOfflineQueue: false })
const app = Fastify({ logger: true })
await app.register(multiCache, {
  session: { secret: process.env.SESSION_SECRET, store: redis },
  app: { store: redis }
})
app.addHook('onClose', async () => { await redis.quit() }) // a client you pass in is yours to close
app.get('/rates', async () => await app.appCache.getOrLoad('rates', async () => ({ eur: 1, usd: 1.08 }), { ttl: '1m' }))
await app.listen({ port: Number(process.env.PORT ?? 3000) })
