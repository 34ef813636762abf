import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import { test } from 'tap'
import { RequestLevel } from '../../lib/scopes/request.js'

type Op =
  | { op: 'set', key: string, value: number }
  | { op: 'get' | 'has' | 'delete', key: string }
  | { op: 'clear' }

const keys = fc.constantFrom('a', 'b', 'c', 'd', 'e', '__proto__', 'constructor', 'toString')
const ops = fc.array(fc.oneof(
  fc.record({ op: fc.constant('set' as const), key: keys, value: fc.integer() }),
  fc.record({ op: fc.constantFrom('get' as const, 'has' as const, 'delete' as const), key: keys }),
  fc.constant({ op: 'clear' as const })
), { maxLength: 60 })

test('behaves as a bounded map that drops the oldest written entry, with exact counters', async (t) => {
  fc.assert(fc.property(fc.integer({ min: 1, max: 5 }), fc.array(ops, { minLength: 1, maxLength: 4 }), (maxEntries, requests) => {
    const level = new RequestLevel({ maxEntries })
    const model = { hits: 0, misses: 0, evictions: 0 }
    const caches = requests.map(() => level.open())
    const models = requests.map(() => new Map<string, number>())
    // The requests run interleaved: one operation of each in turn.
    const longest = Math.max(...requests.map((r) => r.length))
    for (let step = 0; step < longest; step++) {
      requests.forEach((list, i) => {
        const action = list[step] as Op | undefined
        if (action === undefined) return
        const cache = caches[i]!
        const expected = models[i]!
        switch (action.op) {
          case 'set':
            if (expected.has(action.key)) expected.delete(action.key)
            else if (expected.size >= maxEntries) { expected.delete(expected.keys().next().value as string); model.evictions++ }
            expected.set(action.key, action.value)
            cache.set(action.key, action.value)
            break
          case 'get': {
            const value = expected.get(action.key)
            if (value === undefined) model.misses++
            else model.hits++
            if (cache.get(action.key) !== value) throw new Error(`get ${action.key}`)
            break
          }
          case 'has':
            if (cache.has(action.key) !== expected.has(action.key)) throw new Error(`has ${action.key}`)
            break
          case 'delete':
            if (cache.delete(action.key) !== expected.delete(action.key)) throw new Error(`delete ${action.key}`)
            break
          case 'clear':
            cache.clear()
            expected.clear()
        }
        if (cache.size !== expected.size) throw new Error('size')
      })
    }
    const stats = level.stats.snapshot()
    const held = models.reduce((sum, m) => sum + m.size, 0)
    if (stats.hits !== model.hits || stats.misses !== model.misses || stats.evictions !== model.evictions || stats.size !== held) {
      throw new Error(`stats ${JSON.stringify(stats)} vs ${JSON.stringify({ ...model, size: held })}`)
    }
    caches.forEach((cache) => { cache.end() })
    if (level.stats.snapshot().size !== 0) throw new Error('size after every request ended')
  }), { numRuns: 300 })
  t.pass('300 random interleavings agree with the model')
})

test('once its request has ended, a cache no longer counts in the level size but stays usable', async (t) => {
  const level = new RequestLevel({ maxEntries: 2 })
  const ended = level.open()
  const running = level.open()
  ended.set('a', 1).set('b', 2)
  running.set('a', 1)
  t.equal(level.stats.snapshot().size, 3)
  ended.end()
  t.equal(level.stats.snapshot().size, 1, 'only the running request counts')
  t.equal(ended.get('a'), 1, 'code still running for the ended request reads what it stored')
  ended.set('c', 3)
  ended.delete('b')
  ended.set('d', 4)
  ended.clear()
  ended.end()
  t.equal(level.stats.snapshot().size, 1, 'nothing it does afterwards moves the count')
  t.equal(level.stats.snapshot().evictions, 1)
  running.clear()
  t.equal(level.stats.snapshot().size, 0)
})

test('a load that settles after the request ended leaves no trace in the level size', async (t) => {
  const level = new RequestLevel({ maxEntries: 10 })
  const cache = level.open()
  const late = cache.getOrLoad('k', async () => { await sleep(10); return 'v' })
  cache.clear()
  cache.end()
  t.equal(await late, 'v')
  t.equal(level.stats.snapshot().size, 0)
  t.equal(await cache.getOrLoad('k', () => 'other'), 'v', 'the value is still the request\'s own')
})
