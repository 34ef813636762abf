import { test } from 'tap'
import { KeyRule, MAX_KEY_LENGTH } from '../../lib/keys.js'
import { CacheLookup } from '../../lib/lookup.js'
import { AppCache } from '../../lib/scopes/application.js'
import { RequestLevel } from '../../lib/scopes/request.js'
import { SessionLevel } from '../../lib/scopes/session.js'
import type { Store } from '../../lib/store.js'
import Keyv from 'keyv'
import { KeyvStore } from '../../lib/stores/keyv.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import { RedisStore, type RedisClient } from '../../lib/stores/redis.js'
import { redisFor, uniquePrefix } from '../helpers/redis.js'

/** A store that records every key it is asked about. */
function recording (): { store: Store, keys: string[] } {
  const keys: string[] = []
  const inner = new MemoryStore({ max: 10 })
  const store: Store = {
    get: (key) => { keys.push(key); return inner.get(key) },
    set: (key, value, ttl) => { keys.push(key); inner.set(key, value, ttl) },
    delete: (key) => { keys.push(key); return inner.delete(key) },
    clear: () => { inner.clear() }
  }
  return { store, keys }
}

test('a key longer than maxKeyLength is refused by every level and the lookup, naming its length and the limit', async (t) => {
  t.equal(MAX_KEY_LENGTH, 1024)
  const rule: KeyRule = new KeyRule(8)
  t.ok(rule.valid('12345678'))
  t.notOk(rule.valid('123456789'))
  t.throws(() => { rule.assert('123456789') }, { code: 'FST_MULTICACHE_INVALID_KEY', message: 'cache key of 9 characters is longer than maxKeyLength (8)' })
  t.throws(() => { rule.assert('') }, { message: 'cache key must be a non-empty string, got ""' })

  const long = 'k'.repeat(1025)
  const { store, keys } = recording()
  const app = new AppCache({ store, ttl: 0, log: { warn: () => {} } })
  const expected = { code: 'FST_MULTICACHE_INVALID_KEY', message: /1025 characters is longer than maxKeyLength \(1024\)/ }
  await t.rejects(app.get(long), expected)
  await t.rejects(app.getOrLoad(long, () => 1), expected)
  await t.rejects(app.set(long, 1), expected)
  await t.rejects(app.delete(long), expected)
  await t.rejects(app.invalidate([long]), expected)
  t.same(keys, [], 'it never reached the store')
  t.equal(await app.getOrLoad('k'.repeat(1024), () => 1), 1, 'the limit itself is taken')

  const request = new RequestLevel({ maxEntries: 10, maxKeyLength: 4 }).open()
  t.throws(() => request.set('12345', 1), { message: /maxKeyLength \(4\)/ })
  await t.rejects(request.getOrLoad('12345', () => 1), { message: /maxKeyLength \(4\)/ })

  const session = new SessionLevel({ ttl: 1000, maxEntriesPerSession: 10, store: new MemoryStore({ max: 10 }), maxKeyLength: 4 }).open(() => undefined)
  await t.rejects(session.set('12345', 1), { message: /maxKeyLength \(4\)/ })
  await t.rejects(session.get('12345'), { message: /maxKeyLength \(4\)/ })

  const asked = keys.length
  const lookup = new CacheLookup(undefined, undefined, app, new KeyRule(4))
  await t.rejects(lookup.get('12345'), { message: /maxKeyLength \(4\)/ })
  await t.rejects(lookup.getOrLoad('12345', () => 1, { level: 'app' }), { message: /maxKeyLength \(4\)/ })
  t.equal(keys.length, asked, 'the lookup asked no level')
})

test('maxEntryBytes: a shared store refuses a value bigger than the bound, before it is sent, and evicts nothing', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const redis = new RedisStore({ client: client as unknown as RedisClient, prefix, maxEntryBytes: 100 })
  await redis.set('small', 'x'.repeat(50))
  await t.rejects(redis.set('big', 'é'.repeat(60)), { code: 'FST_MULTICACHE_ENTRY_TOO_LARGE', message: 'cannot store the value of "big": 122 bytes, more than maxEntryBytes (100)' })
  t.equal(await client.exists(prefix + 'big'), 0)
  t.equal(await redis.get('small'), 'x'.repeat(50), 'nothing else went')
  t.throws(() => redis.stored('big', 'x'.repeat(200)), { code: 'FST_MULTICACHE_ENTRY_TOO_LARGE' })
  t.equal(new RedisStore({ client: client as unknown as RedisClient, prefix }).stored('mib', 'x'.repeat(1024 * 1024 - 2)), 'x'.repeat(1024 * 1024 - 2), 'the default bound is 1 MiB')
  t.throws(() => new RedisStore({ client: client as unknown as RedisClient, prefix }).stored('mib', 'x'.repeat(1024 * 1024 - 1)), { message: /1048577 bytes, more than maxEntryBytes \(1048576\)/ })

  const keyv = new KeyvStore({ keyv: new Keyv(), maxEntryBytes: 10 })
  await t.rejects(keyv.set('big', 'x'.repeat(20)), { code: 'FST_MULTICACHE_ENTRY_TOO_LARGE' })
})

test('the levels count refused values; a loaded value too large is served uncached, not refused', async (t) => {
  const store = new MemoryStore({ max: 100, maxBytes: 1000 })
  const warnings: string[] = []
  const app = new AppCache({ store, ttl: 0, log: { warn: (_d, m) => { warnings.push(m) } } })
  await app.set('small', 'x'.repeat(400))
  await app.set('other', 'x'.repeat(400))
  await t.rejects(app.set('big', 'x'.repeat(2000)), { code: 'FST_MULTICACHE_ENTRY_TOO_LARGE', message: /2008 bytes, more than maxEntryBytes \(1000\)/ })
  t.same([await app.has('small'), await app.has('other')], [true, true], 'nothing was evicted for it')
  let loads = 0
  t.equal((await app.getOrLoad('report', () => { loads++; return 'y'.repeat(5000) })).length, 5000, 'the caller gets its value')
  await app.getOrLoad('report', () => { loads++; return 'y'.repeat(5000) })
  t.equal(loads, 2, 'not cached')
  t.equal(app.stats.snapshot().oversized, 3)
  t.equal(app.stats.snapshot().storeErrors, 0, 'not a store fault')
  t.equal(warnings.length, 1, 'logged once per burst')
  await app.set('third', 'x'.repeat(400))
  t.equal(await app.has('small'), false, 'the byte bound evicts the least recently used')

  const level = new SessionLevel({ ttl: 1000, maxEntriesPerSession: 10, store: new RedisStore({ client: await redisFor(t) as unknown as RedisClient, prefix: uniquePrefix(t), maxEntryBytes: 100 }) })
  const session = level.open(() => undefined)
  await session.set('ok', 1)
  await t.rejects(session.set('big', 'x'.repeat(200)), { code: 'FST_MULTICACHE_ENTRY_TOO_LARGE' })
  t.equal(await session.get('big'), undefined)
  t.same([level.stats.oversized, level.stats.storeErrors], [1, 0])
})

test('a pinned key of the memory store is kept out of max, keeps its ttl across later pins, and is listed', async (t) => {
  let evictions = 0
  const store = new MemoryStore({ max: 2, onEvict: () => { evictions++ } })
  store.set('early', 'before its pin', 80)
  store.pin('early')
  store.pin('early')
  t.same([store.get('early'), store.pinned, store.size], ['before its pin', 1, 1], 'a value held before the pin moves with it')
  store.set('catalog', 'c')
  store.pin('catalog')
  for (const key of ['a', 'b', 'c', 'd']) store.set(key, key)
  t.same([store.get('early'), store.get('catalog'), store.get('a'), store.get('d')], ['before its pin', 'c', undefined, 'd'])
  t.same({ size: store.size, pinned: store.pinned, evictions }, { size: 4, pinned: 2, evictions: 2 }, 'only unpinned keys were evicted')
  const listed = store.keys({ match: '', limit: 10 }).keys
  t.same(listed.map(({ key }) => key), ['catalog', 'early', 'd', 'c'], 'pinned keys first, then the most recently used')
  t.ok(listed.every(({ key, ttl }) => key === 'early' ? ttl > 0 && ttl <= 80 : ttl === 0), 'with their remaining ttl')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same([store.get('early'), store.get('catalog')], [undefined, 'c'], 'the later pin kept the time the first key had left')
  t.equal(store.delete('catalog'), true)
  t.equal(store.get('catalog'), undefined)
  store.set('catalog', 'again')
  store.clear()
  t.same([store.size, store.pinned], [0, 0])
  store.set('catalog', 'after clear')
  for (const key of ['e', 'f', 'g']) store.set(key, key)
  t.equal(store.get('catalog'), 'after clear', 'still pinned after a clear')

  const bytes = new MemoryStore({ max: 100, maxBytes: 100 })
  bytes.pin('catalog')
  bytes.set('catalog', 'x'.repeat(60))
  bytes.set('a', 'x'.repeat(60))
  t.same([bytes.get('catalog'), bytes.get('a')], ['x'.repeat(60), 'x'.repeat(60)], 'a pinned entry\'s bytes are not counted against maxBytes')
  t.throws(() => { bytes.set('catalog', 'x'.repeat(200)) }, { code: 'FST_MULTICACHE_ENTRY_TOO_LARGE' }, 'but a value larger than it is still refused')
})
