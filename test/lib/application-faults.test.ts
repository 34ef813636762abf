import { test } from 'tap'
import { AppCache, type LoadLock } from '../../lib/scopes/application.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import type { Store } from '../../lib/store.js'

/** A memory store that can be switched to fail every operation, as a Redis that is down would. */
function faultyStore (): Store & { down: boolean } {
  const memory = new MemoryStore({ max: 100 })
  const guard = <T>(run: () => T): Promise<T> => store.down ? Promise.reject(new Error('store down')) : Promise.resolve(run())
  const store = {
    down: false,
    get: (key: string) => guard(() => memory.get(key)),
    set: (key: string, value: unknown, ttl?: number) => guard(() => memory.set(key, value, ttl)),
    delete: (key: string) => guard(() => memory.delete(key)),
    clear: () => guard(() => memory.clear())
  }
  return store
}

test('a failing store degrades to the loader, is counted, and is logged once per burst', async (t) => {
  const store = faultyStore()
  const warnings: string[] = []
  const cache = new AppCache({ store, ttl: 0, log: { warn: (_details, message) => { warnings.push(message) } } })
  let loads = 0
  const loader = async (): Promise<string> => `v${++loads}`

  t.equal(await cache.getOrLoad('k', loader), 'v1')
  t.equal(await cache.getOrLoad('k', loader), 'v1', 'cached while the store works')
  store.down = true
  const answers = await Promise.all(Array.from({ length: 20 }, async () => await cache.getOrLoad('k', loader)))
  t.ok(answers.every((answer) => answer === 'v2'), 'concurrent misses still share one load')
  t.equal(await cache.get('k'), undefined, 'a plain get is a miss')
  t.equal(await cache.getOrLoad('k', loader), 'v3')
  t.equal(loads, 3)
  const stats = cache.stats.snapshot()
  t.ok(stats.storeErrors >= 3, `store errors counted (${stats.storeErrors})`)
  t.equal(warnings.length, 1, 'one warning for the whole burst')
  t.match(warnings[0], /appCache: the store failed/)

  await t.rejects(cache.set('k', 1), /store down/, 'an explicit write reports the fault to its caller')
  store.down = false
  t.equal(await cache.getOrLoad('k', loader), 'v1', 'the store answers again with what it held before the outage')
  await cache.delete('k')
  t.equal(await cache.getOrLoad('k', loader), 'v4')
  t.equal(await cache.getOrLoad('k', loader), 'v4', 'caching resumes by itself')
})

test('a store that throws synchronously is read as a failure too', async (t) => {
  const store: Store = { get: () => { throw new Error('sync') }, set: () => {}, delete: () => {}, clear: () => {} }
  const cache = new AppCache({ store, ttl: 0, log: { warn: () => {} } })
  t.equal(await cache.getOrLoad('k', () => 1), 1)
  t.equal(cache.stats.snapshot().storeErrors, 1)
})

test('a miss whose read failed asks the store nothing more: no fence, no lock, no write', async (t) => {
  const asked: string[] = []
  const timedOut = async (operation: string): Promise<never> => {
    asked.push(operation)
    throw new Error(`${operation} timed out`)
  }
  const store: Store = {
    get: async () => await timedOut('get'),
    set: async () => await timedOut('set'),
    delete: async () => await timedOut('delete'),
    clear: async () => await timedOut('clear'),
    fences: {
      read: async () => await timedOut('fence read'),
      bump: async () => await timedOut('fence bump'),
      setIf: async () => await timedOut('fenced write')
    }
  }
  const lock: LoadLock = {
    acquire: async () => await timedOut('lock'),
    release: async () => {},
    waitFor: async () => undefined,
    lease: async () => await timedOut('lease')
  }
  const cache = new AppCache({ store, ttl: 0, lock, log: { warn: () => {} } })
  t.equal(await cache.getOrLoad('k', () => 'loaded'), 'loaded')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(asked, ['get'], 'one time budget, not three')
})
