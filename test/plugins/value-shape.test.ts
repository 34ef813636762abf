import { test } from 'tap'
import { appCache } from '../../index.js'
import { fresh } from '../helpers/app.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

// With a serializing store, a value has one shape and one content on every instance, the writer's included.

test('with Redis and memory tiers, the writing instance serves what every other instance serves', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const [a, b] = await Promise.all([0, 1].map(async () => {
    const app = fresh(t)
    await app.register(appCache, { store: REDIS_URL, prefix })
    await app.ready()
    return app
  })) as [ReturnType<typeof fresh>, ReturnType<typeof fresh>]
  const value = { when: new Date('2026-11-25T10:00:00Z'), tags: ['a'] }
  await a.appCache.set('v', value)
  value.tags.push('mutated after set')
  const expected = { when: '2026-11-25T10:00:00.000Z', tags: ['a'] }
  t.same(await a.appCache.get('v'), expected, 'the writer: a Date is its JSON string, and a later mutation does not show')
  t.same(await b.appCache.get('v'), expected, 'the other instance: the same')

  const loaded = await a.appCache.getOrLoad('l', () => ({ when: new Date(0) }))
  t.same(loaded, { when: '1970-01-01T00:00:00.000Z' }, 'the callers of a miss get that shape too')
  t.same(await a.appCache.get('l'), loaded)
  t.same(await b.appCache.get('l'), loaded)
})

test('getOrLoad of a value the serializer refuses rejects with FST_MULTICACHE_SERIALIZE, like set', async (t) => {
  if (await redisFor(t) === undefined) return
  const app = fresh(t)
  await app.register(appCache, { store: REDIS_URL, prefix: uniquePrefix(t) })
  await app.ready()
  let loads = 0
  for (let i = 0; i < 2; i++) {
    await t.rejects(app.appCache.getOrLoad('m', () => { loads++; return new Map([[1, 2]]) }), { code: 'FST_MULTICACHE_SERIALIZE', message: /"m".*Map/ })
  }
  await t.rejects(app.appCache.set('m', new Map()), { code: 'FST_MULTICACHE_SERIALIZE' })
  t.equal(loads, 2)
  t.equal(app.multiCache.stats().app?.storeErrors, 0, 'a programming error, not a store fault')
})
