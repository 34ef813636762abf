import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import Keyv from 'keyv'
import { test, type Test } from 'tap'
import { sessionStoreKey } from '../../lib/keys.js'
import { SessionLevel, type SessionCache } from '../../lib/scopes/session.js'
import type { Store } from '../../lib/store.js'
import { KeyvStore } from '../../lib/stores/keyv.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import { RedisStore, type RedisClient } from '../../lib/stores/redis.js'
import { redisFor, uniquePrefix } from '../helpers/redis.js'

// OWASP ASVS 3.3: sessions end after an absolute lifetime, and all sessions of one user can be ended at once.

type Make = (t: Test) => Promise<Store | undefined>
const STORES: Array<[string, Make]> = [
  ['memory', async () => new MemoryStore({ max: 100, rolling: true })],
  ['redis', async (t) => {
    const client = await redisFor(t)
    return client === undefined ? undefined : new RedisStore({ client: client as unknown as RedisClient, prefix: uniquePrefix(t) })
  }],
  ['keyv', async () => new KeyvStore({ keyv: new Keyv() })]
]

function request (level: SessionLevel, id?: string): SessionCache {
  return level.open(() => id === undefined ? undefined : { id })
}

async function login (level: SessionLevel, user: string): Promise<string> {
  const session = request(level)
  await session.set('cart', [user])
  await session.regenerate({ user })
  return session.id as string
}

for (const [kind, make] of STORES) {
  test(`${kind}: destroyAllOf ends every session of a user, and only theirs`, async (t) => {
    const store = await make(t)
    if (store === undefined) return
    const level = new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store })
    const laptop = await login(level, 'alice')
    const phone = await login(level, 'alice')
    const bob = await login(level, 'bob')
    const tablet = request(level)
    await tablet.set('x', 1)
    await tablet.setUser('alice')
    t.equal(request(level, laptop).user, undefined, 'the user is known once the session is read')
    const reading = request(level, laptop)
    await reading.get('cart')
    t.equal(reading.user, 'alice')
    t.same((await reading.sessionsOf()).length, 3, 'three sessions of alice are listed')
    t.notOk((await reading.sessionsOf()).some((s) => [laptop, phone].includes(s.key)), 'listed by store key, never by id')

    const changing = request(level, phone)
    t.equal(await changing.destroyAllOf(undefined, { keepCurrent: true }), 2, 'a password change on the phone ends the two others')
    t.same(await request(level, laptop).get('cart'), undefined)
    t.equal(await request(level, tablet.id).get('x'), undefined)
    t.same(await request(level, phone).get('cart'), ['alice'], 'the phone stays')
    t.same(await request(level, bob).get('cart'), ['bob'], 'bob is untouched')
    t.equal((await level.sessionsOf('alice')).length, 1, 'the kept session is still listed')

    const everywhere = request(level, phone)
    t.equal(await everywhere.destroyAllOf('alice'), 1)
    t.equal(everywhere.cookie, 'clear', 'logging out everywhere clears this cookie too')
    t.same(await request(level, phone).get('cart'), undefined)
    t.same(await level.sessionsOf('alice'), [])
    t.equal(await level.destroyAllOf('nobody'), 0)
    await t.rejects(request(level).setUser(''), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /sessionCache.setUser: option "user" must be a non-empty string/ })
  })

  test(`${kind}: past maxSessionsPerUser a login ends the earliest session, and destroyAllOf ends every one`, async (t) => {
    // Room for every session: only the per-user bound may end one.
    const store = kind === 'memory' ? new MemoryStore({ max: 2000, rolling: true }) : await make(t)
    if (store === undefined) return
    // The default bound, but with Keyv, whose index is a whole value read and written at each login: it proves the
    // same at a tenth of the time.
    const max = kind === 'keyv' ? 100 : 1000
    const level = new SessionLevel({ ttl: 60_000, maxEntriesPerSession: 10, store, ...(kind === 'keyv' ? { maxSessionsPerUser: max } : {}) })
    const ids: string[] = []
    // 11 logins past the bound: someone who held the password for a while.
    for (let i = 0; i < max + 11; i++) ids.push(await login(level, 'alice'))
    const readable = async (): Promise<number> => (await Promise.all(ids.map(async (id) => await request(level, id).get('cart')))).filter((cart) => cart !== undefined).length
    t.equal(await readable(), max, 'a user keeps maxSessionsPerUser sessions')
    t.same(await request(level, ids[10]).get('cart'), undefined, 'the earliest went at the logins past the bound')
    t.same(await request(level, ids[11]).get('cart'), ['alice'])
    t.equal((await level.sessionsOf('alice')).length, max, 'every live session is listed')
    t.equal(await level.destroyAllOf('alice'), max)
    t.equal(await readable(), 0, 'log out everywhere leaves none')
  })

  test(`${kind}: the index lists only sessions that exist, and a logout or regenerate leaves it`, async (t) => {
    const store = await make(t)
    if (store === undefined) return
    const level = new SessionLevel({ ttl: 60_000, maxEntriesPerSession: 10, store })
    const laptop = await login(level, 'alice')
    const phone = await login(level, 'alice')
    await request(level, laptop).destroy()
    t.same((await level.sessionsOf('alice')).map((s) => s.key), [sessionStoreKey(phone)], 'the ended session left the index')
    const renewing = request(level, phone)
    await renewing.regenerate()
    t.same((await level.sessionsOf('alice')).map((s) => s.key), [sessionStoreKey(renewing.id as string)], 'the old id left it, the new one is in')
    t.equal(await level.destroyAllOf('alice'), 1, 'destroyAllOf counts the sessions it ended')
  })

  test(`${kind}: clear() keeps the session linked to its user`, async (t) => {
    const store = await make(t)
    if (store === undefined) return
    const level = new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store })
    const id = await login(level, 'alice')
    await request(level, id).clear()
    const cleared = request(level, id)
    t.equal(await cleared.get('cart'), undefined, 'the entries went')
    t.equal(cleared.user, 'alice', 'the link stays')
    await cleared.set('cart', ['again'])
    await cleared.regenerate()
    const renewed = cleared.id as string
    t.same((await level.sessionsOf('alice')).map((s) => s.key).includes(sessionStoreKey(renewed)), true, 'a later regenerate() is linked')
    t.equal(await level.destroyAllOf('alice'), 1, 'and destroyAllOf ends it')
    t.equal(await request(level, renewed).get('cart'), undefined)
  })

  test(`${kind}: absoluteTtl ends a session however active it is; regenerate starts a new lifetime`, async (t) => {
    const store = await make(t)
    if (store === undefined) return
    // Margins of hundreds of ms: a loaded machine (a parallel test run) stretches every sleep.
    const level = new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store, absoluteTtl: 600 })
    const id = await login(level, 'alice')
    for (let i = 0; i < 3; i++) {
      await sleep(30)
      t.same(await request(level, id).get('cart'), ['alice'], `alive while young (${i})`)
    }
    const renewing = request(level, id)
    await renewing.get('cart')
    await sleep(600)
    t.equal(await request(level, id).get('cart'), undefined, 'over after its absolute lifetime, although used all along')
    const late = request(level, id)
    await late.set('cart', ['x'])
    t.not(late.id, id, 'a write then starts a new session')
  })
  test(`${kind}: ending another user's sessions leaves the caller's own, and keepCurrent never links it to that user`, async (t) => {
    const store = await make(t)
    if (store === undefined) return
    const level = new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store })
    const admin = request(level, await login(level, 'admin'))
    const alice = await login(level, 'alice')
    t.equal(await admin.destroyAllOf('alice'), 1)
    t.same(await request(level, alice).get('cart'), undefined)
    t.equal(admin.cookie, undefined, 'the admin stays logged in')
    t.equal(admin.user, 'admin')
    t.same(await admin.get('cart'), ['admin'])
    await login(level, 'alice')
    t.equal(await admin.destroyAllOf('alice', { keepCurrent: true }), 1)
    t.same(await level.sessionsOf('alice'), [], 'the admin\'s session was not one of alice\'s: it is not linked to her')
    t.equal(await request(level).destroyAllOf('alice', { keepCurrent: true }), 0, 'keepCurrent without a session')
    t.equal(await request(level).destroyAllOf(), 0, 'no user: nothing to end')
    t.same(await request(level).sessionsOf(), [])
  })

  test(`${kind}: a user id that is some session's id never reaches that session`, async (t) => {
    const store = await make(t)
    if (store === undefined) return
    const level = new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store })
    const victim = await login(level, 'bob')
    const other = request(level)
    await other.set('x', 1)
    await other.setUser(victim)
    t.same((await level.sessionsOf(victim)).map((s) => s.key), [sessionStoreKey(other.id as string)])
    t.equal(await other.destroyAllOf(), 1)
    t.same(await request(level, victim).get('cart'), ['bob'], 'the session whose id is that user\'s name is untouched')
    t.same((await level.sessionsOf('bob')).map((s) => s.key), [sessionStoreKey(victim)])
  })
}

test('sessions are listed by store key with the time they were linked', async (t) => {
  const level = new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store: new MemoryStore({ max: 100, rolling: true }) })
  const before = Date.now()
  const session = request(level)
  await session.set('x', 1)
  await session.setUser('alice')
  const [listed] = await level.sessionsOf('alice')
  t.equal(listed?.key, sessionStoreKey(session.id as string))
  t.ok(typeof listed?.linkedAt === 'number' && listed.linkedAt >= before && listed.linkedAt <= Date.now())
  t.equal(request(level, session.id).user, undefined, 'known once read')
  const reading = request(level, session.id)
  await reading.get('x')
  t.equal(reading.user, 'alice', 'the link is in the session, for every later request')
})

test('user ids are checked by every method that takes one', async (t) => {
  const level = new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store: new MemoryStore({ max: 100, rolling: true }) })
  await t.rejects(request(level).regenerate({ user: '' }), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /sessionCache.regenerate: option "user"/ })
  await t.rejects(request(level).sessionsOf(''), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /sessionCache.sessionsOf: option "user"/ })
  await t.rejects(request(level).destroyAllOf(''), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /sessionCache.destroyAllOf: option "user"/ })
})

test('destroyAllOf ends a linked session that was never regenerated, in the anonymous store', async (t) => {
  const level = new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store: new MemoryStore({ max: 100, rolling: true }), anonymous: new MemoryStore({ max: 100, rolling: true }) })
  const visitor = request(level)
  await visitor.set('x', 1)
  await visitor.setUser('carol')
  t.equal(await request(level).destroyAllOf('carol'), 1)
  t.equal(await request(level, visitor.id).get('x'), undefined)
  t.ok('evictionsByKind' in level.stats.snapshot(), 'evictions are split by kind when anonymous sessions live apart')
  t.notOk('evictionsByKind' in new SessionLevel({ ttl: 1000, maxEntriesPerSession: 1, store: new MemoryStore({ max: 1 }) }).stats.snapshot())
})

test('destroyAllOf that fails once the index is taken links the sessions again: a retry ends them', async (t) => {
  const store = new MemoryStore({ max: 100, rolling: true })
  const level = new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store })
  const laptop = await login(level, 'dave')
  const phone = await login(level, 'dave')
  const deleteMany = store.deleteMany.bind(store)
  let failing = true
  store.deleteMany = (keys) => {
    if (!failing) return deleteMany(keys)
    failing = false
    throw new Error('the store timed out')
  }
  await t.rejects(request(level, phone).destroyAllOf(undefined, { keepCurrent: true }), /timed out/)
  t.equal((await level.sessionsOf('dave')).length, 2, 'both listed again, the kept one too')
  t.same(await request(level, laptop).get('cart'), ['dave'], 'nothing ended')
  t.equal(await request(level, phone).destroyAllOf(undefined, { keepCurrent: true }), 1, 'the retry ends the other one')
  t.equal(await request(level, laptop).get('cart'), undefined)
  t.same(await request(level, phone).get('cart'), ['dave'])
  t.equal((await level.sessionsOf('dave')).length, 1)
})

test('two instances sharing Redis: destroyAllOf on one ends the sessions the other created and holds in its tier', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const { TieredStore } = await import('../../lib/tiers.js')
  const { InvalidationBus } = await import('../../lib/bus.js')
  const levels = await Promise.all([0, 1].map(async () => {
    const holder: { tier?: InstanceType<typeof TieredStore> } = {}
    const bus = new InvalidationBus({ client: client as unknown as RedisClient, channel: prefix + 'bus', timeout: 100, onMessage: (message) => { holder.tier?.invalidate(message) } })
    const tier = holder.tier = new TieredStore({ l2: new RedisStore({ client: client as unknown as RedisClient, prefix }), max: 100, ttl: 10_000, bus })
    t.teardown(async () => { await tier.close() })
    await bus.subscribed
    return new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store: tier })
  }))
  const [a, b] = levels as [SessionLevel, SessionLevel]
  const id = await login(a, 'alice')
  t.same(await request(b, id).get('cart'), ['alice'], 'B reads the session (and keeps it in its memory tier)')
  t.equal(await b.destroyAllOf('alice'), 1)
  await sleep(50)
  t.equal(await request(a, id).get('cart'), undefined, 'A no longer serves it')
  t.equal(await request(b, id).get('cart'), undefined)
})

test("Redis: a user's index expires with the user's sessions, and the sessions' use keeps it alive", async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const level = new SessionLevel({ ttl: 1000, maxEntriesPerSession: 10, store: new RedisStore({ client: client as unknown as RedisClient, prefix }) })
  const index = prefix + 'user:' + createHash('sha256').update('alice').digest('base64url')
  const id = await login(level, 'alice')
  const left = async (): Promise<number> => await client.pttl(index)
  const first = await left()
  t.ok(first > 1000 && first <= 2000, `twice the inactivity ttl after the login, not for ever: ${first} ms`)
  // Used past the index's first lifetime: each read restarts the session, and (at most once per half ttl) its index.
  for (let i = 0; i < 5; i++) {
    await sleep(500)
    t.same(await request(level, id).get('cart'), ['alice'], `the session lives (${i})`)
  }
  t.ok(await left() > 0, 'the index outlives its first lifetime while the session is used')
  t.equal(await level.destroyAllOf('alice'), 1, 'and still lists it')

  const idle = await login(level, 'bob')
  await sleep(2100)
  t.equal(await request(level, idle).get('cart'), undefined, 'an idle session expires')
  t.equal(await client.exists(prefix + 'user:' + createHash('sha256').update('bob').digest('base64url')), 0, 'and its index with it')
})

test('logins at the same instant past maxSessionsPerUser: once they are done, the user has at most that many sessions', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  // Two instances over one Redis, 30 logins at once: on the first line of the bound, each login decides alone.
  const levels = [0, 1].map(() => new SessionLevel({ ttl: 60_000, maxEntriesPerSession: 10, store: new RedisStore({ client: client as unknown as RedisClient, prefix, timeout: 2000 }), maxSessionsPerUser: 3 }))
  const ids = await Promise.all(Array.from({ length: 30 }, async (_, i) => await login(levels[i % 2] as SessionLevel, 'alice')))
  const live = (await Promise.all(ids.map(async (id) => await request(levels[0] as SessionLevel, id).get('cart')))).filter((cart) => cart !== undefined)
  t.ok(live.length <= 3, `${live.length} sessions live of 30 logins`)
  t.equal((await (levels[0] as SessionLevel).sessionsOf('alice')).length, live.length, 'and the index lists exactly those')
})
