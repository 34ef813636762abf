import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { sessionCache } from '../../index.js'
import { InvalidationBus } from '../../lib/bus.js'
import { SessionLevel, type SessionCache } from '../../lib/scopes/session.js'
import type { Invalidation } from '../../lib/store.js'
import { RedisStore, type RedisClient } from '../../lib/stores/redis.js'
import { TieredStore } from '../../lib/tiers.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

// What an instance with a memory tier serves of a session another instance ended, while the bus message telling it
// has not arrived yet: the message is held here, so that the window a loaded machine opens by chance is open for sure.

function open (level: SessionLevel, id?: string): SessionCache {
  return level.open(() => id === undefined ? undefined : { id })
}

for (const coherence of ['strict', 'bus'] as const) {
  test(`coherence '${coherence}': a session ended on A, read on B before B hears of it`, async (t) => {
    const client = await redisFor(t) as unknown as RedisClient | undefined
    if (client === undefined) return
    const prefix = uniquePrefix(t)
    const held: Invalidation[] = []
    const instance = async (hear: (message: Invalidation, tier: TieredStore) => void): Promise<SessionLevel> => {
      const holder: { tier?: TieredStore } = {}
      const bus = coherence === 'strict'
        ? undefined
        : new InvalidationBus({ client, channel: prefix + 'bus', timeout: 1000, onMessage: (message) => { hear(message, holder.tier as TieredStore) } })
      const tier = holder.tier = new TieredStore({ l2: new RedisStore({ client, prefix, timeout: 1000 }), max: 100, ttl: 60_000, verify: coherence === 'strict', ...(bus === undefined ? {} : { bus }) })
      t.teardown(async () => { await tier.close() })
      await bus?.subscribed
      return new SessionLevel({ ttl: 60_000, maxEntriesPerSession: 10, store: tier })
    }
    const a = await instance((message, tier) => { tier.invalidate(message) })
    const b = await instance((message) => { held.push(message) })
    const session = open(a)
    await session.set('cart', ['book'])
    await session.regenerate({ user: 'alice' })
    const id = session.id as string
    t.same(await open(b, id).get('cart'), ['book'], 'B read the session, and keeps it in its memory tier')

    await open(a, id).destroy()
    const after = await open(b, id).get('cart')
    if (coherence === 'strict') {
      t.equal(after, undefined, 'B asks Redis for the version on every read: the ended session is gone at once')
      t.equal(held.length, 0, 'and needs no bus for it')
    } else {
      t.same(after, ['book'], 'B serves the ended session from memory until the message arrives: the window')
      t.ok(held.length > 0)
    }

    const renewing = await instanceRead(a, b)
    t.equal(renewing, coherence === 'strict' ? undefined : 'alice', 'the same for an id a regenerate() on A ended')
  })
}

/** A logs in, B reads the session, A regenerates it: what B reads under the old id. */
async function instanceRead (a: SessionLevel, b: SessionLevel): Promise<string | undefined> {
  const login = open(a)
  await login.set('x', 1)
  await login.regenerate({ user: 'alice' })
  const old = login.id as string
  const reading = open(b, old)
  await reading.get('x')
  await open(a, old).regenerate()
  const later = open(b, old)
  await later.get('x')
  return later.user
}

test("coherence 'bus' with a ttl shorter than the memory tier's: a session in use is never logged out", async (t) => {
  if (await redisFor(t) === undefined) return
  const app = fresh(t)
  await app.register(sessionCache, { secret, store: REDIS_URL, prefix: uniquePrefix(t), ttl: '1s', coherence: 'bus', l1: { ttl: '5s' } })
  app.post('/login', async (request) => { await request.sessionCache.set('user', 'ada'); return 'ok' })
  app.get('/me', async (request) => ({ user: await request.sessionCache.get('user') ?? null }))
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/login' })).headers) as string
  const seen: unknown[] = []
  // Read every 300 ms for 3 s: three times the inactivity ttl, each read within it.
  for (let i = 0; i < 10; i++) {
    await sleep(300)
    seen.push((await app.inject({ url: '/me', headers: { cookie } })).json().user)
  }
  t.same(seen, seen.map(() => 'ada'), 'every read finds the session: the tier reaches Redis, restarting its expiry, at least every half ttl')
})
