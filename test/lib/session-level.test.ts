import { setTimeout as sleep } from 'node:timers/promises'
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

test('a serializing store: a JSON round trip, odd keys as plain keys, reads restart the expiry', async (t) => {
  const store = new JsonStore()
  const level = levelOver(store, 100)
  const session = request(level)
  await session.set('__proto__', { polluted: true })
  await session.set('constructor', 'c')
  await session.set('hasOwnProperty', 1)
  await session.set('when', new Date(0))
  await session.set('temp', 'short', { ttl: 30 })
  const id = session.id as string
  const held = JSON.parse(store.data.get(sessionStoreKey(id))?.json ?? '{}') as Record<string, unknown>
  t.same(Object.keys(held).sort(), ['__proto__', 'constructor', 'hasOwnProperty', 'temp', 'when'], 'stored as a plain object of entries')
  t.notOk(store.data.has(id), 'never under the id itself')

  const reader = request(level, id)
  t.same(await reader.get('__proto__'), { polluted: true })
  t.equal(await reader.get('constructor'), 'c')
  t.equal(await reader.get('hasOwnProperty'), 1)
  t.equal(await reader.get('when'), '1970-01-01T00:00:00.000Z', 'a Date comes back as its JSON string from a serializing store')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype was touched')
  await sleep(45)
  t.equal(await request(level, id).get('temp'), undefined, 'an entry expires alone')
  for (let i = 0; i < 3; i++) {
    await sleep(50)
    const writes = store.writes
    t.equal(await request(level, id).get('constructor'), 'c', `alive while read (${i})`)
    t.equal(store.writes, writes + 1, 'a read writes the session again, restarting its expiry')
  }
  await sleep(160)
  t.equal(await request(level, id).get('constructor'), undefined, 'expired after inactivity')
})

test('a grouped store: the session is written whole once, then only the fields a change touches', async (t) => {
  const store = new GroupedStore()
  const level = levelOver(store, 1000, 3)
  const first = request(level)
  await first.set('a', 1)
  const id = first.id as string
  const key = sessionStoreKey(id)
  t.same(store.calls.filter((c) => c.op !== 'read'), [{ op: 'write', key, fields: ['', 'a'] }], 'first write: the marker and the entry')

  // Two requests of one session write different keys at once: neither overwrites the other.
  store.calls.length = 0
  const [left, right] = [request(level, id), request(level, id)]
  await Promise.all([left.set('b', 2), right.set('c', 3)])
  t.same(store.calls.filter((c) => c.op === 'write').map((c) => c.fields), [['', 'b'], ['', 'c']])
  const all = request(level, id)
  t.same([await all.get('a'), await all.get('b'), await all.get('c')], [1, 2, 3])

  store.calls.length = 0
  const evicting = request(level, id)
  await evicting.set('d', 4)
  t.same(store.calls.filter((c) => c.op !== 'read'), [{ op: 'remove', key, fields: ['a'] }, { op: 'write', key, fields: ['', 'd'] }], 'the oldest entry made room')
  t.equal(level.stats.evictions, 1)

  store.calls.length = 0
  const deleting = request(level, id)
  t.equal(await deleting.delete('b'), true)
  t.equal(await deleting.delete('b'), false)
  t.same(store.calls.filter((c) => c.op !== 'read'), [{ op: 'remove', key, fields: ['b'] }, { op: 'write', key, fields: [''] }])

  await request(level, id).set('__proto__', 'p')
  t.equal(await request(level, id).get('__proto__'), 'p', '__proto__ is written as a field, not as a prototype')

  const clearing = request(level, id)
  await clearing.clear()
  const after = request(level, id)
  t.equal(await after.get('c'), undefined)
  t.equal(after.id, id, 'a session emptied by clear() keeps its id: its marker holds it')
  t.equal(level.stats.snapshot().size, 1)
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

test('regenerate on a serializing store moves the data and drops the old session', async (t) => {
  const store = new JsonStore()
  const level = levelOver(store)
  const id = await created(level, { cart: ['apple'] })
  const login = request(level, id)
  await login.regenerate()
  const renewed = login.id as string
  t.not(renewed, id)
  t.equal(login.cookie, 'set')
  t.same([...store.data.keys()], [sessionStoreKey(renewed)], 'only the new session is stored')
  t.same(await request(level, renewed).get('cart'), ['apple'])
  t.equal(await request(level, id).get('cart'), undefined)
  const fresh = request(level)
  await fresh.regenerate()
  t.ok(fresh.id, 'regenerate without a session creates an empty one')
  t.equal(fresh.cookie, 'set')
})

test('app-given ids: concurrent first requests of one user join one session', async (t) => {
  const level = levelOver(new MemoryStore({ max: 100, rolling: true }))
  const open = (): SessionCache => level.open(() => ({ id: 'alice' }), true)
  const requests = [open(), open(), open()]
  // Each looks the session up before any of them creates it.
  await Promise.all(requests.map(async (session) => await session.get('x')))
  await Promise.all(requests.map(async (session, i) => { await session.set(`item${i}`, i) }))
  const later = open()
  t.same([await later.get('item0'), await later.get('item1'), await later.get('item2')], [0, 1, 2], 'no first write overwrote another')
  t.equal(later.id, 'alice')
  t.equal(later.cookie, undefined, 'the app owns the id: no cookie')
  await t.rejects(later.regenerate(), { code: 'FST_MULTICACHE_UNSUPPORTED' })
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
  store.down = true
  await t.rejects(during.set('a', 9), /store down \(set\)/)
  await t.rejects(during.set('c', 3), /store down \(set\)/, 'a write that would evict the oldest entry')
  t.equal(await during.get('a'), 1, 'the overwritten value is back')
  t.equal(await during.get('b'), 2, 'the evicted entry is back')
  t.equal(await during.get('c'), undefined, 'the refused value is not seen')
  t.equal(level.stats.snapshot().evictions, 0, 'an eviction that did not happen is not counted')
  await t.rejects(request(level, id).set('a', 9), /store down \(get\)/)
  t.equal(level.stats.snapshot().storeErrors, 3, 'two refused writes and one failed read')
  t.same(warnings.map((w) => w.operation), ['write'], 'logged once for the burst')
  store.down = false
  t.same([await request(level, id).get('a'), await request(level, id).get('c')], [1, undefined], 'the store kept the session as it was')
})
