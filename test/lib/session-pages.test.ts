import FakeTimers from '@sinonjs/fake-timers'
import { test } from 'tap'
import { SessionLevel, type SessionCache } from '../../lib/scopes/session.js'
import type { Store } from '../../lib/store.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import { GroupedStore, JsonStore } from '../helpers/stores.js'

// The session level's page store for route caching, without Fastify: pages never create a session, have a bound of
// their own, and go with regenerate(), destroy() and clear().

const STORES: Array<[string, () => Store]> = [
  ['memory', () => new MemoryStore({ max: 100 })],
  ['serializing', () => new JsonStore()],
  ['grouped', () => new GroupedStore()]
]

function levelOver (store: Store, maxEntriesPerSession = 3, maxPagesPerSession = 2): SessionLevel {
  return new SessionLevel({ ttl: 60_000, maxEntriesPerSession, maxPagesPerSession, store })
}

function open (level: SessionLevel, id?: string): SessionCache {
  return level.open(() => id === undefined ? undefined : { id })
}

for (const [kind, storeOf] of STORES) {
  test(`${kind} store: a page made before dropPages() and stored after it is never served`, async (t) => {
    const level = levelOver(storeOf())
    const owner = open(level)
    await owner.set('cart', ['book'])
    const id = owner.id as string
    const slow = open(level, id)
    t.same(await slow.get('cart'), ['book'], 'a GET of the cart page reads the session')
    const adding = open(level, id)
    await adding.set('cart', ['book', 'pen'])
    await adding.dropPages()
    await slow.setPage('GET /cart', { cart: ['book'] }, 60_000)
    t.equal(await open(level, id).getPage('GET /cart'), undefined, 'the stale page is not served')
    const fresh = open(level, id)
    await fresh.setPage('GET /cart', { cart: ['book', 'pen'] }, 60_000)
    t.same(await open(level, id).getPage('GET /cart'), { cart: ['book', 'pen'] }, 'a page made after the drop is')
  })

  test(`${kind} store: a page is never stored without a session, and never creates one`, async (t) => {
    const store = storeOf()
    const level = levelOver(store)
    const anonymous = open(level)
    t.equal(await anonymous.setPage('GET /p', { body: 'x' }, 1000), false)
    t.equal(await anonymous.getPage('GET /p'), undefined)
    t.equal(anonymous.id, undefined)
    t.equal(anonymous.cookie, undefined, 'no cookie to issue')
    const unknown = open(level, 'never-issued')
    t.equal(await unknown.setPage('GET /p', { body: 'x' }, 1000), false, 'an unknown id is not a session either')
    t.equal(store.size ?? 0, 0)
  })

  test(`${kind} store: pages and entries have bounds of their own; neither pushes out the other`, async (t) => {
    const level = levelOver(storeOf())
    const first = open(level)
    for (const key of ['a', 'b', 'c']) await first.set(key, key)
    const id = first.id as string
    const session = open(level, id)
    for (const page of ['p1', 'p2', 'p3', 'p4']) t.equal(await session.setPage(page, { page }, 60_000), true)
    const later = open(level, id)
    t.same([await later.get('a'), await later.get('b'), await later.get('c')], ['a', 'b', 'c'], 'every entry is still there')
    t.same([await later.getPage('p1'), await later.getPage('p2')], [undefined, undefined], 'the oldest pages went')
    t.same([await later.getPage('p3'), await later.getPage('p4')], [{ page: 'p3' }, { page: 'p4' }])
    await later.set('d', 'd')
    const last = open(level, id)
    t.equal(await last.get('a'), undefined, 'a fourth entry pushes out the oldest entry')
    t.same(await last.getPage('p3'), { page: 'p3' }, 'not a page')
    t.equal(await last.has('d'), true)
  })

  test(`${kind} store: regenerate() keeps the data and drops the pages; clear() and destroy() drop them too`, async (t) => {
    const level = levelOver(storeOf())
    const first = open(level)
    await first.set('cart', ['apple'])
    const id = first.id as string
    await open(level, id).setPage('GET /me', { user: 'alice' }, 60_000)
    const login = open(level, id)
    await login.regenerate()
    const regenerated = open(level, login.id)
    t.same(await regenerated.get('cart'), ['apple'])
    t.equal(await regenerated.getPage('GET /me'), undefined, "the previous user's page is not in the new session")

    await regenerated.setPage('GET /me', { user: 'bob' }, 60_000)
    await open(level, login.id).dropPages()
    const dropped = open(level, login.id)
    t.equal(await dropped.getPage('GET /me'), undefined, 'dropPages() drops the pages')
    t.same(await dropped.get('cart'), ['apple'], 'and keeps the data')
    await dropped.dropPages()

    await open(level, login.id).setPage('GET /me', { user: 'bob' }, 60_000)
    await open(level, login.id).clear()
    t.equal(await open(level, login.id).getPage('GET /me'), undefined, 'clear() drops them')
    await open(level, login.id).setPage('GET /me', { user: 'bob' }, 60_000)
    await open(level, login.id).destroy()
    t.equal(await open(level, login.id).getPage('GET /me'), undefined, 'destroy() drops them')
  })
}

test('a page expires after its ttl', async (t) => {
  const clock = FakeTimers.install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const level = levelOver(new MemoryStore({ max: 10 }))
  const first = open(level)
  await first.set('a', 1)
  await open(level, first.id).setPage('p', { page: 1 }, 1000)
  clock.tick(999)
  t.same(await open(level, first.id).getPage('p'), { page: 1 })
  clock.tick(1)
  t.equal(await open(level, first.id).getPage('p'), undefined)
})

test('no user key can name a page: entries and pages are kept under names of their own', async (t) => {
  const session = open(levelOver(new MemoryStore({ max: 10 })))
  await session.set('p:GET /p', 'an ordinary key')
  await session.set('GET /p', 'another')
  t.equal(await session.getPage('GET /p'), undefined)
  await session.setPage('GET /p', 'page', 1000)
  t.equal(await session.get('GET /p'), 'another')
  t.equal(await session.getPage('GET /p'), 'page')
})
