import { setTimeout as sleep } from 'node:timers/promises'
import { Redis, type RedisOptions } from 'ioredis'
import { test, type Test } from 'tap'
import { InvalidationBus, type Invalidation } from '../../lib/bus.js'
import { isPromiseLike, type Group, type GroupOperations, type Store } from '../../lib/store.js'
import { RedisStore, type RedisClient } from '../../lib/stores/redis.js'
import { TieredStore } from '../../lib/tiers.js'
import { REDIS_URL, privateRedis, redisFor, uniquePrefix } from '../helpers/redis.js'
import { until } from '../helpers/until.js'

// Two "instances" of an app: each a TieredStore with its own bus, over one Redis prefix and one channel.

/** Marks an answer that did not come from memory: `get` returned a promise (a read of L2). */
const MISS = Symbol('miss')

interface Instance {
  tier: TieredStore
  bus: InvalidationBus
  l2: RedisStore
  client: Redis
  /** Every message the bus handed to the tier. */
  heard: Invalidation[]
}

interface InstanceOptions {
  url?: string
  prefix: string
  /** L1 ttl in ms. */
  ttl?: number
  max?: number
  /** Wraps the L2 store, e.g. to hold reads open. */
  wrap?: (l2: RedisStore) => Store
  /** Extra ioredis options (a slower reconnect, to observe the disconnected window). */
  redis?: RedisOptions
  /** Keep fences in Redis (`RedisStore` option `fenced`). */
  fenced?: boolean
}

async function connected (t: Test, url: string, extra: RedisOptions = {}): Promise<Redis> {
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, ...extra })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve))
  return client
}

async function instance (t: Test, options: InstanceOptions): Promise<Instance> {
  const client = await connected(t, options.url ?? REDIS_URL, options.redis)
  const l2 = new RedisStore({ client: client as unknown as RedisClient, prefix: options.prefix, fenced: options.fenced })
  const heard: Invalidation[] = []
  const bus = new InvalidationBus({
    client: client as unknown as RedisClient,
    channel: options.prefix + 'bus',
    timeout: 100,
    onMessage: (message) => {
      heard.push(message)
      tier.invalidate(message) // messages arrive asynchronously, once the tier below exists
    }
  })
  const tier = new TieredStore({ l2: options.wrap?.(l2) ?? l2, max: options.max ?? 100, ttl: options.ttl ?? 10_000, bus })
  t.teardown(async () => { await tier.close() })
  await bus.subscribed
  // The subscription taking hold: what was published before it was never heard.
  t.same(heard, [{ clear: true }])
  heard.length = 0
  return { tier, bus, l2, client, heard }
}

/** What the tier answers from memory for `key`, or MISS when it went to L2 (that read is left to finish). */
function fromMemory (tier: TieredStore, key: string): unknown {
  const answer = tier.get(key)
  if (isPromiseLike(answer)) {
    (answer as Promise<unknown>).catch(() => {})
    return MISS
  }
  return answer
}

/** The fields of a group as a plain object, for comparing. */
function fieldsOf (group: Group | undefined): Record<string, unknown> | undefined {
  return group === undefined ? undefined : { ...group.fields }
}

/** Runs a write on one instance and waits until every other instance has heard its message. */
async function heardBy (others: Instance[], write: () => Promise<void>): Promise<void> {
  const before = others.map((other) => other.heard.length)
  await write()
  await until(() => others.every((other, i) => other.heard.length > (before[i] ?? 0)), 200)
}

/** Waits for a held read to reach its gate, failing instead of hanging when it never does. */
async function reaching (reached: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => { reject(new Error('the read never reached L2')) }, 1000) })
  try {
    await Promise.race([reached, late])
  } finally {
    clearTimeout(timer)
  }
}

/** An L2 wrapper whose reads can be held open after L2 answered, so that an invalidation arrives meanwhile. */
function holding (inner: RedisStore, timed: boolean): { wrap: (l2: RedisStore) => Store, hold: () => { reached: Promise<void>, release: () => void } } {
  let gate: { reached: () => void, opened: Promise<void> } | undefined
  const pass = async <T>(value: T): Promise<T> => {
    const held = gate
    if (held !== undefined) {
      gate = undefined
      held.reached()
      await held.opened
    }
    return value
  }
  const store: Store = {
    get: async (key) => await pass(await inner.get(key)),
    ...(timed ? { getTimed: async (key: string) => await pass(await inner.getTimed(key)) } : {}),
    set: async (key, value, ttl) => { await inner.set(key, value, ttl) },
    delete: async (key) => { await inner.delete(key) },
    clear: async () => { await inner.clear() },
    groups: {
      read: async (key, ttl) => await pass(await inner.groups.read(key, ttl)),
      create: async (key, group, ttl) => await inner.groups.create(key, group, ttl),
      update: async (key, fence, change, ttl) => await inner.groups.update(key, fence, change, ttl),
      end: async (key, fence) => await inner.groups.end(key, fence)
    }
  }
  return {
    wrap: () => store,
    hold: () => {
      let reached: () => void = () => {}
      let release: () => void = () => {}
      const arrived = new Promise<void>((resolve) => { reached = resolve })
      const opened = new Promise<void>((resolve) => { release = resolve })
      gate = { reached, opened }
      return { reached: arrived, release }
    }
  }
}

/** Two instances on one prefix, with their tiers' group operations. */
async function twoWithGroups (t: Test): Promise<{ prefix: string, a: Instance, b: Instance, ga: GroupOperations, gb: GroupOperations }> {
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  const ga = a.tier.groups
  const gb = b.tier.groups
  if (ga === undefined || gb === undefined) throw new Error('RedisStore has groups')
  return { prefix, a, b, ga, gb }
}

test('an L1 hit answers synchronously; a miss reads L2 and fills L1', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  t.equal(a.bus.connected, true)

  const value = { n: 1, list: [1, 2] }
  await heardBy([b], async () => { await a.tier.set('k', value) })
  const own = a.tier.get('k')
  t.notOk(isPromiseLike(own), 'after a set, the writer answers from memory')
  t.same(own, value)
  t.not(own, value, 'the writer holds what every other instance reads, not the caller\'s object')
  value.list.push(3)
  t.same(a.tier.get('k'), { n: 1, list: [1, 2] }, 'so a later mutation of it shows nowhere')

  const first = b.tier.get('k')
  t.ok(isPromiseLike(first), 'the other instance has never read it: L2')
  t.same(await first, { n: 1, list: [1, 2] }, 'the same contents on both instances')
  const second = b.tier.get('k')
  t.notOk(isPromiseLike(second), 'the first read filled L1')
  t.same(second, { n: 1, list: [1, 2] })
  t.equal(b.tier.size, 1)

  const missing = b.tier.get('missing')
  t.ok(isPromiseLike(missing))
  t.equal(await missing, undefined)
  t.ok(isPromiseLike(b.tier.get('missing')), 'absence is not kept in L1')
  t.equal(b.tier.size, 1)

  await heardBy([b], async () => { await a.tier.set('null', null) })
  t.equal(fromMemory(a.tier, 'null'), null, 'null is a value L1 serves (known absent)')
  t.equal(await b.tier.get('null'), null)
  t.equal(fromMemory(b.tier, 'null'), null)
})

test('L1 is bounded by max, the least recently used going first', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix, max: 2 })
  await a.tier.set('x', 1)
  await a.tier.set('y', 2)
  t.equal(fromMemory(a.tier, 'x'), 1, 'x is now the most recently used')
  await a.tier.set('z', 3)
  t.equal(a.tier.size, 2)
  t.equal(fromMemory(a.tier, 'y'), MISS, 'y was evicted')
  t.equal(fromMemory(a.tier, 'x'), 1)
  t.equal(await a.tier.get('y'), 2, 'still in L2')
})

test('set, delete, deleteMany and clear on one instance drop the entries from the other one\'s L1', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })

  // set: b then reads the new value
  await heardBy([b], async () => { await a.tier.set('k', 'v1') })
  t.equal(await b.tier.get('k'), 'v1')
  t.equal(fromMemory(b.tier, 'k'), 'v1')
  await a.tier.set('k', 'v2')
  await until(() => fromMemory(b.tier, 'k') !== 'v1', 100)
  t.equal(await b.tier.get('k'), 'v2', 'b reads the new value')
  t.equal(fromMemory(b.tier, 'k'), 'v2', 'and holds it in L1 again')

  // delete: timed from the moment a's delete resolved
  await a.tier.delete('k')
  const stale = await until(() => fromMemory(b.tier, 'k') !== 'v2', 500)
  t.ok(stale < 100, `b stopped serving the deleted value ${stale.toFixed(1)} ms after a's delete resolved`)
  t.equal(await b.tier.get('k'), undefined, 'b now reads a miss')
  t.equal(fromMemory(a.tier, 'k'), MISS, 'a dropped its own copy too')

  // deleteMany: only the named keys
  for (const key of ['m1', 'm2', 'm3']) {
    await heardBy([b], async () => { await a.tier.set(key, key) })
    t.equal(await b.tier.get(key), key)
  }
  t.equal(b.tier.size, 3)
  await a.tier.deleteMany(['m1', 'm2'])
  await until(() => b.tier.size === 1, 100)
  t.equal(fromMemory(b.tier, 'm3'), 'm3', 'a key not named stays in b\'s L1')
  t.equal(await b.tier.get('m1'), undefined)
  t.equal(await b.tier.get('m2'), undefined)
  t.equal(fromMemory(a.tier, 'm1'), MISS)
  t.equal(fromMemory(a.tier, 'm3'), 'm3')

  // clear: everything, in L1 and L2
  await heardBy([b], async () => { await a.tier.set('c', 1) })
  t.equal(await b.tier.get('c'), 1)
  await a.tier.clear()
  await until(() => b.tier.size === 0, 100)
  t.equal(a.tier.size, 0)
  t.equal(await b.tier.get('m3'), undefined)
  t.equal(await b.tier.get('c'), undefined)
  t.equal((await a.client.keys(prefix + '*')).length, 0, 'L2 was cleared')
  t.same(b.heard, [
    { keys: ['k'] }, { keys: ['k'] }, { keys: ['k'] },
    { keys: ['m1'] }, { keys: ['m2'] }, { keys: ['m3'] }, { keys: ['m1', 'm2'] },
    { keys: ['c'] }, { clear: true }
  ], 'b heard each of a\'s writes once, as published')
})

test('deleteAcknowledged resolves once every other instance has dropped the keys; a subscriber that never answers makes it reject', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  const c = await instance(t, { prefix })
  for (const key of ['x', 'y']) await heardBy([b, c], async () => { await a.tier.set(key, key) })
  t.same([await b.tier.get('x'), await c.tier.get('y')], ['x', 'y'])
  t.same([fromMemory(b.tier, 'x'), fromMemory(c.tier, 'y')], ['x', 'y'], 'b and c hold them in memory')
  await a.tier.deleteAcknowledged?.(['x', 'y'], 1000)
  t.same(['x', 'y'].flatMap((key) => [fromMemory(b.tier, key), fromMemory(c.tier, key)]), [MISS, MISS, MISS, MISS], 'once it resolved, b and c no longer held them')
  t.equal(await a.client.exists(prefix + 'x', prefix + 'y'), 0, 'nor Redis')
  t.same(b.heard.at(-1), { keys: ['x', 'y'] }, 'heard as one message')

  // Anything subscribed to the channel is counted by PUBLISH: a client that is not a bus never answers.
  const foreign = await connected(t, REDIS_URL)
  await foreign.subscribe(prefix + 'bus')
  await heardBy([b], async () => { await a.tier.set('z', 'z') })
  t.equal(await b.tier.get('z'), 'z')
  await t.rejects(a.tier.deleteAcknowledged?.(['z'], 50) as Promise<void>, { code: 'FST_MULTICACHE_UNCONFIRMED', message: /^invalidation: 1 of the 4 subscribers of the bus did not confirm within 50 ms/ })
  t.equal(fromMemory(b.tier, 'z'), MISS, 'the instances dropped it all the same')
  t.equal(await a.client.exists(prefix + 'z'), 0, 'and it is gone from Redis')

  const alone = new TieredStore({ l2: a.l2, max: 10, ttl: 1000 })
  t.equal(alone.deleteAcknowledged, undefined, 'without a bus a tier cannot tell, and does not offer it')
})

test('a bus ignores its own messages: the writer keeps what it just set', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  await heardBy([b], async () => { await a.tier.set('k', 'v1') })
  t.equal(await b.tier.get('k'), 'v1')
  await heardBy([b], async () => { await a.tier.set('k', 'v2') })
  await sleep(20) // a's own subscriber was sent the same message
  t.equal(a.heard.length, 0, 'a was never handed its own message')
  t.equal(fromMemory(a.tier, 'k'), 'v2', 'a still answers from memory')
  await a.tier.deleteMany(['other'])
  await a.tier.clear()
  await until(() => b.heard.length === 4, 200)
  await sleep(20)
  t.equal(a.heard.length, 0)
})

test('a value read from L2 before an invalidation is not put in L1 after it (getTimed)', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  let wrapper: ReturnType<typeof holding> | undefined
  const c = await instance(t, { prefix, wrap: (l2) => (wrapper = holding(l2, true)).wrap(l2) })
  const held = wrapper as ReturnType<typeof holding>

  await heardBy([c], async () => { await a.tier.set('k', 'v1') })
  // Control: a held read with no invalidation meanwhile does fill L1.
  let gate = held.hold()
  let pending = c.tier.get('k')
  await reaching(gate.reached)
  gate.release()
  t.equal(await pending, 'v1')
  t.equal(fromMemory(c.tier, 'k'), 'v1', 'control: without an invalidation the read fills L1')
  await c.tier.delete('k')
  await heardBy([c], async () => { await a.tier.set('k', 'v1') })

  gate = held.hold()
  pending = c.tier.get('k')
  t.ok(isPromiseLike(pending))
  await reaching(gate.reached) // L2 answered v1, the read is held open
  await heardBy([c], async () => { await a.tier.set('k', 'v2') })
  gate.release()
  t.equal(await pending, 'v1', 'the held read answers what L2 had when it ran')
  const next = c.tier.get('k')
  t.ok(isPromiseLike(next), 'but it did not fill L1: the next read goes to L2')
  t.equal(await next, 'v2')
  t.equal(fromMemory(c.tier, 'k'), 'v2')
})

test('the epoch guard also covers an L2 without getTimed, and group reads', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  let wrapper: ReturnType<typeof holding> | undefined
  const c = await instance(t, { prefix, wrap: (l2) => (wrapper = holding(l2, false)).wrap(l2) })
  const held = wrapper as ReturnType<typeof holding>

  await heardBy([c], async () => { await a.tier.set('k', 'v1') })
  let gate = held.hold()
  const pending = c.tier.get('k')
  await reaching(gate.reached)
  await heardBy([c], async () => { await a.tier.set('k', 'v2') })
  gate.release()
  t.equal(await pending, 'v1')
  t.ok(isPromiseLike(c.tier.get('k')), 'L1 was not filled (plain get)')
  t.equal(await c.tier.get('k'), 'v2')
  t.equal(fromMemory(c.tier, 'k'), 'v2', 'a plain get fills L1 when nothing intervened (no expiry known: L1 ttl)')

  const groups = a.tier.groups
  const cGroups = c.tier.groups
  if (groups === undefined || cGroups === undefined) throw new Error('RedisStore has groups')
  await heardBy([c], async () => { await groups.create('s', { fence: 'f', fields: { a: 1 } }, 10_000) })
  gate = held.hold()
  const reading = cGroups.read('s', 10_000)
  await reaching(gate.reached)
  await heardBy([c], async () => { await groups.update('s', 'f', { set: { a: 2 } }, 10_000) })
  gate.release()
  t.same(fieldsOf(await reading), { a: 1 })
  const ttlBefore = await a.client.pttl(prefix + 's')
  t.same(fieldsOf(await cGroups.read('s', 60_000)), { a: 2 }, 'the group was not put in L1: L2 read')
  t.ok(await a.client.pttl(prefix + 's') > ttlBefore, 'that read reached Redis (it restarted the expiry)')
})

test('the guard is per key: what a change of another key meets in flight is still kept, what a change of its own key meets is not', async (t) => {
  if (await redisFor(t) === undefined) return
  const { a, b, ga, gb } = await twoWithGroups(t)
  await heardBy([b], async () => {
    await ga.create('s1', { fence: 'f', fields: { n: 1 } }, 10_000)
    await ga.create('s2', { fence: 'f', fields: { n: 1 } }, 10_000)
  })
  const inMemory = (key: string): boolean => !isPromiseLike(ga.read(key, 10_000))
  t.same(fieldsOf(await ga.read('s1', 10_000)), { n: 1 })
  t.same(fieldsOf(await ga.read('s2', 10_000)), { n: 1 })

  // Two sessions written at once: each change moves the other's key only.
  const [one, two] = await Promise.all([ga.update('s1', 'f', { set: { n: 2 } }, 10_000), ga.update('s2', 'f', { set: { n: 2 } }, 10_000)])
  t.equal(typeof one, 'object')
  t.equal(typeof two, 'object')
  t.ok(inMemory('s1') && inMemory('s2'), 'both kept what Redis vouched for')
  t.same(fieldsOf(await ga.read('s2', 10_000)), { n: 2 })

  // A message about the very group while its change is in flight: the answer may be older than what it told of.
  const racing = ga.update('s1', 'f', { set: { n: 3 } }, 10_000)
  a.tier.invalidate({ keys: ['s1'] })
  t.equal(typeof await racing, 'object')
  t.notOk(inMemory('s1'), 'not kept: the next read goes to Redis')
  t.same(fieldsOf(await ga.read('s1', 10_000)), { n: 3 })
  t.ok(inMemory('s1'))

  // A message about another key, or a tag, meanwhile: kept.
  const beside = ga.update('s1', 'f', { set: { n: 4 } }, 10_000)
  a.tier.invalidate({ keys: ['s2'] })
  a.tier.invalidate({ tags: { t: 1 }, epoch: 'e' })
  await beside
  t.ok(inMemory('s1'), 'kept')
  t.same(fieldsOf(await ga.read('s1', 10_000)), { n: 4 })

  // Everything cleared meanwhile (a subscription lost and found again): not kept.
  const cleared = ga.update('s1', 'f', { set: { n: 5 } }, 10_000)
  a.tier.invalidate({ clear: true })
  await cleared
  t.notOk(inMemory('s1'))

  // Reads too: a group read from Redis while another key changes goes into memory. Once b has heard every message of
  // a's (one per change): one arriving during the read would rightly keep it out.
  await until(() => b.heard.length >= a.bus.sent, 1000)
  t.equal(b.tier.size, 0, 'b holds nothing')
  const reading = gb.read('s1', 10_000)
  b.tier.invalidate({ keys: ['s2'] })
  t.same(fieldsOf(await reading), { n: 5 })
  t.ok(!isPromiseLike(gb.read('s1', 10_000)), 'kept')
})

test('an L1 entry never outlives what it has left in L2', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix, ttl: 10_000 })
  const b = await instance(t, { prefix, ttl: 10_000 })
  await a.tier.set('short', 'v', 200)
  await a.tier.set('long', 'w')
  t.equal(fromMemory(a.tier, 'short'), 'v')
  await sleep(100)
  t.equal(await b.tier.get('short'), 'v', 'b reads it with about 100 ms left in L2')
  t.equal(await b.tier.get('long'), 'w')
  t.equal(fromMemory(b.tier, 'short'), 'v', 'and holds it in L1')
  await sleep(130)
  t.equal(fromMemory(a.tier, 'short'), MISS, 'the writer\'s copy expired with the set ttl')
  t.equal(fromMemory(b.tier, 'short'), MISS, 'the reader\'s copy expired with what L2 had left, not after its own 10 s')
  t.equal(await a.tier.get('short'), undefined)
  t.equal(await b.tier.get('short'), undefined)
  t.equal(fromMemory(b.tier, 'long'), 'w', 'no expiry in L2 (PTTL -1): L1 keeps its own ttl')
})

test('L1 lives at most its own ttl', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix, ttl: 60 })
  await a.tier.set('k', 'v', 10_000)
  t.equal(fromMemory(a.tier, 'k'), 'v')
  await sleep(90)
  const read = a.tier.get('k')
  t.ok(isPromiseLike(read), 'after the L1 ttl, L2 again')
  t.equal(await read, 'v')
})

test('while the bus is not subscribed L1 is bypassed and was emptied; after it resubscribes it is used again', async (t) => {
  if (await redisFor(t) === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  const prefix = 'p:'
  // A slower reconnect than ioredis' 50 ms, so that the disconnected window can be observed.
  const redis: RedisOptions = { retryStrategy: () => 200 }
  const a = await instance(t, { url: server.url, prefix, redis })
  const b = await instance(t, { url: server.url, prefix, redis })
  const admin = await connected(t, server.url)

  await heardBy([b], async () => { await a.tier.set('k', 'v1') })
  t.equal(await b.tier.get('k'), 'v1')
  t.equal(fromMemory(b.tier, 'k'), 'v1')

  const killed = await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  t.equal(killed, 2, 'both subscribers were disconnected')
  await until(() => !b.bus.connected, 100)
  t.equal(b.tier.size, 0, 'losing the subscription emptied L1')
  t.same(b.heard.at(-1), { clear: true })
  const read = b.tier.get('k')
  t.ok(isPromiseLike(read), 'not subscribed: L2')
  t.equal(await read, 'v1')
  t.ok(isPromiseLike(b.tier.get('k')), 'and that read did not fill L1')
  await b.tier.set('own', 1)
  t.ok(isPromiseLike(b.tier.get('own')), 'nor does a set')
  t.equal(b.tier.size, 0)
  t.equal(b.bus.connected, false, 'still within the disconnected window')

  const back = await until(() => a.bus.connected && b.bus.connected, 1000)
  t.ok(back > 0, `resubscribed after ${back.toFixed(0)} ms`)
  t.equal(await b.tier.get('k'), 'v1')
  t.equal(fromMemory(b.tier, 'k'), 'v1', 'subscribed again: L1 is used')
  await a.tier.set('k', 'v2')
  await until(() => fromMemory(b.tier, 'k') !== 'v1', 100)
  t.equal(await b.tier.get('k'), 'v2', 'invalidations are heard again')
})

test('a stalled Redis: L1 hits still answer, misses fail within the budget', async (t) => {
  if (await redisFor(t) === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  const a = await instance(t, { url: server.url, prefix: 'p:' })
  await a.tier.set('k', 'v')
  server.pause()
  t.teardown(() => { server.resume() })
  t.equal(fromMemory(a.tier, 'k'), 'v', 'the subscriber does not notice a stalled server: L1 answers')
  await t.rejects(Promise.resolve(a.tier.get('other')), { code: 'FST_MULTICACHE_STORE' })
  await t.rejects(a.tier.set('k', 'w'), { code: 'FST_MULTICACHE_STORE' })
  server.resume()
  await until(() => a.client.status === 'ready' && a.bus.connected, 1000)
  t.equal(await a.l2.get('other'), undefined, 'answers again')
})

test('groups: L1 copies filled by reads, updated by own writes, invalidated elsewhere, never mutated', async (t) => {
  if (await redisFor(t) === undefined) return
  const { prefix, a, b, ga, gb } = await twoWithGroups(t)
  const pttl = async (): Promise<number> => await a.client.pttl(prefix + 's')

  t.equal(await ga.read('s', 10_000), undefined)
  t.equal(a.tier.size, 0, 'a missing group is not held')
  await heardBy([b], async () => { t.equal(await ga.create('s', { fence: 'f', fields: { a: 1 } }, 10_000), true) })
  t.equal(a.tier.size, 0, 'a change does not create an L1 copy')

  const first = await ga.read('s', 20_000)
  t.same(fieldsOf(first), { a: 1 })
  t.ok(await pttl() > 15_000, 'the first read reached Redis (restarted the expiry)')
  const again = await ga.read('s', 60_000)
  t.equal(again, first, 'the second read is the L1 copy')
  t.ok(await pttl() <= 20_000, 'and did not reach Redis (the expiry was not restarted)')

  t.same(fieldsOf(await gb.read('s', 20_000)), { a: 1 })
  t.equal(b.tier.size, 1)

  const updated = await ga.update('s', 'f', { set: { b: 2 } }, 30_000)
  t.same(typeof updated === 'object' ? { ...updated.fields } : updated, { a: 1, b: 2 }, 'a change made on the L1 copy answers the group as it left it')
  t.ok(await pttl() > 25_000, 'changes restart the expiry')
  t.equal(a.tier.size, 1, 'and L1 keeps that, since Redis vouched that nothing else changed it meanwhile')
  t.same(fieldsOf(await ga.read('s', 30_000)), { a: 1, b: 2 })
  t.same(fieldsOf(first), { a: 1 }, 'the object returned earlier was not mutated')
  await until(() => b.tier.size === 0, 100)
  t.same(fieldsOf(await gb.read('s', 20_000)), { a: 1, b: 2 }, 'b was invalidated and reads the new fields')

  t.equal(await gb.update('s', 'other', { set: { c: 3 } }, 30_000), false, 'a change under another fence is refused')
  t.ok(await gb.update('s', 'f', { remove: ['a'], set: { c: 3 } }, 30_000))
  await until(() => a.tier.size === 0, 100)
  t.same(fieldsOf(await ga.read('s', 30_000)), { b: 2, c: 3 }, 'and the other way round')

  t.same(fieldsOf(await gb.end('s', 'f')), { b: 2, c: 3 }, 'end answers what the group held')
  await until(() => a.tier.size === 0, 100)
  t.equal(await ga.read('s', 1000), undefined, 'end drops the group everywhere')
  t.equal(await ga.update('s', 'f', { set: { d: 4 } }, 30_000), false, 'a late change cannot bring it back')
  t.equal(await a.client.exists(prefix + 's'), 0)
})

test('a group change and its bus message are one command to Redis; a change the fence refused tells nobody', async (t) => {
  if (await redisFor(t) === undefined) return
  const { prefix, a, b, ga, gb } = await twoWithGroups(t)
  await heardBy([b], async () => { await ga.create('s', { fence: 'f', fields: { a: 1 } }, 10_000) })
  t.same(fieldsOf(await gb.read('s', 10_000)), { a: 1 })
  t.equal(b.tier.size, 1, 'b holds a copy')

  const monitor = await (await connected(t, REDIS_URL)).monitor()
  t.teardown(() => { monitor.disconnect() })
  const seen: Array<{ command: string, source: string, args: string[] }> = []
  monitor.on('monitor', (_time: string, args: string[], source: string) => {
    if (args.some((arg) => String(arg).startsWith(prefix))) seen.push({ command: String(args[0]).toUpperCase(), source, args })
  })
  const sent = a.bus.sent
  await heardBy([b], async () => { t.ok(await ga.update('s', 'f', { set: { b: 2 } }, 10_000)) })
  t.equal(b.tier.size, 0, "the message dropped b's copy")
  t.same(fieldsOf(await gb.read('s', 10_000)), { a: 1, b: 2 })
  t.equal(a.bus.sent, sent + 1, 'the message counts as sent')
  await until(() => seen.some(({ command }) => command === 'PUBLISH'), 500)
  const published = seen.filter(({ command }) => command === 'PUBLISH')
  t.equal(published.length, 1, 'one message')
  t.equal(published[0]?.source, 'lua', 'published by the script that made the change')
  t.equal(published[0]?.args[1], prefix + 'bus')
  t.same(JSON.parse(String(published[0]?.args[2])), { origin: a.bus.origin, keys: ['s'] })
  const upToIt = seen.slice(0, seen.indexOf(published[0] as typeof seen[number]))
  const commands = upToIt.filter(({ source }) => source !== 'lua').map(({ command }) => command)
  t.equal(commands.length, 1, "a's change and its message: one command")
  t.match(commands[0], /^EVAL(SHA)?$/, 'a script, by its text or its SHA-1')

  seen.length = 0
  const heard = b.heard.length
  t.equal(await ga.update('s', 'other', { set: { c: 3 } }, 10_000), false, 'a change under another fence is refused')
  await sleep(50)
  t.equal(b.heard.length, heard, 'and tells nobody')
  t.equal(a.bus.sent, sent + 1)
  t.notOk(seen.some(({ command }) => command === 'PUBLISH'))
})

test('a store that may not publish on the bus channel (an ACL without it): the change stands, and the message that failed is reported', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const admin = await connected(t, REDIS_URL)
  const user = `fmc-test-no-channels-${process.pid}`
  await admin.call('ACL', 'SETUSER', user, 'reset', 'on', '>secret', '~*', '+@all', 'resetchannels')
  t.teardown(async () => { await admin.call('ACL', 'DELUSER', user) })
  const url = new URL(REDIS_URL)
  url.username = user
  url.password = 'secret'
  const client = await connected(t, url.toString())
  await t.rejects(client.publish(prefix + 'bus', 'x'), /NOPERM/, 'this user may not publish on the channel')
  const faults: string[] = []
  const bus = new InvalidationBus({ client: client as unknown as RedisClient, channel: prefix + 'bus', timeout: 100, onMessage: () => {} })
  const tier = new TieredStore({ l2: new RedisStore({ client: client as unknown as RedisClient, prefix }), max: 100, ttl: 10_000, bus, onFault: (operation) => { faults.push(operation) } })
  t.teardown(async () => { await tier.close() })
  const groups = tier.groups
  if (groups === undefined) throw new Error('RedisStore has groups')
  t.equal(await groups.create('s', { fence: 'f', fields: { a: 1 } }, 10_000), true)
  faults.length = 0

  t.ok(await groups.update('s', 'f', { set: { b: 2 } }, 10_000), 'the change is made, not failed half way')
  const stored = await new RedisStore({ client: admin as unknown as RedisClient, prefix }).groups.read('s', 0)
  t.same(fieldsOf(stored), { a: 1, b: 2 }, 'and whole')
  t.same(faults, ['publish'], 'its message, tried again on its own, failed and was reported')
  t.equal(bus.sent, 0)
})

test('a change that failed is still told of: a command that timed out may land after all', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  // Each change lands in Redis, then its caller is told it failed, as a command answered after its timeout is.
  const late = (l2: RedisStore): Store => ({
    get: async (key) => await l2.get(key),
    set: async (key, value, ttl) => { await l2.set(key, value, ttl); throw new Error('timed out') },
    delete: async (key) => { await l2.delete(key); throw new Error('timed out') },
    clear: async () => { await l2.clear() },
    groups: {
      read: async (key, ttl, known) => await l2.groups.read(key, ttl, known),
      create: async (key, group, ttl) => await l2.groups.create(key, group, ttl),
      update: async (key, fence, change, ttl) => await l2.groups.update(key, fence, change, ttl),
      end: async (key, fence) => { await l2.groups.end(key, fence); throw new Error('timed out') }
    }
  })
  const a = await instance(t, { prefix, wrap: late })
  const b = await instance(t, { prefix })
  const ga = a.tier.groups
  const gb = b.tier.groups
  if (ga === undefined || gb === undefined) throw new Error('RedisStore has groups')

  await b.tier.set('k', 'v1')
  t.equal(await b.tier.get('k'), 'v1')
  await heardBy([b], async () => { await t.rejects(a.tier.set('k', 'v2'), /timed out/) })
  t.equal(fromMemory(b.tier, 'k'), MISS, "b's copy was dropped")
  t.equal(await b.tier.get('k'), 'v2')
  await heardBy([b], async () => { await t.rejects(a.tier.delete('k'), /timed out/) })
  t.equal(await b.tier.get('k'), undefined)

  await heardBy([b], async () => { await ga.create('s', { fence: 'f', fields: { a: 1 } }, 10_000) })
  t.same(fieldsOf(await gb.read('s', 10_000)), { a: 1 })
  t.equal(b.tier.size, 1, 'b holds the session')
  await heardBy([b], async () => { await t.rejects(Promise.resolve(ga.end('s', 'f')), /timed out/) })
  t.equal(b.tier.size, 0, 'a logout whose answer came late still reached b')
  t.equal(await gb.read('s', 10_000), undefined)
})

test('without a bus the tier works alone and staleness is bounded by its ttl', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const l2 = new RedisStore({ client: client as unknown as RedisClient, prefix })
  const a = new TieredStore({ l2, max: 10, ttl: 80 })
  const b = new TieredStore({ l2, max: 10, ttl: 80 })
  await a.set('k', 'v1')
  t.equal(fromMemory(a, 'k'), 'v1', 'usable without a bus')
  t.equal(await b.get('k'), 'v1')
  t.equal(fromMemory(b, 'k'), 'v1')
  await a.set('k', 'v2')
  t.equal(fromMemory(b, 'k'), 'v1', 'nobody tells b: it serves its copy')
  await sleep(110)
  t.equal(await b.get('k'), 'v2', 'until its L1 ttl ran out')
  await a.deleteMany(['k'])
  t.equal(fromMemory(a, 'k'), MISS)
  await a.clear()
  t.equal(a.size, 0)
  await a.close()
  t.equal(await b.groups?.read('none', 1000), undefined)
})

test('L2 failures reach the caller and leave L1 as it was', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  const groups = a.tier.groups
  if (groups === undefined) throw new Error('RedisStore has groups')
  await a.tier.set('plain', 'v')
  a.tier.invalidate({ keys: ['plain'] }) // out of L1, so that the group read reaches Redis
  await t.rejects(Promise.resolve(groups.read('plain', 1000)), { code: 'FST_MULTICACHE_STORE', message: /groups.read failed: WRONGTYPE/ }, 'a command error inside the transaction')
  await t.rejects(Promise.resolve(groups.update('plain', 'f', { set: { a: 1 } }, 1000)), { code: 'FST_MULTICACHE_STORE', message: /groups.update failed: .*WRONGTYPE/ })
  t.equal(await a.tier.get('plain'), 'v', 'the plain value is untouched')
  t.equal(fromMemory(a.tier, 'plain'), 'v')
  await t.rejects(a.tier.set('bad', () => 1), { code: 'FST_MULTICACHE_SERIALIZE' })
  t.equal(fromMemory(a.tier, 'bad'), MISS, 'a refused value is in neither tier')
  t.equal(await a.tier.get('bad'), undefined)
  await a.tier.deleteMany([])
  t.equal(fromMemory(a.tier, 'plain'), 'v', 'deleting no keys changes nothing')
})

test('an L2 without groups gives a tier without groups', async (t) => {
  const map = new Map<string, unknown>()
  const l2: Store = {
    get: (key) => map.get(key),
    set: (key, value) => { map.set(key, value) },
    delete: (key) => { map.delete(key) },
    clear: () => { map.clear() }
  }
  const tier = new TieredStore({ l2, max: 10, ttl: 1000 })
  t.equal(tier.groups, undefined)
  t.equal(tier.fences, undefined, 'nor fences')
  map.set('k', 'v')
  const read = tier.get('k')
  t.ok(isPromiseLike(read), 'an L1 miss is a promise even over a synchronous L2')
  t.equal(await read, 'v')
  t.equal(tier.get('k'), 'v')
  await tier.deleteMany(['k'])
  t.equal(map.has('k'), false, 'deleteMany falls back to delete')
})

// Races of an instance with itself, and expiry: what the TieredStore documents holds even here.

test('an own delete racing an own read must not leave the deleted value in L1', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  await heardBy([b], async () => { await a.tier.set('k', 'old') })
  const pending = b.tier.get('k') // an L1 miss: b reads L2
  await b.tier.delete('k') // b's own delete while that read is in flight
  t.equal(await pending, 'old', 'the read was answered before the delete ran')
  t.equal(await a.l2.get('k'), undefined, 'L2 no longer has it')
  t.equal(fromMemory(b.tier, 'k'), MISS, 'b must not serve the value it deleted')
})

test('a group write must not give the L1 copy longer than the group has in L2', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix, ttl: 10_000 })
  const ga = a.tier.groups
  if (ga === undefined) throw new Error('RedisStore has groups')
  await ga.create('s', { fence: 'f', fields: { a: 1 } }, 150)
  t.same(fieldsOf(await ga.read('s', 150)), { a: 1 }, 'held in L1 for min(150, 10 000) ms')
  await sleep(200)
  t.equal(await a.client.exists(prefix + 's'), 0, 'the group expired in Redis')
  t.equal(await ga.read('s', 150), undefined, 'so L1 must not serve it')
})

test('fences: setIf writes only under the current fence, keeps the value in L1 and tells the other instances', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix, fenced: true })
  const b = await instance(t, { prefix, fenced: true })
  const fences = a.tier.fences
  if (fences === undefined) throw new Error('a fenced RedisStore has fences')
  await heardBy([b], async () => { await a.tier.set('k', 'old') })
  t.equal(await b.tier.get('k'), 'old')
  t.equal(fromMemory(b.tier, 'k'), 'old', 'b holds it in L1')
  const before = await fences.read('k')
  await fences.bump('k')
  t.equal(await fences.setIf('k', 'stale', 1000, before), false, 'a load that started before the bump writes nothing')
  t.equal(await a.l2.get('k'), 'old')
  const current = await fences.read('k')
  await heardBy([b], async () => { t.equal(await fences.setIf('k', 'new', 1000, current), true) })
  t.equal(await a.l2.get('k'), 'new')
  t.equal(fromMemory(a.tier, 'k'), 'new', 'the writer serves it from memory')
  t.equal(fromMemory(b.tier, 'k'), MISS, 'the other instance dropped its copy')
  t.equal(await b.tier.get('k'), 'new')
})

test('a value L2 refuses leaves L1 too; announcements go only to a bus, and a failed one fails nothing', async (t) => {
  const map = new Map<string, unknown>()
  let refuse = false
  const l2: Store = {
    get: (key) => map.get(key),
    set: (key, value) => {
      if (refuse) throw new Error('refused')
      map.set(key, value)
    },
    delete: (key) => { map.delete(key) },
    clear: () => { map.clear() }
  }
  const faults: string[] = []
  const alone = new TieredStore({ l2, max: 10, ttl: 1000, onFault: (operation) => { faults.push(operation) } })
  await alone.set('k', 'v')
  t.equal(alone.get('k'), 'v')
  refuse = true
  await t.rejects(alone.set('k', 'w'), /refused/)
  t.equal(await alone.get('k'), 'v', 'what L2 still holds')
  await alone.delete('k')
  t.same(faults, [], 'without a bus there is nothing to announce, and nothing fails')

  refuse = false
  const deaf = { connected: true, hears: () => true, publish: async () => { throw new Error('bus down') }, close: async () => {} } as unknown as InvalidationBus
  const unheard = new TieredStore({ l2, max: 10, ttl: 1000, bus: deaf })
  await unheard.set('k', 'x')
  t.equal(unheard.get('k'), 'x', 'the change stands, with no onFault to tell')
})

test('getMany: what L1 holds at once, the rest in one read of L2, kept in L1 for no longer than it has left there', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  const b = await instance(t, { prefix })
  await heardBy([b], async () => { await a.tier.setMany([{ key: 'k1', value: { n: 1 }, ttl: 0 }, { key: 'short', value: 'v', ttl: 200 }]) })
  t.same(b.heard, [{ keys: ['k1', 'short'] }], 'one message for the batch')
  const own = a.tier.getMany(['k1', 'short'])
  t.notOk(isPromiseLike(own), 'the writer holds both: at once')
  t.same(own, [{ n: 1 }, 'v'])

  await sleep(100)
  const read = b.tier.getMany(['k1', 'missing', 'short'])
  t.ok(isPromiseLike(read), 'b holds none: L2')
  t.same(await read, [{ n: 1 }, undefined, 'v'])
  const again = b.tier.getMany(['short', 'k1'])
  t.notOk(isPromiseLike(again), 'the read filled L1, absence left out')
  t.same(again, ['v', { n: 1 }])
  t.ok(isPromiseLike(b.tier.getMany(['k1', 'missing'])), 'one key L1 lacks sends the batch to L2')
  await sleep(130)
  t.equal(fromMemory(b.tier, 'short'), MISS, 'its copy expired with what L2 had left (about 100 ms), not after the L1 ttl')
  t.same(fromMemory(b.tier, 'k1'), { n: 1 }, 'no expiry in L2: the L1 ttl')
  t.same(b.tier.getMany([]), [], 'no keys: at once')
})

test('getMany: a batch read from L2 before an invalidation is not put in L1 after it', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix })
  let wrapper: ReturnType<typeof holding> | undefined
  // The wrapper has neither getMany nor getTimedMany: the tier reads it key by key, each with its time left.
  const c = await instance(t, { prefix, wrap: (l2) => (wrapper = holding(l2, true)).wrap(l2) })
  const held = wrapper as ReturnType<typeof holding>
  await heardBy([c], async () => { await a.tier.set('k', 'v1') })
  const gate = held.hold()
  const pending = c.tier.getMany(['k'])
  await reaching(gate.reached)
  await heardBy([c], async () => { await a.tier.set('k', 'v2') })
  gate.release()
  t.same(await pending, ['v1'], 'the held read answers what L2 had when it ran')
  t.equal(fromMemory(c.tier, 'k'), MISS, 'but it did not fill L1')
  t.same(await c.tier.getMany(['k']), ['v2'])
  t.same(c.tier.getMany(['k']), ['v2'], 'a read nothing intervened in fills L1')
})

test('fences in batches: readMany and setManyIf through the tier, each entry under its own fence, one message for those written', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, { prefix, fenced: true })
  const b = await instance(t, { prefix, fenced: true })
  const fences = a.tier.fences
  if (fences?.readMany === undefined || fences.setManyIf === undefined) throw new Error('a fenced RedisStore has batch fences')
  await heardBy([b], async () => { await a.tier.setMany([{ key: 'x', value: 'old x', ttl: 0 }, { key: 'y', value: 'old y', ttl: 0 }]) })
  t.same(await b.tier.getMany(['x', 'y']), ['old x', 'old y'])
  const [x, y] = await fences.readMany(['x', 'y'])
  await heardBy([b], async () => { await a.tier.delete('y') })
  b.heard.length = 0
  await heardBy([b], async () => {
    t.same(await fences.setManyIf?.([{ key: 'x', value: 'new x', ttl: 0, fence: x as string }, { key: 'y', value: 'stale y', ttl: 0, fence: y as string }]), [true, false])
  })
  t.same(b.heard, [{ keys: ['x'] }], 'the others hear of what was written, once')
  t.same(fromMemory(a.tier, 'x'), 'new x', 'the writer keeps what it wrote')
  t.equal(fromMemory(a.tier, 'y'), MISS)
  t.same(await b.tier.getMany(['x', 'y']), ['new x', undefined], 'y was changed after its fence was read: not written')
})

test('batches over an L2 of another kind: read with its getMany (no time left known: the L1 ttl), a batch it refuses leaves L1 too', async (t) => {
  const map = new Map<string, unknown>()
  let refuse = false
  const reads: string[][] = []
  const l2: Store = {
    get: (key) => map.get(key),
    getMany: (keys) => { reads.push([...keys]); return keys.map((key) => map.get(key)) },
    set: (key, value) => {
      if (refuse) throw new Error('refused')
      map.set(key, value)
    },
    delete: (key) => { map.delete(key) },
    clear: () => { map.clear() }
  }
  const tier = new TieredStore({ l2, max: 10, ttl: 50 })
  map.set('a', 1).set('b', 2)
  t.same(await tier.getMany(['a', 'b', 'c']), [1, 2, undefined])
  t.same(reads, [['a', 'b', 'c']], 'one call of its getMany')
  t.same(tier.getMany(['a', 'b']), [1, 2], 'kept in L1')
  await sleep(70)
  t.ok(isPromiseLike(tier.getMany(['a'])), 'for the L1 ttl, L2 telling no time left')
  await tier.setMany([{ key: 'x', value: 'x1', ttl: 0 }])
  refuse = true
  await t.rejects(tier.setMany([{ key: 'x', value: 'x2', ttl: 0 }, { key: 'y', value: 'y2', ttl: 0 }]), /refused/)
  t.same(await tier.getMany(['x', 'y']), ['x1', undefined], 'what L2 still holds: the refused batch left L1 as well')
})
