import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { EntryTooLargeError } from '../../lib/errors.js'
import { AppCache, type LoadLock } from '../../lib/scopes/application.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import type { FenceOperations, Store } from '../../lib/store.js'

// The faults of batch reads, without Fastify: stores and locks that fail where a Redis can.

function level (store: Store, lock?: LoadLock): { app: AppCache, warnings: Array<Record<string, unknown>> } {
  const warnings: Array<Record<string, unknown>> = []
  const app = new AppCache({ store, ttl: 0, log: { warn: (details) => { warnings.push(details as Record<string, unknown>) } }, ...(lock === undefined ? {} : { lock }) })
  return { app, warnings }
}

const byKey = (keys: string[]): string[] => keys.map((key) => key.toUpperCase())

test('a store that throws at once is read key by key; a key it cannot answer for is loaded and written nowhere', async (t) => {
  const memory = new MemoryStore({ max: 10 })
  memory.set('held', { v: 'HELD' })
  const writes: string[] = []
  const store: Store = {
    get: (key) => { if (key !== 'held') throw new Error('down'); return memory.get(key) },
    set: (key) => { writes.push(key) },
    delete: () => {},
    clear: () => {}
  }
  const { app } = level(store)
  t.same(await app.getOrLoadMany(['held', 'other'], byKey), ['HELD', 'OTHER'])
  t.same(writes, [], 'the key whose read failed was not written')
  t.equal(app.stats.storeErrors, 2, 'the batch read, then the key that failed alone')
})

test('fences that cannot be read or written: the values are served, counted as faults, and written nowhere', async (t) => {
  const memory = new MemoryStore({ max: 10 })
  const fences: FenceOperations = {
    read: async () => 'f',
    bump: async () => 'g',
    setIf: async () => true,
    readMany: async () => { throw new Error('fences down') },
    setManyIf: async () => { throw new Error('never asked: nothing vouches for these loads') }
  }
  const store: Store = { get: (key) => memory.get(key), set: (key, value) => { memory.set(key, value) }, delete: () => {}, clear: () => {}, fences }
  const { app, warnings } = level(store)
  t.same(await app.getOrLoadMany(['a', 'b'], byKey), ['A', 'B'])
  t.same(await app.getMany(['a', 'b']), [undefined, undefined], 'nothing written')
  t.match(warnings, [{ operation: 'fence' }])

  fences.readMany = async (keys) => keys.map(() => 'f')
  fences.setManyIf = async () => { throw new Error('write failed') }
  t.same(await app.getOrLoadMany(['a', 'b'], byKey), ['A', 'B'])
  await sleep(5)
  t.equal(app.stats.storeErrors, 2, 'the failed write is counted; the callers had their values')
})

test('a value too large is served uncached; one the serializer refuses fails its key alone; a failed background load keeps the stale values', async (t) => {
  const memory = new MemoryStore({ max: 10 })
  const store: Store = {
    get: (key) => memory.get(key),
    set: (key, value, ttl) => { memory.set(key, value, ttl) },
    delete: () => {},
    clear: () => {},
    stored: (key, value) => {
      if (key === 'big') throw new EntryTooLargeError(key, 2000, 1000)
      if (key === 'odd') throw new TypeError('cannot keep it')
      return value
    }
  }
  const { app, warnings } = level(store)
  t.same(await app.getOrLoadMany(['big', 'fine'], byKey), ['BIG', 'FINE'])
  t.same(await app.getMany(['big', 'fine']), [undefined, 'FINE'])
  t.equal(app.stats.oversized, 1)
  await t.rejects(app.getOrLoadMany(['odd', 'fine2'], byKey), /cannot keep it/)
  t.same(await app.getMany(['fine2']), ['FINE2'])

  t.match(warnings, [{ key: 'big' }])

  // Warnings come once per burst: a level of its own, so that this one is not held back.
  const stale = level(new MemoryStore({ max: 10 }))
  await stale.app.getOrLoadMany(['s'], byKey, { ttl: 20, staleWhileRevalidate: '1m' })
  await sleep(30)
  t.same(await stale.app.getOrLoadMany(['s'], () => { throw new Error('background failed') }, { ttl: 20, staleWhileRevalidate: '1m' }), ['S'])
  await sleep(5)
  t.same(await stale.app.getMany(['s']), ['S'], 'the stale value stays')
  t.match(stale.warnings, [{ err: { message: 'background failed' } }])
})

test('a lock wait that fails loads the key here; once the level stopped, it rejects instead', async (t) => {
  const lock: LoadLock = {
    acquire: async (name) => name.startsWith('mine') ? 'token' : undefined,
    release: async () => {},
    waitFor: async () => { throw new Error('wait failed') }
  }
  const { app, warnings } = level(new MemoryStore({ max: 10 }), lock)
  const calls: string[][] = []
  const loader = (keys: string[]): string[] => { calls.push(keys); return byKey(keys) }
  t.same(await app.getOrLoadMany(['mine', 'theirs'], loader), ['MINE', 'THEIRS'])
  t.same(calls, [['mine'], ['theirs']], 'the key held elsewhere loaded in a second call, once its wait failed')
  t.match(warnings, [{ operation: 'lock', key: 'theirs' }])
  app.stop()
  await t.rejects(app.getOrLoadMany(['theirs2'], loader), /wait failed/)
})
