import { tracingChannel } from 'node:diagnostics_channel'
import Fastify from 'fastify'
import multiCache, { CACHE_OPERATION_CHANNEL, subscribeCacheOperations } from 'fastify-multi-cache'
import { db } from './db.js'

const app = Fastify({ logger: true })

// What an APM does, with no dependency on this package: every operation from its start to its end.
const began = new WeakMap()
tracingChannel(CACHE_OPERATION_CHANNEL).subscribe({
  start: (operation) => { began.set(operation, performance.now()) },
  end: () => {},
  asyncStart: () => {},
  asyncEnd: (operation) => {
    const ms = performance.now() - began.get(operation)
    if (operation.operation === 'load') app.log.info({ cacheLevel: operation.level, key: operation.key, ms }, 'cache load')
  },
  error: (operation) => { app.log.warn({ err: operation.error, key: operation.key }, `cache ${operation.operation} failed`) }
})

// In process, one operation in 100 (decided before anything is built): the keys that miss most.
const misses = new Map()
subscribeCacheOperations((operation) => {
  if (operation.hit === false) misses.set(operation.key, (misses.get(operation.key) ?? 0) + 1)
}, { sampleRate: 0.01 })

await app.register(multiCache, { session: { secret: process.env.SESSION_SECRET } })
app.get('/products', () => app.appCache.getOrLoad('catalog', () => db.products.all()))
app.get('/misses', () => Object.fromEntries(misses))
await app.listen({ port: Number(process.env.PORT ?? 3000) })
