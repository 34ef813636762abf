// The Redis store, the bus and the lock on a Redis Cluster of three masters (the test's own, see test/helpers/cluster.ts).
import { Redis } from 'ioredis'
import t from 'tap'
import { Breaker, guardStore } from '../../../lib/breaker.js'
import { InvalidationBus, type Invalidation } from '../../../lib/bus.js'
import { RedisLock } from '../../../lib/lock.js'
import type { Group } from '../../../lib/store.js'
import { RedisStore, type RedisClient } from '../../../lib/stores/redis.js'
import { slotOf, tagOf } from '../../../lib/stores/slots.js'
import { privateCluster } from '../../helpers/cluster.js'
import { until } from '../../helpers/until.js'

const cluster = await privateCluster(t)

if (cluster !== undefined) {
  const client = cluster.client({ enableOfflineQueue: false })
  await new Promise((resolve) => client.once('ready', resolve))
  const redis = client as unknown as RedisClient
  const keys = Array.from({ length: 60 }, (_, i) => `key:${i}`)

  t.test('slots: the CRC16 of Redis Cluster, hash tags included, and a tag for every slot', async (t) => {
    for (const key of ['a', 'fmc:app:é', '{user1000}.following', 'a{}b', '{}x{y}', 'x{y}z', 'abc}{d}', '']) {
      t.equal(slotOf(key), await client.cluster('KEYSLOT', key), key)
    }
    for (const slot of [0, 1, 5460, 5461, 16383]) t.equal(await client.cluster('KEYSLOT', tagOf(slot) + 'anything'), slot)
  })

  t.test('values and batches over keys of every master: each multi-key command stays in one slot', async (t) => {
    const prefix = 'fmc:values:'
    const store = new RedisStore({ client: redis, prefix, fenced: true })
    for (const [i, key] of keys.entries()) await store.set(key, i, i % 2 === 0 ? 0 : 60_000)
    const held = await cluster.keysByMaster(prefix + '*')
    t.equal(held.size, 3)
    t.ok([...held.values()].every((found) => found.length > 0), 'the keys are spread over every master')
    t.same(await store.getMany([...keys, 'missing']), [...keys.map((_, i) => i), undefined], 'getMany: one MGET per slot, in the order asked')
    t.same(await store.getTimed('key:1').then((timed) => timed?.value === 1 && timed.ttl > 50_000), true)
    await store.deleteMany(keys.slice(0, 30))
    t.same(await store.getMany(keys.slice(0, 32)), [...Array(30).fill(undefined), 30, 31], 'deleteMany: one transaction per slot')
    t.equal(await store.delete('key:31'), true)
    t.equal(await store.delete('key:31'), false)
  })

  t.test('batch reads and fenced batch writes over keys of every master: one script per slot', async (t) => {
    const store = new RedisStore({ client: redis, prefix: 'fmc:batches:', fenced: true })
    const fences = store.fences as NonNullable<RedisStore['fences']>
    const read = await fences.readMany?.(keys) ?? []
    t.equal(read.length, keys.length)
    await store.set('key:7', 'changed')
    const written = await fences.setManyIf?.(keys.map((key, i) => ({ key, value: i, ttl: 60_000, fence: read[i] as string }))) ?? []
    t.same(written, keys.map((key) => key !== 'key:7'), 'each key written under its own fence; the one a change moved is not')
    const timed = await store.getTimedMany?.([...keys, 'missing']) ?? []
    t.same(timed.map((entry) => entry?.value), [...keys.map((key, i) => key === 'key:7' ? 'changed' : i), undefined], 'in the order asked')
    t.ok(timed.slice(0, 7).every((entry) => (entry?.ttl ?? 0) > 50_000), 'with their remaining ttl')
  })

  t.test('groups: one hash each, anywhere; exists over many asks each slot once', async (t) => {
    const store = new RedisStore({ client: redis, prefix: 'fmc:groups:' })
    for (const key of keys.slice(0, 20)) t.equal(await store.groups.create(key, { fence: 'f', fields: { a: 1 } }, 60_000), true)
    t.equal(await store.groups.update('key:3', 'f', { set: { b: 2 } }, 60_000), true)
    t.same((await store.groups.read('key:3', 60_000))?.fields, { a: 1, b: 2 })
    t.same(await store.groups.exists?.([...keys.slice(0, 20), 'gone']), [...Array(20).fill(true), false])
    t.same((await store.groups.end('key:3', 'f') as Group).fields, { a: 1, b: 2 })
    // A script loaded on one node is not on the others: on a cluster every script goes by its text.
    let bySha = 0
    for (const port of await cluster.masters()) {
      const node = new Redis(port, '127.0.0.1')
      const stats = await node.call('INFO', 'commandstats') as string
      node.disconnect()
      bySha += Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0) + Number(/cmdstat_script\|load:calls=(\d+)/.exec(stats)?.[1] ?? 0)
    }
    t.equal(bySha, 0, 'no EVALSHA and no SCRIPT LOAD on any master')
  })

  t.test('a cluster client with enableAutoPipelining: reads by callBuffer answer, and a read sent after a write sees it', async (t) => {
    const pipelining = cluster.client({ enableAutoPipelining: true })
    await new Promise((resolve) => pipelining.once('ready', resolve))
    const store = new RedisStore({ client: pipelining as unknown as RedisClient, prefix: 'fmc:pipelining:' })
    for (const key of keys.slice(0, 12)) {
      const writing = store.set(key, key, 60_000)
      const reading = store.getTimed(key)
      await writing
      t.equal((await reading)?.value, key, `${key} read after its write`)
    }
    t.same(await store.getMany(keys.slice(0, 12)), keys.slice(0, 12), 'MGET by callBuffer, one per slot')
    t.equal(await store.groups.create('cart', { fence: 'f', fields: { lines: [1] } }, 60_000), true)
    t.equal(await store.groups.update('cart', 'f', { set: { lines: [1, 2] } }, 60_000), true)
    t.same((await store.groups.read('cart', 60_000))?.fields, { lines: [1, 2] }, "a group's script, its reply by callBuffer")
  })

  t.test('fences: every write and delete moves the key fence in the slot of its key, clear moves every slot', async (t) => {
    const store = new RedisStore({ client: redis, prefix: 'fmc:fenced:', fenced: true })
    const fences = store.fences as NonNullable<RedisStore['fences']>
    const before = await Promise.all(keys.map(async (key) => await fences.read(key)))
    await store.set('key:0', 'new')
    t.equal(await fences.setIf('key:0', 'old', 0, before[0] as string), false, 'a load from before a set writes nothing')
    await store.deleteMany(['key:1', 'key:2'])
    t.equal(await fences.setIf('key:1', 'old', 0, before[1] as string), false, 'nor from before a delete')
    t.equal(await fences.setIf('key:5', 'loaded', 0, before[5] as string), true, 'a load nothing changed writes')
    await store.clear()
    const refused = await Promise.all(keys.slice(3).map(async (key, i) => await fences.setIf(key, 'old', 0, before[i + 3] as string)))
    t.ok(refused.every((written) => !written), 'no load from before the clear writes, in any slot')
    const now = await fences.read('key:7')
    t.equal(await fences.setIf('key:7', 'fresh', 0, now), true, 'a load after it does')
    t.equal(await store.get('key:7'), 'fresh')
  })

  t.test('clear walks every master and leaves other prefixes; keys() lists every master page by page', async (t) => {
    const store = new RedisStore({ client: redis, prefix: 'fmc:cleared:', fenced: true })
    const other = new RedisStore({ client: redis, prefix: 'fmc:kept:' })
    for (let i = 0; i < 300; i++) await client.set(`fmc:cleared:bulk:${i}`, '1')
    for (const key of keys) await other.set(key, 1)
    const listed: string[] = []
    let cursor: string | undefined
    let pages = 0
    do {
      const page = await store.keys({ match: 'bulk:', limit: 50, cursor })
      listed.push(...page.keys.map(({ key }) => key))
      cursor = page.cursor
      pages++
    } while (cursor !== undefined && pages < 100)
    t.equal(new Set(listed).size, 300, 'every key listed')
    t.ok(pages >= 3, `in pages that walk the masters one after the other (${pages})`)
    await store.clear()
    const left = await cluster.keysByMaster('fmc:cleared:*')
    t.same([...left.values()].flat(), [], 'no key of the prefix on any master')
    t.equal([...(await cluster.keysByMaster('fmc:kept:*')).values()].flat().length, keys.length, "the other prefix's keys survive")
  })

  t.test('tags: one hash, bumped and read', async (t) => {
    const store = new RedisStore({ client: redis, prefix: 'fmc:tags:', fenced: true })
    const tags = store.tags as NonNullable<RedisStore['tags']>
    const first = await tags.bump(['a', 'b'])
    t.same(first.versions, { a: 1, b: 1 })
    const read = await tags.read()
    t.same(read, { epoch: first.epoch, versions: { a: 1, b: 1 } })
  })

  t.test('the bus: sharded pub/sub on the master of its slot, heard by every bus, and SPUBLISH counts every receiver', async (t) => {
    const heard: Invalidation[][] = [[], [], []]
    const buses = heard.map((messages) => new InvalidationBus({ client: redis, channel: 'fmc:bus-test:bus', timeout: 1000, onMessage: (message) => { messages.push(message) } }))
    t.teardown(async () => { await Promise.all(buses.map(async (bus) => { await bus.close() })) })
    await Promise.all(buses.map(async (bus) => { await bus.subscribed }))
    const [one] = buses as [InvalidationBus, ...InvalidationBus[]]
    await one.publish({ keys: ['a'] })
    await until(() => heard[1]?.length === 2 && heard[2]?.length === 2)
    t.same(heard[1], [{ clear: true }, { keys: ['a'] }])
    t.same(heard[0], [{ clear: true }], 'a bus does not hear itself')
    await one.publishAcknowledged({ keys: ['b'] }, 2000)
    t.same(heard[2]?.at(-1), { keys: ['b'] }, 'applied by every other bus before the call resolved')
    const channel = tagOf(slotOf('fmc:bus-test:bus')) + 'fmc:bus-test:bus'
    const master = new Redis(await cluster.masterOf(channel), '127.0.0.1')
    t.teardown(() => { master.disconnect() })
    t.same(await master.call('PUBSUB', 'SHARDNUMSUB', channel), [channel, 3], "the three buses are shard subscribers on the master of the channel's slot")
  })

  t.test("the bus follows its channel's slot to another master", async (t) => {
    const heard: Invalidation[][] = [[], []]
    const buses = heard.map((messages) => new InvalidationBus({ client: redis, channel: 'fmc:moving:bus', timeout: 1000, onMessage: (message) => { messages.push(message) } }))
    t.teardown(async () => { await Promise.all(buses.map(async (bus) => { await bus.close() })) })
    await Promise.all(buses.map(async (bus) => { await bus.subscribed }))
    const slot = slotOf(tagOf(slotOf('fmc:moving:bus')) + 'fmc:moving:bus')
    const from = await cluster.masterOf(tagOf(slot))
    const to = (await cluster.masters()).find((port) => port !== from) as number
    const admin = async (port: number, ...command: Array<string | number>): Promise<unknown> => {
      const node = new Redis(port, '127.0.0.1')
      try {
        return await node.call(...(command as [string, ...Array<string | number>]))
      } finally {
        node.disconnect()
      }
    }
    const [fromId, toId] = await Promise.all([admin(from, 'CLUSTER', 'MYID'), admin(to, 'CLUSTER', 'MYID')]) as [string, string]
    // The slot holds no key: it moves without MIGRATE, as redis-cli --cluster reshard moves an empty one.
    await admin(to, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', fromId)
    await admin(from, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', toId)
    await admin(to, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId)
    await admin(from, 'CLUSTER', 'SETSLOT', slot, 'NODE', toId)
    await until(() => heard.every((messages) => messages.filter((message) => 'clear' in message).length >= 3), 5000)
    t.pass('each bus lost its subscription, emptied its tier, and subscribed again')
    const channel = tagOf(slotOf('fmc:moving:bus')) + 'fmc:moving:bus'
    t.same(await admin(to, 'PUBSUB', 'SHARDNUMSUB', channel), [channel, 2], 'on the master the slot moved to')
    await (buses[0] as InvalidationBus).publishAcknowledged({ keys: ['after'] }, 2000)
    t.same(heard[1]?.at(-1), { keys: ['after'] }, 'and hears what is published there')
  })

  t.test('the lock: one holder across clients, released by its holder only', async (t) => {
    const options = { prefix: 'fmc-lock:test:', leasePrefix: 'fmc-lease:test:', timeout: 500, ttl: 5000, wait: 200 }
    const a = new RedisLock({ client: redis, ...options })
    const other = cluster.client()
    await new Promise((resolve) => other.once('ready', resolve))
    const b = new RedisLock({ client: other as unknown as RedisClient, ...options })
    const token = await a.acquire('k')
    t.ok(token !== undefined)
    t.equal(await b.acquire('k'), undefined, 'held')
    await a.release('k', token as string)
    t.ok(await b.acquire('k') !== undefined, 'free once released')
    t.equal(await a.lease('r', 5000), true)
    t.equal(await b.lease('r', 5000), false)
  })

  t.test('a master that does not answer costs an operation its budget, other masters answer, and the breaker is one per store', async (t) => {
    const store = new RedisStore({ client: redis, prefix: 'fmc:paused:', timeout: 100 })
    const victim = await cluster.masterOf('fmc:paused:k0')
    let other = 1
    while (await cluster.masterOf(`fmc:paused:k${other}`) === victim) other++
    await store.set('k0', 'stalled')
    await store.set(`k${other}`, 'elsewhere')
    cluster.pause(victim)
    t.teardown(() => { cluster.resume(victim) })
    let started = performance.now()
    await t.rejects(store.get('k0'), { code: 'FST_MULTICACHE_STORE', message: /no answer within 100 ms/ })
    const waited = performance.now() - started
    t.ok(waited < 160, `a key of the paused master: the budget, no more (${waited.toFixed(0)} ms)`)
    t.equal(await store.get(`k${other}`), 'elsewhere', 'a key of another master answers')
    const guarded = guardStore(store, new Breaker({ failures: 3, coolDown: 1000, name: 'appCache' }))
    for (let i = 0; i < 3; i++) await t.rejects(guarded.get('k0') as Promise<unknown>)
    started = performance.now()
    await t.rejects(guarded.get(`k${other}`) as Promise<unknown>, { message: /circuit breaker is open/ })
    t.ok(performance.now() - started < 20, 'once open, the breaker skips every key of the store at once, whatever its master')
    cluster.resume(victim)
    t.equal(await store.get('k0'), 'stalled', 'the master answers again once resumed, before any failover (under 2 s)')
  })
}
