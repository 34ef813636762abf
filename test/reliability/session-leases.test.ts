import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { test, type Test } from 'tap'
import { InvalidationBus } from '../../lib/bus.js'
import { SessionLevel, type SessionCache } from '../../lib/scopes/session.js'
import { RedisStore, type RedisClient } from '../../lib/stores/redis.js'
import { TieredStore } from '../../lib/tiers.js'
import { commandCalls, privateRedis, redisFor, uniquePrefix, type PrivateRedis } from '../helpers/redis.js'
import { until } from '../helpers/until.js'

// `coherence: 'strict'` on one Redis: each instance serves sessions from its memory tier under a lease, and a change
// returns once every instance holding a lease has dropped the old copy, or that instance's lease has ended. What
// breaks that promise is an instance that does not hear: stalled, cut off from its messages, or forgotten by Redis.

// The package's own lease: a shorter one lapses while a loaded test machine holds an event loop up, and the memory
// tier then rightly stops answering, which these tests would read as a failure.
const LEASE = 1000

interface Instance { level: SessionLevel, bus: InvalidationBus, tier: TieredStore }

/** An instance on `client`; once subscribed, it waits until its lease runs unless `leased` is false. */
async function instance (t: Test, client: Redis, prefix: string, { idle, lease = LEASE, leased = true }: { idle?: number, lease?: number, leased?: boolean } = {}): Promise<Instance> {
  const holder: { tier?: TieredStore } = {}
  const bus = new InvalidationBus({
    client: client as unknown as RedisClient,
    channel: prefix + 'bus',
    timeout: 1000,
    onMessage: (message) => { holder.tier?.invalidate(message) },
    lease: { registry: 'fmc-leases:' + prefix, ms: lease, ...(idle === undefined ? {} : { idle }) }
  })
  const tier = holder.tier = new TieredStore({ l2: new RedisStore({ client: client as unknown as RedisClient, prefix, timeout: 1000 }), max: 100, ttl: 60_000, bus })
  t.teardown(async () => { await tier.close() })
  await bus.subscribed
  if (leased) await until(() => bus.connected, 2000)
  return { level: new SessionLevel({ ttl: 60_000, maxEntriesPerSession: 10, store: tier }), bus, tier }
}

/** Two instances on the shared Redis under a prefix of the test's own; undefined when there is no Redis. */
async function twoInstances (t: Test): Promise<{ shared: Redis, prefix: string, a: Instance, b: Instance } | undefined> {
  const shared = await redisFor(t)
  if (shared === undefined) return undefined
  const prefix = uniquePrefix(t)
  return { shared, prefix, ...await twoInstancesOn(t, shared, prefix) }
}

async function twoInstancesOn (t: Test, shared: Redis, prefix: string): Promise<{ a: Instance, b: Instance }> {
  return { a: await instance(t, shared, prefix), b: await instance(t, shared, prefix) }
}

function open (level: SessionLevel, id?: string): SessionCache {
  return level.open(() => id === undefined ? undefined : { id })
}

async function client (t: Test, url: string): Promise<Redis> {
  const connection = new Redis(url, { maxRetriesPerRequest: 1 })
  connection.on('error', () => {})
  t.teardown(() => { connection.disconnect() })
  await new Promise((resolve) => connection.once('ready', resolve))
  return connection
}

/** A session logged in on `a` with a cart, read once on `b` (so that `b` holds it in memory); its id. */
async function loggedIn (a: Instance, b: Instance): Promise<string> {
  const session = open(a.level)
  await session.set('cart', ['book'])
  await session.regenerate({ user: 'alice' })
  const id = session.id as string
  const read = await open(b.level, id).get('cart')
  if (JSON.stringify(read) !== '["book"]') throw new Error('B does not see the login')
  return id
}

/** Resolves once `bus`'s lease is gone from the registry (ended, and dropped by another instance's renewal). */
async function leftRegistry (shared: Redis, prefix: string, bus: InvalidationBus, ms: number): Promise<void> {
  const started = performance.now()
  while (await shared.zscore('fmc-leases:' + prefix, bus.origin) !== null) {
    if (performance.now() - started > ms) throw new Error(`the lease of ${bus.origin} stays registered past ${ms} ms`)
    await sleep(10)
  }
}

/** How long B goes unused before it lets its lease go, in the tests of that. */
const IDLE = 1500

/**
 * A and B on a Redis of the test's own, B letting its lease go after `IDLE` ms unused: a session logged in on A and
 * read on B, then B left idle until its lease is gone from the registry. Undefined when there is no redis-server.
 */
async function idleB (t: Test): Promise<{ redis: PrivateRedis, shared: Redis, a: Instance, b: Instance, id: string } | undefined> {
  const redis = await privateRedis(t)
  if (redis === undefined) return undefined
  const shared = await client(t, redis.url)
  const a = await instance(t, shared, 'leases:')
  const b = await instance(t, shared, 'leases:', { idle: IDLE })
  const id = await loggedIn(a, b)
  await leftRegistry(shared, 'leases:', b.bus, IDLE + 3 * LEASE)
  return { redis, shared, a, b, id }
}

/** Logs `id` out on A: B must have applied it before the call returned, and serve the session no more. */
async function logoutHeard (t: Test, a: Instance, b: Instance, id: string): Promise<void> {
  const heard = b.bus.received
  await open(a.level, id).destroy()
  t.ok(b.bus.received > heard, 'B applied the logout before destroy() returned on A')
  t.equal(await open(b.level, id).get('cart'), undefined, 'and serves it no more')
}

/** Stops reading `instance`'s subscription (its messages, and the answers to its lease's PINGs, wait in the socket). */
function deafen (instance: Instance): { resume: () => void } {
  const stream = (instance.bus as unknown as { subscriber: { stream: { pause: () => void, resume: () => void } } }).subscriber.stream
  stream.pause()
  return { resume: () => { stream.resume() } }
}

test('alone, a session is read from memory and written in one step that publishes nothing', async (t) => {
  const redis = await privateRedis(t)
  if (redis === undefined) return
  const shared = await client(t, redis.url)
  const a = await instance(t, shared, 'leases:')
  const session = open(a.level)
  await session.set('cart', [])
  await session.regenerate({ user: 'alice' })
  const id = session.id as string
  // The first request reads the new session, and its user's index, from Redis.
  await open(a.level, id).get('cart')
  await shared.call('CONFIG', 'RESETSTAT')
  for (let i = 0; i < 10; i++) {
    const request = open(a.level, id)
    const cart = await request.get('cart') as string[]
    await request.set('cart', [...cart, `item ${i}`])
  }
  t.same(await open(a.level, id).get('cart'), Array.from({ length: 10 }, (_, i) => `item ${i}`), 'every write read back')
  const calls = await commandCalls(shared)
  t.equal(calls.publish, undefined, 'no other instance holds a lease: nothing is published')
  t.equal((calls.hgetall ?? 0) + (calls.hmget ?? 0), 0, 'no read asks Redis: the memory tier serves them under the lease')
  t.equal(a.bus.sent, 0)
})

test('a change on A returns once B, which holds the session in memory, has dropped it', async (t) => {
  const pair = await twoInstances(t)
  if (pair === undefined) return
  const { shared, prefix, a, b } = pair
  const id = await loggedIn(a, b)

  await shared.del(prefix + (await b.level.sessionsOf('alice'))[0]?.key)
  t.same(await open(b.level, id).get('cart'), ['book'], 'B serves the session from memory: its reads ask Redis nothing (deleted behind its back here)')

  const again = await loggedIn(a, b)
  await open(a.level, again).set('cart', ['book', 'pen'])
  t.same(await open(b.level, again).get('cart'), ['book', 'pen'], 'a write on A is read on B as soon as it returned')
  await logoutHeard(t, a, b, again)
})

test('B cut off from its messages: a change on A waits until B\'s lease has ended, after which B asks Redis', async (t) => {
  const pair = await twoInstances(t)
  if (pair === undefined) return
  const { shared, prefix, a, b } = pair
  const id = await loggedIn(a, b)
  const deaf = deafen(b)
  const heard = b.bus.received
  await open(a.level, id).destroy()
  t.equal(b.bus.received, heard, 'B has not heard of the logout')
  t.notOk(b.bus.connected, 'but its lease had ended when destroy() returned: its memory tier no longer answers')
  t.equal(await open(b.level, id).get('cart'), undefined, 'so the ended session is read from Redis: gone')
  await leftRegistry(shared, prefix, b.bus, 5 * LEASE)
  const sent = a.bus.sent
  const other = open(a.level)
  await other.set('cart', ['pen'])
  await other.set('cart', ['pen', 'ink'])
  t.equal(a.bus.sent, sent, 'B, deaf, left the registry when its lease ended: changes on A no longer wait for it')
  deaf.resume()
  await until(() => b.bus.connected, 2000)
  t.equal(await open(b.level, id).get('cart'), undefined, 'heard again, B holds a lease again and still serves none of it')
  t.ok(b.bus.received > heard, 'and has heard of it')
})

test('B\'s lease lost from Redis: its next renewal empties its memory tier, since changes made meanwhile were not published to it', async (t) => {
  const pair = await twoInstances(t)
  if (pair === undefined) return
  const { shared, prefix, a, b } = pair
  const id = await loggedIn(a, b)
  await shared.zrem('fmc-leases:' + prefix, b.bus.origin)
  await open(a.level, id).set('cart', ['book', 'pen'])
  t.ok(b.tier.size > 0, 'B holds the session in memory')
  await until(() => b.tier.size === 0, 2000)
  t.ok(await shared.zscore('fmc-leases:' + prefix, b.bus.origin) !== null, 'B registered again, and emptied its memory tier first')
  t.same(await open(b.level, id).get('cart'), ['book', 'pen'], 'once registered again, B reads the change')
})

test('Redis restarted empty: no instance serves a session from memory that Redis no longer holds', async (t) => {
  const redis = await privateRedis(t)
  if (redis === undefined) return
  const { a, b } = await twoInstancesOn(t, await client(t, redis.url), 'leases:')
  const id = await loggedIn(a, b)
  await redis.restart()
  await until(() => a.bus.connected && b.bus.connected, 5000)
  t.equal(await open(b.level, id).get('cart'), undefined, 'B: the session is gone with the data')
  t.equal(await open(a.level, id).get('cart'), undefined, 'A too')
})

test('Redis paused: the leases run out, reads stop being served from memory, and come back once it answers', async (t) => {
  const redis = await privateRedis(t)
  if (redis === undefined) return
  const { a, b } = await twoInstancesOn(t, await client(t, redis.url), 'leases:')
  const id = await loggedIn(a, b)
  redis.pause()
  await sleep(LEASE * 1.5)
  t.notOk(b.bus.connected, 'B\'s lease ended while Redis did not answer')
  redis.resume()
  await until(() => a.bus.connected && b.bus.connected, 5000)
  t.same(await open(b.level, id).get('cart'), ['book'], 'B serves the session again')
  await open(a.level, id).destroy()
  t.equal(await open(b.level, id).get('cart'), undefined, 'and a logout on A is final on B')
})

test('an instance that closes leaves the registry: the others stop waiting for it at once', async (t) => {
  const pair = await twoInstances(t)
  if (pair === undefined) return
  const { shared, prefix, a, b } = pair
  t.ok(await shared.zscore('fmc-leases:' + prefix, b.bus.origin) !== null, 'B holds a lease')
  await b.tier.close()
  t.equal(await shared.zscore('fmc-leases:' + prefix, b.bus.origin), null, 'and gives it back when it closes')
  const session = open(a.level)
  await session.set('cart', ['book'])
  const sent = a.bus.sent
  await session.set('cart', ['book', 'pen'])
  t.equal(a.bus.sent, sent, 'A, alone again, publishes nothing')
})

test('an instance whose memory tier goes unused lets its lease go, and takes it again with its next read', async (t) => {
  const pair = await idleB(t)
  if (pair === undefined) return
  const { shared, a, b, id } = pair
  const registered = async (): Promise<boolean> => await shared.zscore('fmc-leases:leases:', b.bus.origin) !== null
  t.notOk(b.bus.connected, 'B, which served nothing, let its lease go: it ended')
  await sleep(LEASE)
  t.notOk(await registered(), 'and B renews it no more')
  const sent = a.bus.sent
  await open(a.level, id).set('cart', ['book', 'pen'])
  t.equal(a.bus.sent, sent, 'a change on A publishes nothing and waits for nobody')
  t.ok(b.tier.size > 0, 'B still holds the old copy in memory')
  t.same(await open(b.level, id).get('cart'), ['book', 'pen'], 'B\'s next read is not served from it: the change')
  await until(() => b.bus.connected, 2000)
  t.ok(await registered(), 'that read took the lease again')
  await open(b.level, id).get('cart')
  await shared.call('CONFIG', 'RESETSTAT')
  t.same(await open(b.level, id).get('cart'), ['book', 'pen'])
  const calls = await commandCalls(shared)
  t.equal((calls.hgetall ?? 0) + (calls.hmget ?? 0), 0, 'B serves the session from memory again')
  await logoutHeard(t, a, b, id)
})

test('a registration that timed out and ran later, while Redis was paused, does not pass for a lease that never ended', async (t) => {
  const pair = await idleB(t)
  if (pair === undefined) return
  const { redis, a, b, id } = pair
  // B holds no lease: the logout on A is told to nobody, and B's copy in memory is out of date.
  await open(a.level, id).destroy()
  redis.pause()
  // B's next reads take the lease again; their registrations wait in the socket past their time budget, and run
  // once Redis answers: B is registered then, though it never heard of the logout.
  await open(b.level, id).get('cart').catch(() => {})
  await sleep(LEASE * 1.5)
  redis.resume()
  // Unused meanwhile, B may have let the lease go again: a use takes it.
  await until(() => b.bus.hears(), 5000)
  t.equal(await open(b.level, id).get('cart'), undefined, 'B, holding a lease again, does not serve the session A ended')
})

test('a renewal due is begun by the first use of the memory tier after it, not by a timer of its own', async (t) => {
  const shared = await redisFor(t)
  if (shared === undefined) return
  const prefix = uniquePrefix(t)
  // A lease of 20 s: due 5 s after the last renewal began; the timer renews an unused one at 10 s.
  const a = await instance(t, shared, prefix, { lease: 20_000 })
  const session = open(a.level)
  await session.set('cart', ['book'])
  const id = session.id as string
  const registered = async (): Promise<string | null> => await shared.zscore('fmc-leases:' + prefix, a.bus.origin)
  const first = await registered()
  t.not(first, null, 'registered')
  await sleep(5020)
  t.equal(await registered(), first, 'due, and unused: not renewed yet')
  t.same(await open(a.level, id).get('cart'), ['book'], 'a read served from memory')
  const read = performance.now()
  while (await registered() === first && performance.now() - read < 200) await sleep(5)
  t.not(await registered(), first, 'renewed the lease at once')
})

test('a user the ACL refuses PUBLISH holds no lease: sessions are read from Redis, and a logout on another instance is final at once', async (t) => {
  const redis = await privateRedis(t)
  if (redis === undefined) return
  const admin = await client(t, redis.url)
  await admin.call('ACL', 'SETUSER', 'limited', 'on', 'nopass', '~*', '&*', '+@all', '-publish')
  const limited = (): Redis => {
    const connection = new Redis(redis.url, { maxRetriesPerRequest: 1, username: 'limited', password: 'unused' })
    connection.on('error', () => {})
    t.teardown(() => { connection.disconnect() })
    return connection
  }
  const a = await instance(t, limited(), 'leases:', { leased: false })
  const b = await instance(t, limited(), 'leases:', { leased: false })
  const id = await loggedIn(a, b)
  // Renewals come and go meanwhile: none may leave a lease behind.
  await sleep(LEASE)
  t.notOk(b.bus.hears(), 'B holds no lease: its marker could not be published')
  t.equal(await admin.zcard('fmc-leases:leases:'), 0, 'and none is registered')
  t.same(await open(b.level, id).get('cart'), ['book'], 'B reads the session')
  t.equal(b.tier.size, 0, 'from Redis, keeping nothing in memory')
  await open(a.level, id).destroy()
  t.equal(await open(b.level, id).get('cart'), undefined, 'a logout on A returned, and is final on B')
})
