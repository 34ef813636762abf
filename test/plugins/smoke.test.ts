import { test } from 'tap'
import Fastify from 'fastify'
import multiCache from '../../index.js'

test('smoke', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(multiCache, { session: { secret: 'x'.repeat(32) } })
  app.get('/', async (request) => {
    await request.sessionCache.set('a', 1)
    return { r: await request.cache.getOrLoad('k', () => 5, { level: 'app' }), s: request.sessionCache.id }
  })
  const res = await app.inject('/')
  t.equal(res.statusCode, 200)
  t.match(res.headers['set-cookie'], /^sid=/)
  t.same(app.multiCache.stats().app, { hits: 0, misses: 1, loads: 1, loadErrors: 0, evictions: 0, storeErrors: 0, size: 1 })
})
