import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import { appCache, type AppCacheOptions } from '../../index.js'
import { fresh } from '../helpers/app.js'
import { privateRedis } from '../helpers/redis.js'

// Clients choose the keys of `getOrLoad('product:<id>')`; a `define`d key is the app's. However many keys clients
// make up, they must not push a defined key out of a bounded memory store or memory tier: with the database down, the
// last good value of the defined key is all the app has left to serve (issue 18, finding 8).

const CATALOG = { products: [1, 2, 3] }

/** The database behind the routes: `down` makes every query fail; `version` counts the catalog's loads. */
interface Database { down: boolean, version: number }

/**
 * An app with the defined key `catalog` (`/catalog`) and products looked up by ids the client chooses
 * (`/products/:id`, unknown ids cached as `null`), plus routes that change the catalog entry.
 */
async function shop (t: Test, options: AppCacheOptions, db: Database, define: { ttl?: number } = {}): Promise<FastifyInstance> {
  const app = fresh(t)
  await app.register(appCache, options)
  const query = <T>(answer: () => T): T => {
    if (db.down) throw new Error('database down')
    return answer()
  }
  app.appCache.define('catalog', () => query(() => ({ ...CATALOG, version: ++db.version })), define)
  app.get('/catalog', async () => await app.appCache.get('catalog'))
  app.get('/products/:id', async (request) => {
    const { id } = request.params as { id: string }
    return await app.appCache.getOrLoad('product:' + id, () => query(() => null)) ?? { unknown: id }
  })
  app.post('/catalog/invalidate', async () => { await app.appCache.invalidate('catalog'); return 'ok' })
  app.post('/catalog/delete', async () => ({ deleted: await app.appCache.delete('catalog') }))
  app.post('/catalog/refresh', async () => await app.appCache.refresh('catalog'))
  app.post('/clear', async () => { await app.appCache.clear(); return 'ok' })
  await app.ready()
  return app
}

/** `count` requests for distinct product ids from `from` on, `concurrency` at a time; each must answer 200. */
async function flood (t: Test, app: FastifyInstance, count: number, from = 0, concurrency = 1): Promise<void> {
  let next = from
  let failed = 0
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < from + count) {
      const response = await app.inject(`/products/${next++}`)
      if (response.statusCode !== 200) failed++
    }
  }))
  t.equal(failed, 0, `${count} product requests answered`)
}

test('memory store: 10,000 client keys with max 100 do not push out the defined key; the database down, it is still served', async (t) => {
  const db = { down: false, version: 0 }
  const app = await shop(t, { max: 100 }, db)
  t.same((await app.inject('/catalog')).json(), { ...CATALOG, version: 1 })
  await flood(t, app, 10_000)
  const stats = app.multiCache.stats().app
  t.equal(stats?.pinned, 1, 'the defined key is held apart')
  t.equal(stats?.size, 101, 'max client keys, and the defined key beside them')
  t.equal(stats?.evictions, 9900, 'the bound pushed out client keys only')
  db.down = true
  const response = await app.inject('/catalog')
  t.equal(response.statusCode, 200, 'not a 500: the last good value is there')
  t.same(response.json(), { ...CATALOG, version: 1 })
  t.equal(db.version, 1, 'served from memory, not loaded again')
})

test('memory store: N+1 client keys past max evict one client key, never the defined key', async (t) => {
  const db = { down: false, version: 0 }
  const app = await shop(t, { max: 3 }, db)
  await flood(t, app, 4)
  const stats = app.multiCache.stats().app
  t.same({ size: stats?.size, pinned: stats?.pinned, evictions: stats?.evictions }, { size: 4, pinned: 1, evictions: 1 })
  t.same((await app.inject('/products/0')).json(), { unknown: '0' }, 'the least recently used client key went')
  t.equal(db.version, 1)
  db.down = true
  t.same((await app.inject('/catalog')).json(), { ...CATALOG, version: 1 })
  t.equal((await app.inject('/products/3')).statusCode, 200, 'the most recent client key is still held')
})

test('memory store: a pinned key still expires with its ttl and is reloaded by its loader', async (t) => {
  const db = { down: false, version: 0 }
  const app = await shop(t, { max: 3 }, db, { ttl: 60 })
  t.equal((await app.inject('/catalog')).json().version, 1)
  await flood(t, app, 10)
  await sleep(100)
  t.equal((await app.inject('/catalog')).json().version, 2, 'a read after its ttl loads it again')
  await flood(t, app, 10, 10)
  t.equal((await app.inject('/catalog')).json().version, 2, 'the reloaded value is pinned too')
  t.equal(app.multiCache.stats().app?.pinned, 1)
})

test('memory store: invalidate, delete, clear and refresh act on a pinned key, which stays pinned after each', async (t) => {
  const db = { down: false, version: 0 }
  const app = await shop(t, { max: 3 }, db)
  let from = 0
  const afterFlood = async (): Promise<number> => {
    await flood(t, app, 10, from)
    from += 10
    return (await app.inject('/catalog')).json().version as number
  }
  t.equal(await afterFlood(), 1)

  await app.inject({ method: 'POST', url: '/catalog/invalidate' })
  t.equal(app.multiCache.stats().app?.pinned, 0, 'invalidate dropped it')
  t.equal((await app.inject('/catalog')).json().version, 2, 'reloaded after invalidate')
  t.equal(await afterFlood(), 2, 'and pinned again')

  t.same((await app.inject({ method: 'POST', url: '/catalog/delete' })).json(), { deleted: true })
  t.same((await app.inject({ method: 'POST', url: '/catalog/delete' })).json(), { deleted: false }, 'delete tells whether it held the key')
  t.equal(await afterFlood(), 3, 'reloaded after delete, and pinned')

  await app.inject({ method: 'POST', url: '/clear' })
  t.same({ size: app.multiCache.stats().app?.size, pinned: app.multiCache.stats().app?.pinned }, { size: 0, pinned: 0 }, 'clear empties both')
  t.equal(await afterFlood(), 4, 'reloaded after clear, and pinned')

  t.equal((await app.inject({ method: 'POST', url: '/catalog/refresh' })).json().version, 5)
  t.equal(await afterFlood(), 5, 'the refreshed value is the one held, and pinned')
  db.down = true
  t.equal((await app.inject('/catalog')).json().version, 5)
})

test('Redis with a memory tier: 10,000 client keys with l1.max 100 do not push the defined key out of the tier', async (t) => {
  const redis = await privateRedis(t)
  if (redis === undefined) return
  const db = { down: false, version: 0 }
  // The tier's ttl outlasts the flood: only its size bound is on trial here.
  const app = await shop(t, { store: redis.url, l1: { max: 100, ttl: '5m' } }, db)
  await flood(t, app, 10_000, 0, 20)
  const stats = app.multiCache.stats().app
  t.equal(stats?.pinned, 1, 'the defined key is held apart in the tier')
  t.equal(stats?.size, 101, 'l1.max client keys, and the defined key beside them')
  // Redis stalled and the database down: only what the memory tier holds can be served.
  redis.pause()
  t.teardown(redis.resume)
  db.down = true
  const response = await app.inject('/catalog')
  t.equal(response.statusCode, 200, 'answered from the memory tier')
  t.same(response.json(), { ...CATALOG, version: 1 })
  redis.resume()
})
