import { tracingChannel } from 'node:diagnostics_channel'
import { test, type Test } from 'tap'
import { CACHE_OPERATION_CHANNEL, CacheOperation, observe, observeDrop, observeLookup, subscribeCacheOperations, subscribeRequestUsage, usageOf, type CacheOperationContext } from '../../lib/events.js'
import { RequestLevel } from '../../lib/scopes/request.js'
import { AppCache } from '../../lib/scopes/application.js'
import { MemoryStore } from '../../lib/stores/memory.js'

const silent = { warn () {}, error () {}, info () {}, debug () {} }

/** Counts the operations run through the stream (with or without the channel) while `body` runs. */
async function counted (t: Test, body: () => Promise<void> | void): Promise<number> {
  let runs = 0
  const { sync, promise } = CacheOperation.prototype
  CacheOperation.prototype.sync = function (this: CacheOperation, run) { runs++; return sync.call(this, run) } as typeof sync
  CacheOperation.prototype.promise = function (this: CacheOperation, run) { runs++; return promise.call(this, run) } as typeof promise
  t.teardown(() => { Object.assign(CacheOperation.prototype, { sync, promise }) })
  try {
    await body()
  } finally {
    Object.assign(CacheOperation.prototype, { sync, promise })
  }
  return runs
}

test('nobody listening: no context is built and the levels run their plain code', async (t) => {
  t.equal(observe('app', 'get', 'k'), undefined)
  const level = new RequestLevel({ maxEntries: 10 })
  const app = new AppCache({ store: new MemoryStore({ max: 10 }), ttl: 0, log: silent })
  const runs = await counted(t, async () => {
    const cache = level.open()
    cache.set('a', 1)
    cache.get('a')
    cache.get('b')
    await cache.getOrLoad('c', () => 3)
    await app.set('x', 1)
    await app.get('x')
    await app.getOrLoad('y', () => 2)
    await app.getMany(['x', 'y'])
  })
  t.equal(runs, 0)
})

test('an in-process subscriber gets every operation once it has ended, with what it found', async (t) => {
  const seen: Array<Partial<CacheOperationContext>> = []
  const stop = subscribeCacheOperations(({ level, operation, key, hit, stale, tier, error }) => { seen.push({ level, operation, key, hit, stale, tier, error }) })
  t.teardown(stop)
  const cache = new RequestLevel({ maxEntries: 10 }).open()
  cache.set('a', 1)
  cache.get('a')
  cache.get('b')
  const failure = new Error('down')
  await t.rejects(cache.getOrLoad('c', () => { throw failure }), failure)
  t.same(seen, [
    { level: 'request', operation: 'set', key: 'a', hit: undefined, stale: undefined, tier: undefined, error: undefined },
    { level: 'request', operation: 'get', key: 'a', hit: true, stale: false, tier: undefined, error: undefined },
    { level: 'request', operation: 'get', key: 'b', hit: false, stale: undefined, tier: undefined, error: undefined },
    // The loader's call ends before the lookup that needed it.
    { level: 'request', operation: 'load', key: 'c', hit: undefined, stale: undefined, tier: undefined, error: failure },
    { level: 'request', operation: 'getOrLoad', key: 'c', hit: false, stale: undefined, tier: undefined, error: failure }
  ])
  stop()
  cache.get('a')
  t.equal(seen.length, 5, 'nothing once unsubscribed')
})

test('a sampled subscriber gets about its share, and an operation it is not given builds nothing', async (t) => {
  let given = 0
  const stop = subscribeCacheOperations(() => { given++ }, { sampleRate: 0.01 })
  t.teardown(stop)
  const cache = new RequestLevel({ maxEntries: 10 }).open()
  cache.set('a', 1)
  const runs = await counted(t, () => { for (let i = 0; i < 20_000; i++) cache.get('a') })
  // 200 expected: each lookup drawn as if on its own at 1 in 100 (sd 14).
  t.ok(given > 120 && given < 300, `given ${given} of 20,000`)
  t.equal(runs, given, 'a context only for the operations given')
})

test('a listener that throws fails no operation; subscribe checks its arguments', async (t) => {
  const stop = subscribeCacheOperations(() => { throw new Error('mine') })
  t.teardown(stop)
  const cache = new RequestLevel({ maxEntries: 10 }).open()
  t.doesNotThrow(() => cache.set('a', 1))
  t.equal(await cache.getOrLoad('a', () => 2), 1)
  t.throws(() => subscribeCacheOperations(() => {}, { sampleRate: 0 }), RangeError)
  t.throws(() => subscribeCacheOperations(() => {}, { sampleRate: 2 }), RangeError)
  t.throws(() => subscribeCacheOperations('no' as never), TypeError)
})

test('the channel: traceSync for a synchronous operation, tracePromise events for the others', async (t) => {
  const events: string[] = []
  const channel = tracingChannel<unknown, CacheOperationContext>(CACHE_OPERATION_CHANNEL)
  const subscribers = {
    start: (c: CacheOperationContext) => { events.push(`start ${c.operation}`) },
    end: (c: CacheOperationContext) => { events.push(`end ${c.operation}`) },
    asyncStart: (c: CacheOperationContext) => { events.push(`asyncStart ${c.operation}`) },
    asyncEnd: (c: CacheOperationContext) => { events.push(`asyncEnd ${c.operation}`) },
    error: (c: CacheOperationContext) => { events.push(`error ${c.operation} ${(c.error as Error).message}`) }
  }
  channel.subscribe(subscribers)
  t.teardown(() => { channel.unsubscribe(subscribers) })
  const cache = new RequestLevel({ maxEntries: 10, maxKeyLength: 4 }).open()
  cache.get('a')
  t.throws(() => cache.get('toolong'))
  await cache.getOrLoad('b', async () => 2)
  t.match(events.splice(3, 1), [/^error get cache key of 7 characters/])
  t.same(events, [
    'start get', 'end get',
    'start get', 'end get',
    'start getOrLoad', 'start load', 'end load', 'end getOrLoad', 'asyncStart load', 'asyncEnd load', 'asyncStart getOrLoad', 'asyncEnd getOrLoad'
  ])
})

test('every: operations given each time whatever the rate, uncounted by the countdown; drops only to those who ask', async (t) => {
  const given: string[] = []
  const stop = subscribeCacheOperations((op) => { given.push(`${op.level} ${op.operation}${op.reason === undefined ? '' : ' ' + op.reason}`) }, { sampleRate: 0.01, every: { app: ['set', 'drop'] }, random: () => 0.5 })
  const plain: string[] = []
  const stopPlain = subscribeCacheOperations((op) => { plain.push(op.operation) })
  t.teardown(() => { stop(); stopPlain() })
  const origin = {}
  const app = new AppCache({ store: new MemoryStore({ max: 2, onDrop: (key, _value, reason) => { observeDrop('app', key, reason, origin) } }), ttl: 0, log: silent })
  for (let i = 0; i < 5; i++) await app.set(`k${i}`, i)
  // A countdown of about 100 (random 0.5: 69): 68 reads let pass, the 69th given, the next due at the 138th.
  for (let i = 0; i < 100; i++) await app.get('k4')
  t.same(given.filter((line) => line === 'app set'), ['app set', 'app set', 'app set', 'app set', 'app set'], 'every set')
  t.same(given.filter((line) => line === 'app drop evict').length, 3, 'each eviction, with its reason')
  t.same(given.filter((line) => line === 'app get').length, 1, 'reads sampled: the sets did not count down')
  t.notOk(plain.includes('drop'), 'a listener that did not ask for drops gets none')
  t.throws(() => subscribeCacheOperations(() => {}, { every: { app: 'set' as never } }), /every.app must be an array/)
})

test('usageOf: the value, the token and the level, in private fields that no subscriber serialises', async (t) => {
  const seen: CacheOperationContext[] = []
  const stop = subscribeCacheOperations((op) => { seen.push(op) })
  t.teardown(stop)
  const app = new AppCache({ store: new MemoryStore({ max: 10 }), ttl: 0, log: silent })
  await app.set('secret-holder', { card: '4111' })
  await app.getOrLoad('loaded', () => ({ pin: '1234' }))
  const set = seen.find((op) => op.operation === 'set') as CacheOperationContext
  const load = seen.find((op) => op.operation === 'load') as CacheOperationContext
  t.same(usageOf(set), { scope: undefined, value: { card: '4111' }, origin: app })
  t.same(usageOf(load).value, { pin: '1234' })
  t.notMatch(JSON.stringify(seen), /4111|1234/, 'values never reach a serialised context')
  t.same(usageOf({ level: 'app', operation: 'get' } as CacheOperationContext), { scope: undefined, value: undefined, origin: undefined })
})

test('lookups skipped ahead: listeners at different rates, and one taking every lookup, each get their share', async (t) => {
  const given = { tenth: 0, hundredth: 0, all: 0 }
  const stops = [
    subscribeCacheOperations(() => { given.tenth++ }, { sampleRate: 0.1 }),
    subscribeCacheOperations(() => { given.hundredth++ }, { sampleRate: 0.01 })
  ]
  t.teardown(() => { for (const stop of stops) stop() })
  const app = new AppCache({ store: new MemoryStore({ max: 10 }), ttl: 0, log: silent })
  await app.set('a', 1)
  given.tenth = given.hundredth = 0
  for (let i = 0; i < 100_000; i++) await app.get('a')
  t.ok(Math.abs(given.tenth - 10_000) < 1000, `1 in 10: ${given.tenth}`)
  t.ok(Math.abs(given.hundredth - 1000) < 150, `1 in 100: ${given.hundredth}`)
  stops.push(subscribeCacheOperations(() => { given.all++ }))
  for (let i = 0; i < 1000; i++) await app.get('a')
  t.equal(given.all, 1000, 'a listener without a rate gets every lookup, from the next one on')
})

test('runLength: lookups given in runs of that many in a row, at the same rate, beside a listener given them one by one', async (t) => {
  const app = new AppCache({ store: new MemoryStore({ max: 100 }), ttl: 0, log: silent })
  for (let i = 0; i < 100; i++) await app.set(`k${i}`, i)
  const inRuns: number[] = []
  const single: number[] = []
  let lookup = 0
  let random = 0
  const seeded = (): number => (random = (random + 0.618034) % 1)
  const stops = [
    subscribeCacheOperations((op) => { if (op.operation === 'get') inRuns.push(lookup) }, { sampleRate: 0.01, runLength: 8, random: seeded }),
    subscribeCacheOperations((op) => { if (op.operation === 'get') single.push(lookup) }, { sampleRate: 0.01 })
  ]
  t.teardown(() => { for (const stop of stops) stop() })
  for (; lookup < 200_000; lookup++) await app.get(`k${lookup % 100}`)
  t.ok(Math.abs(inRuns.length - 2000) < 300, `1 in 100 in runs: ${inRuns.length}`)
  t.ok(Math.abs(single.length - 2000) < 300, `1 in 100 one by one: ${single.length}`)
  const runs: number[] = []
  for (const [i, at] of inRuns.entries()) {
    if (i > 0 && at === (inRuns[i - 1] as number) + 1) runs.push((runs.pop() as number) + 1)
    else runs.push(1)
  }
  // Two runs may touch (a countdown of 1), never split: every run is a multiple of 8 long, but the last, which the loop
  // may have cut.
  t.ok(runs.slice(0, -1).every((length) => length % 8 === 0), `runs of 8: ${[...new Set(runs.slice(0, -1))].join(', ')}`)
  t.ok(single.some((at, i) => i > 0 && at !== (single[i - 1] as number) + 1), 'the other listener is given lookups apart')
  for (const runLength of [0, 1.5, 1001, '8']) {
    t.throws(() => subscribeCacheOperations(() => {}, { runLength: runLength as number }), /runLength must be an integer from 1 to 1000/)
  }
})

test('the lookups counted ahead are given back: lookups and other operations alternating are each given at the rate', async (t) => {
  const given = { alone: { get: 0, set: 0 }, inRuns: { get: 0, set: 0 } }
  const stops = [
    subscribeCacheOperations((op) => { given.alone[op.operation as 'get' | 'set']++ }, { sampleRate: 0.01 }),
    subscribeCacheOperations((op) => { given.inRuns[op.operation as 'get' | 'set']++ }, { sampleRate: 0.01, runLength: 32 })
  ]
  t.teardown(() => { for (const stop of stops) stop() })
  for (let i = 0; i < 200_000; i++) {
    observeLookup('app', 'get', 'k')?.sync(() => {})
    observe('app', 'set', 'k')?.sync(() => {})
  }
  // Before: the first set after a lookup was drawn at once (the countdown stood at 1), the lookups never.
  t.ok(Math.abs(given.alone.get - 2000) < 400 && Math.abs(given.alone.set - 2000) < 400, `one by one: ${JSON.stringify(given.alone)}`)
  t.ok(Math.abs(given.inRuns.get - 2000) < 800 && Math.abs(given.inRuns.set - 2000) < 800, `in runs: ${JSON.stringify(given.inRuns)}`)
})

test('a rate that is not one in a whole number is kept: 0.7, 0.4 and 0.15 of the lookups, not 1, 1/3 and 1/7', async (t) => {
  const given = new Map<number, number>([[0.7, 0], [0.4, 0], [0.15, 0]])
  const stops = [...given.keys()].map((rate) => subscribeCacheOperations(() => { given.set(rate, (given.get(rate) ?? 0) + 1) }, { sampleRate: rate }))
  t.teardown(() => { for (const stop of stops) stop() })
  for (let i = 0; i < 50_000; i++) observeLookup('app', 'get', 'k')?.sync(() => {})
  for (const [rate, count] of given) t.ok(Math.abs(count / 50_000 - rate) < 0.01, `${rate}: ${count} of 50,000`)
})

test('another listener subscribing and stopping does not draw for the others', async (t) => {
  let given = 0
  const stop = subscribeCacheOperations(() => { given++ }, { sampleRate: 0.01, runLength: 32 })
  t.teardown(stop)
  for (let i = 0; i < 200_000; i++) {
    if (i % 100 === 0) subscribeCacheOperations(() => {}, { sampleRate: 0.5 })()
    observeLookup('app', 'get', 'k')?.sync(() => {})
  }
  // Before: every change of the list drew the next lookup, a run of 32 each time (about 64,000).
  t.ok(given > 1000 && given < 3000, `1 in 100 in runs of 32: ${given}`)
})

test('an async listener that rejects fails no operation and leaves no unhandled rejection', async (t) => {
  const unhandled: unknown[] = []
  const record = (reason: unknown): void => { unhandled.push(reason) }
  process.on('unhandledRejection', record)
  t.teardown(() => { process.off('unhandledRejection', record) })
  const stop = subscribeCacheOperations(async () => { throw new Error('mine, later') })
  t.teardown(stop)
  const app = new AppCache({ store: new MemoryStore({ max: 10 }), ttl: 0, log: silent })
  await app.set('a', 1)
  t.equal(await app.get('a'), 1)
  observeDrop('app', 'a', 'evict')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(unhandled, [])
})

test('levels: a listener is given the levels it names; the request level left out builds nothing there', async (t) => {
  const seen: string[] = []
  const stop = subscribeCacheOperations((op) => { seen.push(`${op.level} ${op.operation}`) }, { levels: ['app'] })
  t.teardown(stop)
  const app = new AppCache({ store: new MemoryStore({ max: 10 }), ttl: 0, log: silent })
  const cache = new RequestLevel({ maxEntries: 10 }).open()
  const runs = await counted(t, async () => {
    cache.set('a', 1)
    cache.get('a')
    await cache.getOrLoad('b', () => 2)
  })
  t.equal(runs, 0, 'no context for the request level')
  t.equal(observe('session', 'set', 'k'), undefined, 'nor for another level left out')
  await app.set('x', 1)
  await app.get('x')
  t.same(seen, ['app set', 'app get'])
  t.throws(() => subscribeCacheOperations(() => {}, { levels: ['request', 'db'] as never }), /levels must be an array of level names \(request, session, app, route\)/)
  t.throws(() => subscribeCacheOperations(() => {}, { levels: 'app' as never }), TypeError)
})

test('levels: a sampled listener that leaves a level out keeps its rate on the levels it takes', async (t) => {
  let given = 0
  const stop = subscribeCacheOperations((op) => { if (op.level === 'app') given++ }, { sampleRate: 0.1, levels: ['app'] })
  t.teardown(stop)
  let sessionGiven = 0
  for (let i = 0; i < 20_000; i++) {
    // Lookups of a level left out count the listener down as any other, and are then not given: no context built.
    if (observeLookup('session', 'get', 'k') !== undefined) sessionGiven++
  }
  const app = new AppCache({ store: new MemoryStore({ max: 10 }), ttl: 0, log: silent })
  await app.set('a', 1)
  given = 0
  for (let i = 0; i < 20_000; i++) await app.get('a')
  t.equal(sessionGiven, 0)
  t.ok(Math.abs(given - 2000) < 300, `1 in 10 of the app's lookups: ${given}`)
})

test('request usage: a share of requests drawn as they open, each read whole and told once at its end, bounded', async (t) => {
  const told: Array<[string, number][]> = []
  const origins = new Set<object>()
  let random = 0
  const stop = subscribeRequestUsage((reads, origin) => {
    origins.add(origin)
    told.push([...reads].map(([key, { reads }]) => [key, reads]))
  }, { sampleRate: 0.1, maxKeys: 3, random: () => (random = (random + 0.37) % 1) })
  t.teardown(stop)
  const level = new RequestLevel({ maxEntries: 10 })
  for (let i = 0; i < 1000; i++) {
    const cache = level.open()
    cache.set('me', 1)
    cache.get('me')
    cache.get('me')
    cache.get('missing')
    await cache.getOrLoad('loaded', () => 2)
    cache.get('past the bound')
    cache.release()
    cache.release()
  }
  t.ok(told.length > 80 && told.length < 120, `about 1 request in 10 drawn: ${told.length}`)
  t.same(told[0], [['me', 2], ['missing', 1], ['loaded', 1]], 'reads per key, a fill with none; keys past maxKeys not counted')
  t.ok(told.every((reads) => JSON.stringify(reads) === JSON.stringify(told[0])), 'each drawn request told once')
  t.same([...origins], [level], 'with the request level it came from')
  const before = told.length
  for (let i = 0; i < 1000; i++) {
    const cache = level.open()
    cache.get('me')
    // The client went away: the handler may read on, so the request is not told, even once its response goes out.
    cache.end()
    cache.get('me')
    cache.release()
  }
  t.equal(told.length, before, 'a request ended before its response is never told')
  stop()
  const runs = await counted(t, () => {
    const cache = level.open()
    cache.set('me', 1)
    cache.get('me')
    cache.release()
  })
  t.equal(runs, 0, 'request usage builds no operation context')
})

test('request usage: watches at different rates, added and stopped at any time, each draws at its own rate', async (t) => {
  const level = new RequestLevel({ maxEntries: 10 })
  const serve = (requests: number): void => {
    for (let i = 0; i < requests; i++) {
      const cache = level.open()
      cache.get('k')
      cache.release()
    }
  }
  serve(5000)
  let every = 0
  let some = 0
  let random = 0
  const stopEvery = subscribeRequestUsage(() => { every++ }, { sampleRate: 1, maxKeys: 1 })
  const stopSome = subscribeRequestUsage(() => { some++ }, { sampleRate: 0.01, maxKeys: 1, random: () => (random = (random + 0.37) % 1) })
  t.teardown(stopSome)
  serve(10_000)
  t.equal(every, 10_000, 'a watch at rate 1 is given every request, from the first after it started')
  t.ok(some > 70 && some < 130, `one at 1 in 100, beside it, about 100: ${some}`)
  stopEvery()
  serve(10_000)
  t.equal(every, 10_000, 'a stopped watch is given nothing more')
  t.ok(some > 150 && some < 250, `the other goes on at its rate: ${some}`)
  stopSome()
  const told = some
  serve(1000)
  t.equal(some, told, 'with no watch, no request is drawn')
})

test('request usage in runs: the requests drawn come that many in a row, at the same rate', async (t) => {
  const level = new RequestLevel({ maxEntries: 10 })
  let opened = 0
  const drawn: number[] = []
  let random = 0
  const stop = subscribeRequestUsage(() => { drawn.push(opened) }, { sampleRate: 0.01, maxKeys: 1, runLength: 4, random: () => (random = (random + 0.618034) % 1) })
  t.teardown(stop)
  for (; opened < 40_000; opened++) {
    const cache = level.open()
    cache.get('k')
    cache.release()
  }
  t.ok(Math.abs(drawn.length - 400) < 80, `1 in 100: ${drawn.length}`)
  const runs: number[] = []
  for (const [i, at] of drawn.entries()) {
    if (i > 0 && at === (drawn[i - 1] as number) + 1) runs.push((runs.pop() as number) + 1)
    else runs.push(1)
  }
  // The last run may have been cut by the loop's end.
  t.ok(runs.slice(0, -1).every((length) => length % 4 === 0), `runs of 4: ${[...new Set(runs.slice(0, -1))].join(', ')}`)
})

test('run: a method that throws before it returns its promise rejects, and the listeners are told of the error', async (t) => {
  const told: CacheOperationContext[] = []
  const op = new CacheOperation('app', 'getOrLoad', 'k', undefined, [(context) => { told.push(context) }])
  const target = { name: 'level' }
  let self: unknown
  const throwing = function (this: unknown, key: string): Promise<string> {
    self = this
    throw new Error(`no ${key}`)
  }
  const answer = op.run(target, throwing, 'k')
  t.ok(answer instanceof Promise, 'a promise, not a throw')
  await t.rejects(answer, { message: 'no k' })
  t.equal(self, target, 'called on the target')
  t.equal(told.length, 1)
  t.match(told[0]?.error, { message: 'no k' })

  const resolved = new CacheOperation('app', 'get', 'k', undefined, undefined)
  t.equal(await resolved.run(target, async (key: string) => `value of ${key}`, 'k'), 'value of k', 'what the method answers')
})
