import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { AppCache, type LoadLock } from '../../lib/scopes/application.js'
import type { Store } from '../../lib/store.js'
import { MemoryStore } from '../../lib/stores/memory.js'

function cache (store: Store = new MemoryStore({ max: 100 }), lock?: LoadLock): { app: AppCache, warnings: Array<Record<string, unknown>> } {
  const warnings: Array<Record<string, unknown>> = []
  const app = new AppCache({ store, ttl: 0, log: { warn: (details) => { warnings.push(details as Record<string, unknown>) } }, ...(lock === undefined ? {} : { lock }) })
  return { app, warnings }
}

test('define names refreshInterval in its errors, and refuses an interval a timer cannot keep', async (t) => {
  const { app } = cache()
  t.throws(() => { app.define('a', () => 1, { refreshInterval: '5 parsecs' as '1m' }) }, {
    code: 'FST_MULTICACHE_INVALID_OPTION', message: /^appCache.define: option "refreshInterval" must be a number of milliseconds >= 0 or a duration string such as '30m', got "5 parsecs"$/
  })
  t.throws(() => { app.define('b', () => 1, { ttl: 'soon' as '1m' }) }, { message: /appCache.define: option "ttl"/ })
  // Node clamps a longer delay to 1 ms: the loader would run a thousand times a second.
  t.throws(() => { app.define('c', () => 1, { refreshInterval: '30d' }) }, {
    code: 'FST_MULTICACHE_INVALID_OPTION', message: /option "refreshInterval" must be at most 2147483647 ms/
  })
  app.define('d', () => 1, { refreshInterval: 2 ** 31 - 1 })
  t.throws(() => { app.define('', () => 1) }, { code: 'FST_MULTICACHE_INVALID_KEY' })
})

test('a preload that rejects with something other than an Error still names the key', async (t) => {
  const { app } = cache()
  // eslint-disable-next-line no-throw-literal
  app.define('rates', async () => { throw 'HTTP 503' })
  await t.rejects(app.start(), { code: 'FST_MULTICACHE_PRELOAD_FAILED', message: 'appCache: preloading the defined key "rates" failed: HTTP 503', cause: 'HTTP 503' })
})

test('a loader that rejects with what cannot be printed: the preload still names the key, and a refresh records a message', async (t) => {
  const unprintable = Object.create(null) as object
  const { app } = cache()
  app.define('rates', async () => { throw unprintable })
  await t.rejects(app.start(), { code: 'FST_MULTICACHE_PRELOAD_FAILED', message: 'appCache: preloading the defined key "rates" failed: a thrown value that cannot be printed' })
  t.match(app.defined(), [{ key: 'rates', lastError: 'a thrown value that cannot be printed' }])
})

test('a defined key that expired is loaded again by its own loader on the next read', async (t) => {
  const { app } = cache()
  let version = 0
  app.define('menu', () => ({ version: ++version }), { ttl: 30 })
  await app.start()
  t.teardown(() => { app.stop() })
  t.same(await app.get('menu'), { version: 1 })
  await sleep(50)
  t.equal(await app.has('menu'), false, 'expired')
  t.same(await app.get('menu'), { version: 2 }, 'reloaded by get')
  t.equal(app.stats.loads, 2)
})

test('a cross-instance lock: the holder loads and releases, a waiter takes the value that landed', async (t) => {
  const events: string[] = []
  let holder = true
  let landed: unknown
  const lock: LoadLock = {
    acquire: async (key) => { events.push(`acquire ${key}`); return holder ? 'token' : undefined },
    release: async (key, token) => { events.push(`release ${key} ${token}`) },
    waitFor: async (_store, key) => { events.push(`wait ${key}`); return landed }
  }
  const { app } = cache(new MemoryStore({ max: 100 }), lock)
  t.equal(await app.getOrLoad('a', () => 'loaded here'), 'loaded here')
  t.same(events, ['acquire a', 'release a token'])

  events.length = 0
  holder = false
  landed = { v: 'loaded elsewhere' } // what the holder stored: a held value
  let calls = 0
  t.equal(await app.getOrLoad('b', () => { calls++; return 'loaded here' }), 'loaded elsewhere', 'another instance held the lock')
  t.equal(calls, 0)
  t.same(events, ['acquire b', 'wait b'])

  landed = undefined
  t.equal(await app.getOrLoad('c', () => 'after the wait'), 'after the wait', 'nothing landed in time: load anyway')
  t.equal(await app.get('c'), 'after the wait', 'and store it')
})

test('a lock that fails never stops the load', async (t) => {
  const lock: LoadLock = {
    acquire: async () => { throw new Error('lock down') },
    release: async () => { throw new Error('never called') },
    waitFor: async () => undefined
  }
  const { app, warnings } = cache(new MemoryStore({ max: 100 }), lock)
  t.equal(await app.getOrLoad('a', () => 1), 1)
  t.equal(app.stats.storeErrors, 1)
  t.equal(warnings[0]?.operation, 'lock')

  const releaseFails: LoadLock = { ...lock, acquire: async () => 'token', release: async () => { throw new Error('unlock down') } }
  const second = cache(new MemoryStore({ max: 100 }), releaseFails)
  t.equal(await second.app.getOrLoad('a', () => 2), 2)
  t.equal(second.warnings[0]?.operation, 'unlock')
  const waitFails: LoadLock = { ...lock, acquire: async () => undefined, waitFor: async () => { throw new Error('wait down') } }
  t.equal(await cache(new MemoryStore({ max: 100 }), waitFails).app.getOrLoad('a', () => 3), 3)

  const definedWithLock = cache(new MemoryStore({ max: 100 }), { ...lock, acquire: async () => { throw new Error('not for refreshes') } })
  definedWithLock.app.define('d', () => 4)
  await definedWithLock.app.start()
  t.equal(definedWithLock.warnings.length, 0, 'a preload or refresh reloads a known key: it takes no lock')
})

test('a store that fails to keep a loaded value: the caller still gets it, the next miss loads again', async (t) => {
  const memory = new MemoryStore({ max: 10 })
  const store: Store = { get: (k) => memory.get(k), set: async () => { throw new Error('full') }, delete: (k) => { memory.delete(k) }, clear: () => { memory.clear() } }
  const { app, warnings } = cache(store)
  let calls = 0
  t.equal(await app.getOrLoad('k', () => ++calls), 1)
  t.equal(await app.getOrLoad('k', () => ++calls), 2)
  t.equal(app.stats.storeErrors, 2)
  t.equal(warnings.length, 1, 'one warning per burst')
  t.equal(await app.getOrLoad('u', () => undefined), undefined, 'undefined is never written')
})

test('with a lease, a background refresh runs only on the instance that holds this interval', async (t) => {
  const leases: Array<[string, number]> = []
  let granted = false
  const lock: LoadLock = {
    acquire: async () => 'token',
    release: async () => {},
    waitFor: async () => undefined,
    lease: async (key, ms) => { leases.push([key, ms]); return granted }
  }
  const { app } = cache(new MemoryStore({ max: 100 }), lock)
  let loads = 0
  app.define('menu', () => ++loads, { refreshInterval: 40 })
  await app.start()
  t.teardown(() => { app.stop() })
  t.equal(loads, 1, 'the preload takes no lease')
  await sleep(130)
  t.equal(loads, 1, 'another instance held every lease: no refresh here')
  t.ok(leases.length >= 2)
  t.same(leases[0], ['menu', 36], 'a lease ends a little before the next tick')
  granted = true
  await sleep(100)
  t.ok(loads >= 2, 'holding the lease, this instance refreshes')
  t.equal(await app.get('menu'), loads)
})

test('a lease that fails lets the refresh run, counted and logged', async (t) => {
  const lock: LoadLock = {
    acquire: async () => 'token',
    release: async () => {},
    waitFor: async () => undefined,
    lease: async () => { throw new Error('lease down') }
  }
  const { app, warnings } = cache(new MemoryStore({ max: 100 }), lock)
  let loads = 0
  app.define('menu', () => ++loads, { refreshInterval: 30 })
  await app.start()
  t.teardown(() => { app.stop() })
  await sleep(80)
  t.ok(loads >= 2, 'refreshed all the same')
  t.ok(app.stats.storeErrors >= 1)
  t.equal(warnings[0]?.operation, 'lease')
})
