import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { LRUCache } from 'lru-cache'
import { TTL_CLOCK, deleteEntry, disposeReason } from '../../lib/lru.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import { millisecondTimers } from '../helpers/timers.js'

/** Runs `run`, counting the calls of `Array.prototype.fill` on arrays at least `length` long: lru-cache's way of emptying itself. */
function longFills (length: number, run: () => void): number {
  const fill = Array.prototype.fill
  let calls = 0
  // Counted where lru-cache calls it, for the length of one call: restored below.
  Array.prototype.fill = function (this: unknown[], ...args: Parameters<typeof fill>) { // eslint-disable-line no-extend-native
    if (this.length >= length) calls++
    return fill.apply(this, args)
  } as typeof fill
  try {
    run()
  } finally {
    Array.prototype.fill = fill // eslint-disable-line no-extend-native
  }
  return calls
}

test('deleteEntry: the last entry goes without lru-cache emptying arrays as long as its max', async (t) => {
  const lru = new LRUCache<string, number>({ max: 100_000 })
  lru.set('only', 1)
  // What lru-cache's own delete does with its last entry: the check would not notice a fix that was not there.
  t.ok(longFills(100_000, () => { lru.delete('only') }) > 0, "lru-cache's delete of its last entry refills its arrays")
  lru.set('only', 1)
  let deleted = false
  t.equal(longFills(100_000, () => { deleted = deleteEntry(lru, 'only') }), 0)
  t.equal(deleted, true)
  t.equal(lru.size, 0)
  t.equal(lru.get('only'), undefined)
})

test('deleteEntry: answers as delete does, and the cache goes on as before', async (t) => {
  const reasons: string[] = []
  const lru = new LRUCache<string, number>({ max: 2, disposeAfter: (_value, key, reason) => { reasons.push(`${key}:${disposeReason(reason)}`) } })
  lru.set('a', 1)
  t.equal(deleteEntry(lru, 'b'), false, 'a key it does not hold: nothing deleted')
  t.equal(lru.get('a'), 1, 'the one it holds stays')
  t.equal(deleteEntry(lru, 'a'), true)
  t.equal(deleteEntry(lru, 'a'), false, 'gone')
  // The slot it freed is used again, and the order of use still decides what the bound pushes out.
  lru.set('b', 2)
  lru.set('c', 3)
  lru.get('b')
  lru.set('d', 4)
  t.same([...lru.keys()].sort(), ['b', 'd'])
  t.equal(deleteEntry(lru, 'b'), true, 'with more than one entry: lru-cache deletes it')
  t.same(reasons, ['a:delete', 'c:evict', 'b:delete'], 'a delete is told as one, an eviction as one')
})

test('deleteEntry: an expired last entry is deleted as lru-cache would', async (t) => {
  const lru = new LRUCache<string, number>({ max: 10, ttl: 1 })
  lru.set('old', 1)
  await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(deleteEntry(lru, 'old'), true)
  t.equal(lru.size, 0)
})

test('deleteEntry: a cache bounded by size counts nothing for the entry deleted', async (t) => {
  const lru = new LRUCache<string, string>({ max: 10, maxSize: 10, sizeCalculation: (value) => value.length })
  lru.set('a', 'x'.repeat(10))
  deleteEntry(lru, 'a')
  t.equal(lru.calculatedSize, 0)
  lru.set('b', 'y'.repeat(10))
  t.equal(lru.get('b'), 'y'.repeat(10), 'a value as large as the bound fits again')
})

test('MemoryStore: deleting its last entry, or ending its last group, is no eviction and no drop', async (t) => {
  const told: string[] = []
  const store = new MemoryStore({ max: 100_000, onEvict: () => { told.push('evict') }, onDrop: (key, _value, reason) => { told.push(`${key}:${reason}`) } })
  store.set('k', 1)
  t.equal(longFills(100_000, () => { t.equal(store.delete('k'), true) }), 0)
  t.equal(store.get('k'), undefined)
  store.set('a', 1)
  t.equal(longFills(100_000, () => { store.deleteMany(['a']) }), 0)
  t.equal(store.size, 0)
  store.groups.create('g', { fence: 'f1', fields: {} }, 0)
  t.same(store.groups.end('g', 'f1'), { fence: 'f1', fields: {} })
  t.equal(store.groups.read('g', 0), undefined)
  t.same(told, [])
})

test('TTL_CLOCK: a store read once a request sets no timer to read the clock; entries still expire on time', async (t) => {
  // What lru-cache does by default: the check would not notice a fix that was not there.
  const plain = new LRUCache<string, number>({ max: 10, ttl: 60_000 })
  plain.set('a', 1)
  t.equal(await millisecondTimers(() => { plain.get('a') }), 1, "lru-cache's default sets a timer on a read")
  // Sessions roll; a memory tier of sessions does not, and is told.
  const rolling = new MemoryStore({ max: 10, ttl: 40, rolling: true })
  const fixed = new MemoryStore({ max: 10, ttl: 40, exactClock: true })
  rolling.pin('pinned')
  const timers = await millisecondTimers(async () => {
    for (const s of [rolling, fixed]) {
      for (const key of ['a', 'pinned']) {
        s.set(key, 1)
        s.get(key)
        // A millisecond apart, as requests of a quiet server come.
        await sleep(2)
        s.get(key)
      }
    }
  })
  t.equal(timers, 0)
  // A store a request may read many times keeps lru-cache's way: a hit reads no clock.
  const hits = new MemoryStore({ max: 10, ttl: 40 })
  hits.set('a', 1)
  t.equal(await millisecondTimers(() => { hits.get('a') }), 1)
  const lru = new LRUCache<string, number>({ max: 10, ttl: 30, ...TTL_CLOCK })
  lru.set('a', 1)
  fixed.set('b', 2)
  await sleep(20)
  t.equal(lru.get('a'), 1, 'not yet expired')
  t.equal(fixed.get('b'), 2)
  await sleep(60)
  t.equal(lru.get('a'), undefined, 'expired')
  t.equal(fixed.get('b'), undefined)
})
