import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { parseDuration } from '../../lib/durations.js'
import { describe, messageOf } from '../../lib/errors.js'
import { newSessionId, sessionStoreKey } from '../../lib/keys.js'
import { SingleFlight } from '../../lib/single-flight.js'
import { assertStore, isPromiseLike } from '../../lib/store.js'
import { MemoryStore } from '../../lib/stores/memory.js'

test('durations', async (t) => {
  t.equal(parseDuration('500ms'), 500)
  t.equal(parseDuration('30s'), 30_000)
  t.equal(parseDuration('30m'), 1_800_000)
  t.equal(parseDuration('12h'), 43_200_000)
  t.equal(parseDuration('7d'), 604_800_000)
  t.equal(parseDuration('1.5s'), 1500)
  t.equal(parseDuration(' 2 m '), 120_000)
  t.equal(parseDuration(250), 250)
  t.equal(parseDuration(0), 0)
  for (const bad of ['5 parsecs', '', 'm', '-1s', '1e3ms', -1, Number.NaN, Infinity, null, {}, '10']) t.equal(parseDuration(bad), undefined, String(bad))
})

test('describe renders any value for messages', async (t) => {
  t.equal(describe('x'), '"x"')
  t.equal(describe(() => 1), 'a function')
  t.equal(describe([1]), 'an array')
  t.equal(describe({}), 'an object')
  t.equal(describe(null), 'null')
  t.equal(describe(Symbol('s')), 'Symbol(s)')
})

test('session ids are 256 random bits and their store keys are one-way', async (t) => {
  const id = newSessionId()
  t.equal(Buffer.from(id, 'base64url').length, 32)
  t.not(newSessionId(), id)
  t.equal(sessionStoreKey(id), sessionStoreKey(id))
  t.not(sessionStoreKey(id), id)
  t.notOk(sessionStoreKey(id).includes(id))
})

test('single flight: one load per key, nothing kept once settled', async (t) => {
  const flights = new SingleFlight()
  let calls = 0
  const load = async (): Promise<number> => { calls++; await sleep(5); return calls }
  const [a, b] = await Promise.all([flights.loadOnce('k', load), flights.loadOnce('k', load)])
  t.equal(a, 1)
  t.equal(b, 1)
  t.equal(await flights.loadOnce('k', load), 2, 'a settled load is not joined')
  t.equal(await flights.loadOnce('sync', () => 'v'), 'v')
  await t.rejects(flights.loadOnce('e', () => { throw new Error('boom') }), /boom/)
  t.equal(await flights.loadOnce('e', () => 'fine'), 'fine', 'nor a failed one')
})

test('single flight: a fence detaches the running load and tells it, callers after it start anew', async (t) => {
  const flights = new SingleFlight()
  const seen: boolean[] = []
  let release: (value: string) => void = () => {}
  const old = flights.loadOnce('k', async (flight) => {
    const value = await new Promise<string>((resolve) => { release = resolve })
    seen.push(flight.fenced)
    return value
  })
  flights.fence('k')
  flights.fence('none')
  const fresh = flights.loadOnce('k', (flight) => { seen.push(flight.fenced); return 'new' })
  t.equal(await fresh, 'new', 'a caller after the fence does not join the old load')
  release('old')
  t.equal(await old, 'old', 'the old load still answers its own callers')
  t.same(seen, [false, true], 'and knows it was fenced')
  t.equal(await flights.loadOnce('k', () => 'again'), 'again', 'the old load settling did not drop the new one early')

  const holds: Array<() => void> = []
  const fenced: boolean[] = []
  const loads = ['a', 'b'].map(async (key) => await flights.loadOnce(key, async (flight) => {
    await new Promise<void>((resolve) => { holds.push(resolve) })
    fenced.push(flight.fenced)
  }))
  flights.fenceAll()
  for (const hold of holds) hold()
  await Promise.all(loads)
  t.same(fenced, [true, true], 'fenceAll fences every running load')
})

test('single flight: fenceTagged fences the running loads with one of the tags, whichever flight of the key runs now', async (t) => {
  const flights = new SingleFlight()
  const holds = new Map<string, () => void>()
  const fenced = new Map<string, boolean>()
  const start = (name: string, key: string, tags: string[]): Promise<void> => flights.loadOnce(key, async (flight) => {
    await new Promise<void>((resolve) => { holds.set(name, resolve) })
    fenced.set(name, flight.fenced)
  }, tags)
  const first = start('first', 'p', ['catalog'])
  flights.fence('p')
  const second = start('second', 'p', ['catalog'])
  const other = start('other', 'q', ['brand'])
  holds.get('first')?.()
  await first
  t.ok(flights.has('p'), 'the end of the fenced flight leaves the one after it in place')
  flights.fenceTagged(['catalog'])
  t.notOk(flights.has('p'))
  t.ok(flights.has('q'), 'a load without the tag runs on')
  holds.get('second')?.()
  holds.get('other')?.()
  await Promise.all([second, other])
  t.same(Object.fromEntries(fenced), { first: true, second: true, other: false })
})

test('memory store: bounded LRU, ttl, rolling, batch reads, eviction callback', async (t) => {
  let evicted = 0
  const store = new MemoryStore({ max: 2, ttl: 60, rolling: true, onEvict: () => { evicted++ } })
  store.set('a', 1)
  store.set('b', null)
  t.same([store.get('a'), store.get('b'), store.get('c')], [1, null, undefined])
  store.set('c', 3)
  t.equal(evicted, 1)
  t.equal(store.size, 2)
  await sleep(40)
  t.equal(store.get('c'), 3, 'a read restarts the ttl')
  await sleep(40)
  t.equal(store.get('c'), 3)
  t.equal(store.get('b'), undefined, 'expired')
  store.set('long', 1, 1000)
  store.delete('c')
  t.equal(store.get('c'), undefined)
  store.clear()
  t.equal(store.size, 0)
  t.equal(evicted, 1, 'deletes, clears and expiries are not evictions')
})

test('store checks', async (t) => {
  t.ok(isPromiseLike(Promise.resolve()))
  t.notOk(isPromiseLike({ then: 1 }))
  t.notOk(isPromiseLike(undefined))
  t.throws(() => assertStore('x', null), /missing: get, set, delete, clear/)
  t.throws(() => assertStore('x', 'redis'), /option "store"/)
})

test('messageOf: what was thrown as a message, never throwing itself', async (t) => {
  t.equal(messageOf(new Error('boom')), 'boom')
  t.equal(messageOf('HTTP 503'), 'HTTP 503')
  t.equal(messageOf(undefined), 'undefined')
  t.equal(messageOf(Object.create(null)), 'a thrown value that cannot be printed')
  t.equal(messageOf({ toString: () => { throw new Error('no') } }, 'unprintable'), 'unprintable')
  const error = new Error('hidden')
  Object.defineProperty(error, 'message', { get: () => { throw new Error('no') } })
  t.equal(messageOf(error), 'a thrown value that cannot be printed')
})
