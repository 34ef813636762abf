import { setTimeout as sleep } from 'node:timers/promises'
import FakeTimers from '@sinonjs/fake-timers'
import { test } from 'tap'
import { sessionStoreKey } from '../../lib/keys.js'
import { SessionLevel, type SessionCache } from '../../lib/scopes/session.js'
import type { Store } from '../../lib/store.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import { GroupedStore, JsonStore, failing } from '../helpers/stores.js'

// The session level without Fastify: `open` is what the plugin calls once per request, with the id the cookie carried.

function levelOver (store: Store, ttl = 1000, maxEntriesPerSession = 100): SessionLevel {
  return new SessionLevel({ ttl, maxEntriesPerSession, store })
}

/** One request's session: `id` is what its cookie carried (valid signature assumed), undefined for no cookie. */
function request (level: SessionLevel, id?: string, reissue = false): SessionCache {
  return level.open(() => id === undefined ? undefined : { id, reissue })
}

async function created (level: SessionLevel, entries: Record<string, unknown>): Promise<string> {
  const session = request(level)
  for (const [key, value] of Object.entries(entries)) await session.set(key, value)
  return session.id as string
}

/** The three kinds of store a session can live in: native groups in memory, a hash-like store, whole values only. */
const STORES: Array<[string, () => Store]> = [
  ['memory', () => new MemoryStore({ max: 100, rolling: true })],
  ['grouped (JSON)', () => new GroupedStore()],
  ['whole values (JSON)', () => new JsonStore()]
]

for (const [kind, make] of STORES) {
  // Not over whole values: their emulated groups apply a change in several steps, which may interleave (see the
  // README's limits of Keyv and custom stores).
  if (kind !== 'whole values (JSON)') {
    test(`${kind}: calls of one request not awaited one by one take effect in the order they were made`, async (t) => {
      const level = levelOver(make())
      for (const readFirst of [false, true]) {
        const id = await created(level, { a: 1 })
        const session = request(level, id)
        if (readFirst) t.equal(await session.get('a'), 1)
        t.same(await Promise.all([session.delete('b'), session.set('b', 2), session.delete('a')]), [false, undefined, true])
        t.same([await request(level, id).get('a'), await request(level, id).get('b')], [undefined, 2])
        const next = request(level, id)
        if (readFirst) t.equal(await next.get('b'), 2)
        await Promise.all([next.clear(), next.set('c', 3), next.has('c')])
        t.same([await request(level, id).get('b'), await request(level, id).get('c')], [undefined, 3])
      }
    })

    test(`${kind}: writes made around a regenerate() not awaited go into the new session, in the order they were made`, async (t) => {
      const level = levelOver(make())
      for (const before of [undefined, await created(level, { k: 0 })]) {
        const session = request(level, before)
        await Promise.all([session.set('a', 1), session.regenerate(), session.set('b', 2)])
        const renewed = request(level, session.id)
        t.same([await renewed.get('k'), await renewed.get('a'), await renewed.get('b')], [before === undefined ? undefined : 0, 1, 2])
        if (before !== undefined) t.equal(await request(level, before).get('k'), undefined, 'the old id is worth nothing')
      }
    })
  }

  test(`${kind}: requests of one session each work on their own snapshot and write only what they change`, async (t) => {
    const level = levelOver(make())
    const id = await created(level, { a: 1 })
    const [left, right] = [request(level, id), request(level, id)]
    t.equal(await left.get('a'), 1)
    t.equal(await right.get('a'), 1)
    await Promise.all([left.set('b', 2), right.set('c', 3)])
    await left.set('a', 10)
    t.equal(await right.get('a'), 1, 'a request keeps the snapshot it read')
    const after = request(level, id)
    t.same([await after.get('a'), await after.get('b'), await after.get('c')], [10, 2, 3], 'no write overwrote another')
  })

  test(`${kind}: a read-only request that overlaps a write never reverts it`, async (t) => {
    const level = levelOver(make())
    const id = await created(level, { cart: ['apple'] })
    const reader = request(level, id)
    t.same(await reader.get('cart'), ['apple'], 'the GET reads the cart before the POST')
    await request(level, id).set('cart', ['apple', 'pear'])
    t.same(await reader.get('cart'), ['apple'], 'it still sees its snapshot')
    t.same(await request(level, id).get('cart'), ['apple', 'pear'], 'and the POST, acknowledged, stays')
  })

  test(`${kind}: a request in flight cannot undo a logout (destroy)`, async (t) => {
    const level = levelOver(make())
    const id = await created(level, { user: 'alice' })
    const slow = request(level, id)
    t.equal(await slow.get('user'), 'alice', 'a slow request read the session')
    await request(level, id).destroy()
    await slow.set('cart', ['x'])
    await slow.set('user', 'alice')
    const after = request(level, id)
    t.equal(await after.get('user'), undefined, 'the logged-out cookie stays logged out')
    t.equal(await after.get('cart'), undefined)
    t.equal(slow.cookie, undefined, 'the slow request issues no cookie for a session that ended')
  })

  test(`${kind}: regenerate ends the old id at once; a request still holding it writes nowhere`, async (t) => {
    const level = levelOver(make())
    const id = await created(level, { cart: ['apple'] })
    const slow = request(level, id)
    t.same(await slow.get('cart'), ['apple'])
    const login = request(level, id)
    await login.regenerate()
    const renewed = login.id as string
    t.not(renewed, id)
    t.equal(login.cookie, 'set')
    await slow.set('cart', ['injected'])
    t.same(await request(level, renewed).get('cart'), ['apple'], 'the new session has the data, not the late write')
    t.equal(await request(level, id).get('cart'), undefined, 'the old id is worth nothing')
    const fresh = request(level)
    await fresh.regenerate()
    t.ok(fresh.id, 'regenerate without a session creates an empty one')
    t.equal(fresh.cookie, 'set')
  })

  test(`${kind}: a logout in another tab is not undone by a login that read the session before`, async (t) => {
    const level = levelOver(make())
    const id = await created(level, { cart: ['apple'] })
    const login = request(level, id)
    t.same(await login.get('cart'), ['apple'])
    await request(level, id).destroy()
    await login.regenerate()
    t.equal(await request(level, login.id).get('cart'), undefined, 'the new session starts empty')
  })

  test(`${kind}: delete, clear, eviction of the oldest written, expiry of an entry`, async (t) => {
    const level = levelOver(make(), 1000, 3)
    const id = await created(level, { a: 1, b: 2, c: 3 })
    await sleep(2)
    await request(level, id).set('a', 'again')
    const session = request(level, id)
    await session.set('d', 4)
    t.equal(level.stats.evictions, 1)
    const after = request(level, id)
    t.same([await after.get('a'), await after.get('b'), await after.get('c'), await after.get('d')], ['again', undefined, 3, 4], 'b, written first, made room')
    t.equal(await after.delete('c'), true)
    t.equal(await after.delete('c'), false)
    t.equal(await request(level, id).has('c'), false)
    await after.set('temp', 't', { ttl: 20 })
    await sleep(30)
    t.equal(await request(level, id).get('temp'), undefined, 'an entry expires alone')
    const clearing = request(level, id)
    await clearing.clear()
    t.equal(await clearing.get('a'), undefined)
    const cleared = request(level, id)
    t.equal(await cleared.get('d'), undefined)
    await cleared.set('e', 5)
    t.equal(cleared.id, id, 'a session emptied by clear() keeps its id')
    t.equal(cleared.cookie, undefined)
  })

  test(`${kind}: app-given ids: concurrent first requests of one user join one session; destroy ends it for good`, async (t) => {
    const level = levelOver(make())
    const open = (): SessionCache => level.open(() => ({ id: 'alice' }), true)
    const requests = [open(), open(), open()]
    // Each looks the session up before any of them creates it.
    await Promise.all(requests.map(async (session) => await session.get('x')))
    for (const [i, session] of requests.entries()) await session.set(`item${i}`, i)
    const later = open()
    t.same([await later.get('item0'), await later.get('item1'), await later.get('item2')], [0, 1, 2], 'no first write overwrote another')
    t.equal(later.id, 'alice')
    t.equal(later.cookie, undefined, 'the app owns the id: no cookie')
    await t.rejects(later.regenerate(), { code: 'FST_MULTICACHE_UNSUPPORTED' })
    const slow = open()
    t.equal(await slow.get('item0'), 0)
    await open().destroy()
    await slow.set('item0', 'late')
    const next = open()
    t.equal(await next.get('item0'), undefined, 'the late write of a request from before the logout went nowhere')
    await next.set('fresh', 1)
    t.equal(await open().get('fresh'), 1, 'the same id starts a new session afterwards')
  })
}

test('the memory store: sessions are never shared objects, and keys hold only a hash of the id', async (t) => {
  const store = new MemoryStore({ max: 10, rolling: true })
  const level = levelOver(store)
  const id = await created(level, { a: 1 })
  t.equal(store.get(id), undefined, 'never under the id itself')
  const held = store.get(sessionStoreKey(id)) as { fence: string, fields: Record<string, unknown> }
  t.ok(held.fence.length >= 16, 'a fence')
  const view = request(level, id)
  await view.get('a')
  await request(level, id).set('a', 2)
  t.equal((store.get(sessionStoreKey(id)) as typeof held).fields['d:a'] !== held.fields['d:a'], true, 'a write replaced the group, it did not mutate the one read before')
  t.same(held.fields['d:a'], { value: 1, expires: 0, at: (held.fields['d:a'] as { at: number }).at })
})

test('a MemoryStore given by the app still rolls the inactivity expiry', async (t) => {
  const level = levelOver(new MemoryStore({ max: 10 }), 100)
  const id = await created(level, { a: 1 })
  for (let i = 0; i < 4; i++) {
    await sleep(50)
    t.equal(await request(level, id).get('a'), 1, `alive while used (${i})`)
  }
  await sleep(160)
  t.equal(await request(level, id).get('a'), undefined, 'gone after ttl without use')
})

test('whole values: one value per entry, a JSON round trip, odd keys as plain keys, reads write nothing', async (t) => {
  const store = new JsonStore()
  const level = levelOver(store, 100)
  const session = request(level)
  await session.set('__proto__', { polluted: true })
  await session.set('constructor', 'c')
  await session.set('when', new Date(0))
  const id = session.id as string
  const key = sessionStoreKey(id)
  t.ok(store.data.has(key), 'a head under the hash of the id')
  t.notOk([...store.data.keys()].some((k) => k.includes(id)), 'never under the id itself')
  t.equal([...store.data.keys()].filter((k) => k.endsWith(':d:constructor')).length, 1, 'each entry under a key of its own')

  const reader = request(level, id)
  t.same(await reader.get('__proto__'), { polluted: true })
  t.equal(await reader.get('constructor'), 'c')
  t.equal(await reader.get('when'), '1970-01-01T00:00:00.000Z', 'a Date comes back as its JSON string from a serializing store')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was touched')
  const writes = store.writes
  await request(level, id).get('constructor')
  t.equal(store.writes, writes, 'a read writes nothing back')
  await sleep(120)
  t.equal(await request(level, id).get('constructor'), undefined, 'entries expire ttl after their last write (write-extended)')
})

test('whole values: an entry missing from the index is still read by name', async (t) => {
  const store = new JsonStore()
  const level = levelOver(store)
  const id = await created(level, { a: 1 })
  // Two requests that each add a new name at once may leave one out of the index (no compare-and-set).
  const [left, right] = [request(level, id), request(level, id)]
  await Promise.all([left.get('x'), right.get('x')])
  await Promise.all([left.set('b', 2), right.set('c', 3)])
  const after = request(level, id)
  t.same([await after.get('a'), await after.get('b'), await after.get('c')], [1, 2, 3], 'no acknowledged write is lost')
})

test('anonymous and logged-in sessions are bounded apart', async (t) => {
  let evicted = 0
  const known = new MemoryStore({ max: 2, rolling: true, onEvict: () => { level.stats.evictions++ } })
  const anonymous = new MemoryStore({ max: 2, rolling: true, onEvict: () => { evicted++; level.stats.evictions++; level.stats.anonymousEvictions++ } })
  const level: SessionLevel = new SessionLevel({ ttl: 1000, maxEntriesPerSession: 10, store: known, anonymous })
  const alice = request(level)
  await alice.set('user', 'alice')
  await alice.regenerate()
  const aliceId = alice.id as string
  for (let i = 0; i < 10; i++) await created(level, { cart: [i] })
  t.equal(await request(level, aliceId).get('user'), 'alice', 'ten anonymous carts did not push the logged-in user out')
  t.equal(evicted, 8)
  t.same(level.stats.snapshot().evictionsByKind, { anonymous: 8, authenticated: 0 })
  t.equal(level.stats.snapshot().size, 3)
})

test('getSessionId without an id: reads find nothing, writes fail clearly, nothing is stored', async (t) => {
  const store = new MemoryStore({ max: 10, rolling: true })
  const level = levelOver(store)
  const user: { id?: string } = {}
  const session = level.open(() => user.id === undefined ? undefined : { id: user.id }, true)
  t.equal(await session.get('a'), undefined)
  await t.rejects(session.set('a', 1), { code: 'FST_MULTICACHE_NO_SESSION', message: /getSessionId gave no id/ })
  await t.rejects(session.delete('a'), { code: 'FST_MULTICACHE_NO_SESSION' })
  let loads = 0
  t.equal(await session.getOrLoad('p', () => ++loads), 1)
  t.equal(await session.getOrLoad('p', () => ++loads), 2, 'the loader answers, nothing is kept')
  t.equal(store.size, 0, 'nothing was stored')
  user.id = 'alice'
  await session.set('a', 1)
  t.equal(session.id, 'alice', 'asked again once the app knows the user (after authentication)')
  t.equal(await level.open(() => ({ id: 'alice' }), true).get('a'), 1)
})

test('a store that cannot be read: reads miss, loaders answer, writes fail, nothing is overwritten', async (t) => {
  const store = failing(new JsonStore())
  const level = levelOver(store)
  const id = await created(level, { a: 1 })
  store.down = true
  const during = request(level, id)
  t.equal(await during.get('a'), undefined)
  t.equal(await during.has('a'), false)
  let loads = 0
  t.equal(await during.getOrLoad('b', () => `loaded ${++loads}`), 'loaded 1')
  t.equal(await during.getOrLoad('b', () => `loaded ${++loads}`), 'loaded 2', 'nothing is stored while the store is away')
  await t.rejects(during.set('a', 2), /store down \(get\)/)
  await t.rejects(during.delete('a'), /store down/)
  await t.rejects(during.clear(), /store down/)
  await t.rejects(during.regenerate(), /store down/)
  await t.rejects(during.destroy(), /store down/)
  t.equal(during.cookie, undefined, 'no cookie change')
  t.equal(during.id, undefined, 'never a new id because the store was briefly away')
  const snapshot = level.stats.snapshot()
  t.equal(snapshot.storeErrors, 1, 'one failed read per request')
  t.equal(snapshot.loads, 2)
  store.down = false
  t.equal(await request(level, id).get('a'), 1, 'the session is intact once the store is back')
})

test('how the cookie must change, for each thing a request can do', async (t) => {
  const level = levelOver(new MemoryStore({ max: 100, rolling: true }))
  const reader = request(level)
  await reader.get('x')
  t.equal(reader.cookie, undefined, 'no cookie, a read: nothing')
  const writer = request(level)
  await writer.set('x', 1)
  t.equal(writer.cookie, 'set', 'the first write creates the session and sets the cookie')
  const id = writer.id as string

  const known = request(level, id)
  await known.set('y', 2)
  t.equal(known.cookie, undefined, 'a write to an existing session sends nothing')
  const older = request(level, id, true)
  await older.get('x')
  t.equal(older.cookie, 'set', 'a cookie signed with an older secret is issued again')
  const unknownOld = request(level, 'never-issued', true)
  await unknownOld.get('x')
  t.equal(unknownOld.cookie, undefined, 'but not for a session that does not exist')

  const unknown = request(level, 'never-issued')
  await unknown.set('z', 1)
  t.not(unknown.id, 'never-issued', 'an unknown id is never adopted')
  t.equal(unknown.cookie, 'set')

  const destroying = request(level, id)
  await destroying.destroy()
  t.equal(destroying.cookie, 'clear')
  await destroying.set('again', 1)
  t.equal(destroying.cookie, 'set', 'a write after destroy() starts a new session')
  t.not(destroying.id, id)
  const anonymous = request(level)
  await anonymous.destroy()
  t.equal(anonymous.cookie, undefined, 'nothing to clear without a cookie')
  t.equal(await request(level, id).get('x'), undefined, 'the destroyed session is gone')
})

test('getOrLoad: one load per session and key across requests, errors shared, bad ttl named', async (t) => {
  const level = levelOver(new MemoryStore({ max: 100, rolling: true }))
  const id = await created(level, { a: 1 })
  let calls = 0
  const failingLoad = async (): Promise<string> => { calls++; await sleep(10); throw new Error('db down') }
  const results = await Promise.allSettled([request(level, id), request(level, id), request(level, id)].map(async (s) => await s.getOrLoad('p', failingLoad)))
  t.same(results.map((r) => r.status === 'rejected' ? (r.reason as Error).message : 'ok'), ['db down', 'db down', 'db down'])
  t.equal(calls, 1, 'one loader call for three requests')
  t.equal(await request(level, id).has('p'), false, 'a failed load stores nothing')
  t.equal(level.stats.loadErrors, 1)
  const other = await created(level, { a: 2 })
  const loads = await Promise.all([request(level, id), request(level, other)].map(async (s) => await s.getOrLoad('p', async () => { const n = ++calls; await sleep(5); return n })))
  t.not(loads[0], loads[1], 'two sessions load their own')
  await t.rejects(request(level, id).getOrLoad('p', () => 1, { ttl: 'later' as '1m' }), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /sessionCache.getOrLoad: option "ttl"/ })
  await t.rejects(request(level, id).set('p', 1, { ttl: -1 }), { message: /sessionCache.set: option "ttl"/ })
})

test('a write the store refuses: the request keeps its view as it was, the fault is counted and logged once', async (t) => {
  const store = failing(new JsonStore())
  const warnings: Array<Record<string, unknown>> = []
  const level = new SessionLevel({ ttl: 1000, maxEntriesPerSession: 2, store, log: { warn: (details) => { warnings.push(details as Record<string, unknown>) } } })
  const id = await created(level, { a: 1, b: 2 })
  const during = request(level, id)
  t.equal(await during.get('a'), 1)
  t.equal(await during.get('b'), 2)
  store.down = true
  await t.rejects(during.set('a', 9), /store down/)
  await t.rejects(during.set('c', 3), /store down/, 'a write that would evict the oldest entry')
  t.equal(await during.get('a'), 1, 'the overwritten value is back')
  t.equal(await during.get('b'), 2, 'the evicted entry is back')
  t.equal(await during.get('c'), undefined, 'the refused value is not seen (its own read of the store fails too)')
  t.equal(level.stats.snapshot().evictions, 0, 'an eviction that did not happen is not counted')
  await t.rejects(request(level, id).set('a', 9), /store down \(get\)/)
  t.equal(level.stats.snapshot().storeErrors, 4, 'two refused writes and two failed reads')
  t.same(warnings.map((w) => w.operation), ['write'], 'logged once for the burst')
  store.down = false
  t.same([await request(level, id).get('a'), await request(level, id).get('c')], [1, undefined], 'the store kept the session as it was')
})

for (const [kind, make] of STORES) {
  test(`${kind}: a request keeps the value it read, whatever another request writes meanwhile`, async (t) => {
    const level = levelOver(make())
    const id = await created(level, { a: 1 })
    const reader = request(level, id)
    t.equal(await reader.get('a'), 1)
    await request(level, id).set('a', 2)
    t.equal(await reader.get('a'), 1, 'its snapshot')
    t.equal(await request(level, id).get('a'), 2, 'a later request reads the new value')
  })

  test(`${kind}: a full session drops the entry written longest ago, counting entries with a ttl`, async (t) => {
    const clock = FakeTimers.install({ toFake: ['Date'] })
    t.teardown(() => clock.uninstall())
    const level = levelOver(make(), 10_000_000, 2)
    const session = request(level)
    await session.set('a', 1)
    clock.tick(1)
    await session.set('b', 2, { ttl: 60_000 })
    clock.tick(1)
    await session.set('a', 3)
    clock.tick(1)
    await session.set('c', 4)
    const next = request(level, session.id)
    t.same([await next.get('a'), await next.get('b'), await next.get('c')], [3, undefined, 4], 'b was written before a\'s last write')
    t.equal(level.stats.snapshot().evictions, 1)
  })

  test(`${kind}: an expired entry makes room in a full session: no live entry goes for it`, async (t) => {
    const clock = FakeTimers.install({ toFake: ['Date'] })
    t.teardown(() => clock.uninstall())
    const level = levelOver(make(), 10_000_000, 2)
    const session = request(level)
    await session.set('b', 1)
    clock.tick(1)
    await session.set('a', 2, { ttl: 1000 })
    clock.tick(2000)
    await session.set('c', 3)
    const next = request(level, session.id)
    t.same([await next.get('b'), await next.get('c')], [1, 3], 'b stays: only one live entry was held')
    t.equal(level.stats.snapshot().evictions, 0)
  })
}

test('hits and misses are counted once each, by get and by getOrLoad', async (t) => {
  const level = levelOver(new MemoryStore({ max: 100, rolling: true }))
  const session = request(level, await created(level, { a: 1 }))
  await session.get('a')
  await session.get('none')
  t.match(level.stats.snapshot(), { hits: 1, misses: 1 })
  t.equal(await session.getOrLoad('a', () => 2), 1)
  t.equal(await session.getOrLoad('b', () => 2), 2)
  t.match(level.stats.snapshot(), { hits: 2, misses: 2, loads: 1 })
})

test('what needs a session does nothing without one; delete answers whether there was an entry', async (t) => {
  const level = levelOver(new MemoryStore({ max: 100, rolling: true }))
  const visitor = request(level)
  await visitor.clear()
  await visitor.dropPages()
  t.equal(await visitor.delete('a'), false)
  t.equal(visitor.id, undefined)
  t.equal(visitor.cookie, undefined, 'no session was created')
  const id = await created(level, { a: 1 })
  const session = request(level, id)
  t.equal(await session.delete('missing'), false)
  t.equal(await session.delete('a'), true)
  t.equal(await request(level, id).get('a'), undefined)
  const owned = level.open(() => ({ id: 'bob' }), true)
  await owned.set('x', 1)
  await owned.destroy()
  t.equal(owned.cookie, undefined, 'the app owns the id: no cookie to clear')
})

test('regenerate keeps the data and the user, in this request and the next', async (t) => {
  const level = levelOver(new MemoryStore({ max: 100, rolling: true }))
  const session = request(level)
  await session.set('cart', ['x'])
  await session.setUser('alice')
  const old = session.id as string
  await session.regenerate()
  t.not(session.id, old)
  t.same(await session.get('cart'), ['x'], 'this request still sees its data')
  t.equal(session.user, 'alice')
  const next = request(level, session.id)
  t.same(await next.get('cart'), ['x'])
  t.equal(next.user, 'alice', 'the user is carried over')
  t.ok((await level.sessionsOf('alice')).some((s) => s.key === sessionStoreKey(session.id as string)), 'the new session is linked')
})

test('a session past its absolute lifetime is ended in the store, for every later reader', async (t) => {
  const clock = FakeTimers.install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const level = new SessionLevel({ ttl: 10_000_000, maxEntriesPerSession: 10, store: new JsonStore(), absoluteTtl: 60_000 })
  const id = await created(level, { a: 1 })
  t.ok(await level.read(sessionStoreKey(id)))
  clock.tick(61_000)
  t.equal(await request(level, id).get('a'), undefined)
  t.equal(await level.read(sessionStoreKey(id)), undefined)
})
