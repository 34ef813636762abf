import { setTimeout as sleep } from 'node:timers/promises'
import Keyv from 'keyv'
import { test } from 'tap'
import { appCache, type Store } from '../../index.js'
import { captureLogs, fresh } from '../helpers/app.js'

test('get, set, has, delete and clear', async (t) => {
  const app = fresh(t)
  await app.register(appCache)
  const c = app.appCache
  t.equal(await c.get('a'), undefined)
  await c.set('a', { n: 1 })
  await c.set('__proto__', 'p')
  await c.set('constructor', null)
  t.same(await c.get('a'), { n: 1 })
  t.equal(await c.get('__proto__'), 'p')
  t.equal(await c.get('constructor'), null, 'null is a value: cached absence')
  t.equal(await c.has('constructor'), true)
  t.equal(await c.delete('a'), true, 'delete answers whether there was an entry, like the other levels')
  t.equal(await c.delete('a'), false)
  t.equal(await c.has('a'), false)
  await c.clear()
  t.equal(await c.has('__proto__'), false)
  await t.rejects(c.set('k', undefined as unknown), { code: 'FST_MULTICACHE_INVALID_VALUE' })
  // Methods that answer with a promise reject, so that `.catch()` sees the error.
  await t.rejects(c.get(''), { code: 'FST_MULTICACHE_INVALID_KEY' })
  await t.rejects(c.getOrLoad(null as unknown as string, () => 1), { code: 'FST_MULTICACHE_INVALID_KEY' })
  await t.rejects(c.getOrLoad('k', () => 1, { ttl: 'soon' as '1m' }), { code: 'FST_MULTICACHE_INVALID_OPTION' })
  await t.rejects(c.set('k', 1, { ttl: 'soon' as '1m' }), { message: /appCache.set: option "ttl"/ })
})

test('N concurrent misses on one key cause exactly one loader call', async (t) => {
  const app = fresh(t)
  await app.register(appCache)
  let calls = 0
  app.get('/', async () => await app.appCache.getOrLoad('catalog', async () => { calls++; await sleep(20); return [1, 2, 3] }))
  const responses = await Promise.all(Array.from({ length: 100 }, async () => await app.inject('/')))
  t.ok(responses.every((r) => r.body === '[1,2,3]'))
  t.equal(calls, 1)
  const stats = app.multiCache.stats().app
  t.equal(stats?.loads, 1)
  t.equal(stats?.size, 1)
  t.equal((stats?.hits ?? 0) + (stats?.misses ?? 0), 100)
})

test('a failing loader caches nothing, and every waiter gets its error', async (t) => {
  const app = fresh(t)
  await app.register(appCache)
  let calls = 0
  const failing = async (): Promise<number> => { calls++; await sleep(5); throw new Error('db down') }
  const results = await Promise.allSettled([1, 2, 3].map(async () => await app.appCache.getOrLoad('k', failing)))
  t.same(results.map((r) => r.status), ['rejected', 'rejected', 'rejected'])
  t.equal(calls, 1)
  t.equal(await app.appCache.has('k'), false)
  t.equal(await app.appCache.getOrLoad('u', () => undefined), undefined)
  t.equal(await app.appCache.has('u'), false, 'undefined is not cached')
  t.equal(app.multiCache.stats().app?.loadErrors, 1)
})

test('ttl: the default, per call, and duration strings', async (t) => {
  const app = fresh(t)
  await app.register(appCache, { ttl: 40 })
  await app.appCache.set('default', 1)
  await app.appCache.set('long', 1, { ttl: '1m' })
  await app.appCache.getOrLoad('loaded', () => 1, { ttl: '30ms' })
  await sleep(70)
  t.equal(await app.appCache.has('default'), false)
  t.equal(await app.appCache.has('loaded'), false)
  t.equal(await app.appCache.has('long'), true)
})

test('max bounds the memory store and counts evictions', async (t) => {
  const app = fresh(t)
  await app.register(appCache, { max: 3 })
  for (const key of ['a', 'b', 'c', 'd', 'e']) await app.appCache.set(key, key)
  t.equal(app.multiCache.stats().app?.size, 3)
  t.equal(app.multiCache.stats().app?.evictions, 2)
  t.equal(await app.appCache.has('a'), false)
})

test('define: preloaded before the server listens, refreshed, reloaded on a miss, refreshable', async (t) => {
  const app = fresh(t)
  await app.register(appCache)
  let version = 0
  app.appCache.define('settings', async () => ({ version: ++version }), { refreshInterval: 30 })
  t.equal(version, 0, 'nothing loads before ready')
  await app.ready()
  t.equal(version, 1, 'loaded by ready()')
  t.same(await app.appCache.get('settings'), { version: 1 })
  await sleep(80)
  t.ok(version >= 2, 'refreshed in the background')
  t.same(await app.appCache.refresh('settings'), { version })
  await app.appCache.delete('settings')
  const reloaded = await app.appCache.get<{ version: number }>('settings')
  t.equal(reloaded?.version, version, 'a miss on a defined key reloads it')
  t.throws(() => { app.appCache.define('late', () => 1) }, { code: 'FST_MULTICACHE_DEFINE', message: /before the server is ready/ })
  await t.rejects(app.appCache.refresh('unknown'), { message: /needs a key declared with define/ })
  await app.close()
  const stopped = version
  await sleep(80)
  t.equal(version, stopped, 'timers are cleared on close')
})

test('define refuses a taken key and a loader that is not a function', async (t) => {
  const app = fresh(t)
  await app.register(appCache)
  app.appCache.define('a', () => 1, { ttl: '1h' })
  t.throws(() => { app.appCache.define('a', () => 2) }, { message: /already defined/ })
  t.throws(() => { app.appCache.define('b', 'nope' as never) }, { message: /must be a function/ })
  t.throws(() => { app.appCache.define('c', () => 1, { refreshInterval: 'often' as '1m' }) }, { message: /option "ttl"|refreshInterval|ttl/ })
})

test('a failed preload fails startup with an error naming the key', async (t) => {
  const app = fresh(t)
  await app.register(appCache)
  app.appCache.define('catalog', async () => { throw new Error('connection refused') })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_MULTICACHE_PRELOAD_FAILED', message: 'appCache: preloading the defined key "catalog" failed: connection refused' })
})

test('a failed refresh keeps serving the last good value and logs a warning', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(appCache)
  let fail = false
  app.appCache.define('rates', async () => { if (fail) throw new Error('upstream 503'); return { eur: 1 } }, { refreshInterval: 20 })
  await app.ready()
  fail = true
  await sleep(60)
  t.same(await app.appCache.get('rates'), { eur: 1 })
  const warning = logs.lines.find((line) => String(line.msg).includes('refreshing "rates" failed'))
  t.ok(warning, 'a warning was logged')
  t.equal(warning?.key, 'rates')
})

test('a custom store is used as given, and one missing methods fails registration', async (t) => {
  const data = new Map<string, unknown>()
  const store: Store = {
    get: async (key) => data.get(key),
    set: async (key, value) => { data.set(key, value) },
    delete: async (key) => { data.delete(key) },
    clear: async () => { data.clear() }
  }
  const app = fresh(t)
  await app.register(appCache, { store })
  await app.appCache.set('k', 'v')
  t.same(data.get('k'), { v: 'v' }, 'a value is stored in an envelope that says how long it may be served')
  t.equal(await app.appCache.getOrLoad('k', () => 'other'), 'v')
  t.equal(await app.appCache.getOrLoad('n', async () => 'loaded'), 'loaded')
  t.same(data.get('n'), { v: 'loaded' })
  t.equal(app.multiCache.stats().app?.size, 0, 'a store that does not count reports 0')

  const broken = fresh(t)
  await t.rejects(async () => { await broken.register(appCache, { store: { get () {} } as never }).ready() }, {
    code: 'FST_MULTICACHE_INVALID_OPTION', message: /appCache: option "store" must be 'memory' or an object with the methods get, set, delete, clear \(missing: set, delete, clear\)/
  })
})

test('invalid options name the option and what was expected', async (t) => {
  for (const [options, pattern] of [
    [{ max: -1 }, /appCache: option "max" must be a positive integer, got -1/],
    [{ ttl: '5 parsecs' }, /option "ttl" must be a number of milliseconds >= 0 or a duration string such as '30m', got "5 parsecs"/],
    [{ ttl: -5 }, /option "ttl"/],
    [{ store: 'disk' }, /option "store"/],
    [{ size: 1 }, /option "size" is not an option/]
  ] as const) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(appCache, options as never).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message: pattern })
  }
})

test('invalidate with wait: the memory store has every copy at hand; a store that cannot tell is refused, changing nothing', async (t) => {
  const app = fresh(t)
  await app.register(appCache)
  await app.appCache.set('a', 1)
  await app.appCache.invalidate('a', { wait: true })
  t.equal(await app.appCache.has('a'), false)
  await t.rejects(app.appCache.invalidate('a', { wait: 'soon' as '1s' }), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /appCache.invalidate: option "wait" must be true, false, a number of milliseconds/ })

  const keyv = fresh(t)
  await keyv.register(appCache, { store: new Keyv() })
  await keyv.appCache.set('a', 1)
  await t.rejects(keyv.appCache.invalidate('a', { wait: '2s' }), { code: 'FST_MULTICACHE_UNSUPPORTED', message: /needs the memory store or Redis/ })
  t.equal(await keyv.appCache.get('a'), 1, 'nothing was deleted')
  await keyv.appCache.invalidate('a', { wait: false })
  t.equal(await keyv.appCache.has('a'), false, 'without wait it invalidates as before')
})
