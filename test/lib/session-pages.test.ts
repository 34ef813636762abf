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

/** The page of `key` a request without Vary headers finds: its only variant. */
async function pageOf (session: SessionCache, key: string): Promise<unknown> {
  return (await session.pagesOf(key)).find(([variant]) => variant === '')?.[1]
}

async function setPage (session: SessionCache, key: string, page: unknown, ttl: number): Promise<boolean> {
  return await session.setPage(key, '', page, ttl)
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
    await setPage(slow, 'GET /cart', { cart: ['book'] }, 60_000)
    t.equal(await pageOf(open(level, id), 'GET /cart'), undefined, 'the stale page is not served')
    const fresh = open(level, id)
    await setPage(fresh, 'GET /cart', { cart: ['book', 'pen'] }, 60_000)
    t.same(await pageOf(open(level, id), 'GET /cart'), { cart: ['book', 'pen'] }, 'a page made after the drop is')
  })

  test(`${kind} store: a page made before clear() and stored after it is never served`, async (t) => {
    const level = levelOver(storeOf())
    const owner = open(level)
    await owner.set('cart', ['book'])
    const id = owner.id as string
    const slow = open(level, id)
    t.same(await slow.get('cart'), ['book'], 'a GET of the cart page reads the session')
    await open(level, id).clear()
    await setPage(slow, 'GET /cart', { cart: ['book'] }, 60_000)
    t.equal(await pageOf(open(level, id), 'GET /cart'), undefined, 'the page of the cleared cart is not served')
  })

  test(`${kind} store: every variant counts against maxPagesPerSession`, async (t) => {
    const level = levelOver(storeOf(), 3, 2)
    const owner = open(level)
    await owner.set('a', 1)
    const id = owner.id as string
    // A client that varies its headers makes a new variant of one page per request.
    for (const variant of ['v1', 'v2', 'v3', 'v4', 'v5']) t.equal(await open(level, id).setPage('GET /p', variant, { variant }, 60_000), true)
    const later = open(level, id)
    t.same((await later.pagesOf('GET /p')).map(([variant]) => variant), ['v5', 'v4'], 'two variants, the newest')
    await later.setPage('GET /q', '', { page: 'q' }, 60_000)
    t.same((await open(level, id).pagesOf('GET /p')).map(([variant]) => variant), ['v5'], 'a page of another URL counts against the same bound')
    t.same(await open(level, id).get('a'), 1, 'entries are untouched')
  })

  test(`${kind} store: setPage drops the variants it is told to, and only of its own key`, async (t) => {
    const level = levelOver(storeOf(), 3, 10)
    const owner = open(level)
    await owner.set('a', 1)
    const id = owner.id as string
    await open(level, id).setPage('k', 'x', 'kx', 60_000)
    await open(level, id).setPage('k', 'y', 'ky', 60_000)
    await open(level, id).setPage('k\0x', '', 'other key', 60_000)
    await open(level, id).setPage('k', 'z', 'kz', 60_000, ['x', 'y'])
    t.same(await open(level, id).pagesOf('k'), [['z', 'kz']])
    t.same(await open(level, id).pagesOf('k\0x'), [['', 'other key']], 'a key that extends another is a page of its own')
  })

  test(`${kind} store: a page is never stored without a session, and never creates one`, async (t) => {
    const store = storeOf()
    const level = levelOver(store)
    const anonymous = open(level)
    t.equal(await setPage(anonymous, 'GET /p', { body: 'x' }, 1000), false)
    t.equal(await pageOf(anonymous, 'GET /p'), undefined)
    t.equal(anonymous.id, undefined)
    t.equal(anonymous.cookie, undefined, 'no cookie to issue')
    const unknown = open(level, 'never-issued')
    t.equal(await setPage(unknown, 'GET /p', { body: 'x' }, 1000), false, 'an unknown id is not a session either')
    t.equal(store.size ?? 0, 0)
  })

  test(`${kind} store: pages and entries have bounds of their own; neither pushes out the other`, async (t) => {
    const level = levelOver(storeOf())
    const first = open(level)
    for (const key of ['a', 'b', 'c']) await first.set(key, key)
    const id = first.id as string
    const session = open(level, id)
    for (const page of ['p1', 'p2', 'p3', 'p4']) t.equal(await setPage(session, page, { page }, 60_000), true)
    const later = open(level, id)
    t.same([await later.get('a'), await later.get('b'), await later.get('c')], ['a', 'b', 'c'], 'every entry is still there')
    t.same([await pageOf(later, 'p1'), await pageOf(later, 'p2')], [undefined, undefined], 'the oldest pages went')
    t.same([await pageOf(later, 'p3'), await pageOf(later, 'p4')], [{ page: 'p3' }, { page: 'p4' }])
    await later.set('d', 'd')
    const last = open(level, id)
    t.equal(await last.get('a'), undefined, 'a fourth entry pushes out the oldest entry')
    t.same(await pageOf(last, 'p3'), { page: 'p3' }, 'not a page')
    t.equal(await last.has('d'), true)
  })

  test(`${kind} store: regenerate() keeps the data and drops the pages; clear() and destroy() drop them too`, async (t) => {
    const level = levelOver(storeOf())
    const first = open(level)
    await first.set('cart', ['apple'])
    const id = first.id as string
    await setPage(open(level, id), 'GET /me', { user: 'alice' }, 60_000)
    const login = open(level, id)
    await login.regenerate()
    const regenerated = open(level, login.id)
    t.same(await regenerated.get('cart'), ['apple'])
    t.equal(await pageOf(regenerated, 'GET /me'), undefined, "the previous user's page is not in the new session")

    await setPage(regenerated, 'GET /me', { user: 'bob' }, 60_000)
    await open(level, login.id).dropPages()
    const dropped = open(level, login.id)
    t.equal(await pageOf(dropped, 'GET /me'), undefined, 'dropPages() drops the pages')
    t.same(await dropped.get('cart'), ['apple'], 'and keeps the data')
    await dropped.dropPages()

    await setPage(open(level, login.id), 'GET /me', { user: 'bob' }, 60_000)
    await open(level, login.id).clear()
    t.equal(await pageOf(open(level, login.id), 'GET /me'), undefined, 'clear() drops them')
    await setPage(open(level, login.id), 'GET /me', { user: 'bob' }, 60_000)
    await open(level, login.id).destroy()
    t.equal(await pageOf(open(level, login.id), 'GET /me'), undefined, 'destroy() drops them')
  })
}

test('a page expires after its ttl', async (t) => {
  const clock = FakeTimers.install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const level = levelOver(new MemoryStore({ max: 10 }))
  const first = open(level)
  await first.set('a', 1)
  await setPage(open(level, first.id), 'p', { page: 1 }, 1000)
  clock.tick(999)
  t.same(await pageOf(open(level, first.id), 'p'), { page: 1 })
  clock.tick(1)
  t.equal(await pageOf(open(level, first.id), 'p'), undefined)
})

test('no user key can name a page: entries and pages are kept under names of their own', async (t) => {
  const session = open(levelOver(new MemoryStore({ max: 10 })))
  await session.set('p:GET /p', 'an ordinary key')
  await session.set('GET /p', 'another')
  t.equal(await pageOf(session, 'GET /p'), undefined)
  await setPage(session, 'GET /p', 'page', 1000)
  t.equal(await session.get('GET /p'), 'another')
  t.equal(await pageOf(session, 'GET /p'), 'page')
})
