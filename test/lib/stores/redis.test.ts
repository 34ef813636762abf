import { setTimeout as sleep } from 'node:timers/promises'
import { pack, unpack } from 'msgpackr'
import { Redis } from 'ioredis'
import { test } from 'tap'
import { jsonSerializer } from '../../../lib/serializer.js'
import { RedisStore, type RedisClient } from '../../../lib/stores/redis.js'
import { privateRedis, redisFor, uniquePrefix } from '../../helpers/redis.js'

test('values, TTLs in Redis, batches and prefix-scoped clear', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix })
  const other = new RedisStore({ client: client as unknown as RedisClient, prefix: uniquePrefix(t) })
  await store.set('a', { n: 1, when: new Date(0) })
  await store.set('short', 'x', 5000)
  await store.set('__proto__', null)
  await other.set('kept', 1)
  t.same(await store.get('a'), { n: 1, when: '1970-01-01T00:00:00.000Z' }, 'a Date comes back as its ISO string with JSON')
  t.equal(await store.get('__proto__'), null)
  t.equal(await store.get('missing'), undefined)
  const pttl = await client.pttl(prefix + 'short')
  t.ok(pttl > 4000 && pttl <= 5000, `SET … PX: ${pttl}`)
  t.equal(await client.pttl(prefix + 'a'), -1, 'no ttl: no expiry')
  t.same(await store.getMany(['a', 'missing', 'short']), [{ n: 1, when: '1970-01-01T00:00:00.000Z' }, undefined, 'x'])
  t.same(await store.getMany([]), [])
  t.same(await store.getTimed('short').then((timed) => timed !== undefined && timed.ttl > 4000 && timed.value === 'x'), true)
  t.equal(await store.getTimed('missing'), undefined)
  await store.delete('a')
  t.equal(await store.get('a'), undefined)
  for (let i = 0; i < 1200; i++) await client.set(`${prefix}bulk:${i}`, '1')
  await store.clear()
  t.equal((await client.keys(prefix + '*')).length, 0, 'clear removed this prefix (checked here with KEYS; the store uses SCAN)')
  t.equal(await other.get('kept'), 1, 'another prefix is left alone')
})

test('values JSON would change are refused and nothing is stored', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix })
  const circular: Record<string, unknown> = {}
  circular.self = circular
  for (const [value, reason] of [[() => 1, /function/], [{ big: 10n }, /bigint/], [circular, /circular/i], [new Map([[1, 2]]), /Map/], [{ s: Symbol('x') }, /symbol/]] as const) {
    await t.rejects(store.set('bad', value), { code: 'FST_MULTICACHE_SERIALIZE', message: reason })
  }
  t.equal(await client.exists(prefix + 'bad'), 0)
  t.equal(jsonSerializer.decode(Buffer.from('{"a":1}')) instanceof Object, true)
})

test('a pluggable serializer (msgpackr) keeps Dates', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix: uniquePrefix(t), serializer: { encode: pack, decode: (data) => unpack(data as Buffer) } })
  const when = new Date('2026-11-24T10:00:00Z')
  await store.set('d', { when })
  t.same(await store.get('d'), { when })
  await store.groups.write('g', { when }, 1000)
  t.same(await store.groups.read('g', 1000), { when })
})

test('groups: one hash per key whose expiry every call restarts', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix })
  t.equal(await store.groups.read('s', 1000), undefined)
  await store.groups.write('s', { a: 1, b: { x: 2 } }, 2000)
  t.equal(await client.type(prefix + 's'), 'hash')
  t.ok(await client.pttl(prefix + 's') > 1500)
  t.same(await store.groups.read('s', 60_000), { a: 1, b: { x: 2 } })
  t.ok(await client.pttl(prefix + 's') > 50_000, 'a read restarts the expiry (rolling)')
  await store.groups.remove('s', ['a'], 3000)
  t.same(await store.groups.read('s', 3000), { b: { x: 2 } })
  t.ok(await client.pttl(prefix + 's') <= 3000)
  await store.delete('s')
  t.equal(await store.groups.read('s', 1000), undefined)
})

test('a stalled Redis costs the time budget, not a hang; a lost one fails at once; both recover', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  const own = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
  t.teardown(() => { own.disconnect() })
  await new Promise((resolve) => own.once('ready', resolve))
  const store = new RedisStore({ client: own as unknown as RedisClient, prefix: 'p:', timeout: 100 })
  await store.set('k', 'v')
  server.pause()
  const started = Date.now()
  await t.rejects(store.get('k'), { code: 'FST_MULTICACHE_STORE', message: /store get failed: no answer within 100 ms/ })
  const waited = Date.now() - started
  t.ok(waited >= 95 && waited < 400, `failed after ${waited} ms`)
  await t.rejects(Promise.resolve(store.groups.read('g', 100)), { message: /groups.read failed/ })
  server.resume()
  await sleep(50)
  t.equal(await store.get('k'), 'v', 'answers again after SIGCONT')

  own.disconnect()
  const lost = Date.now()
  await t.rejects(store.set('k', 'w'), { code: 'FST_MULTICACHE_STORE', message: /store set failed/ })
  await sleep(10)
  await t.rejects(store.get('k'), { message: /Redis is not connected \(end\)/ })
  t.ok(Date.now() - lost < 50, 'no queueing while disconnected')
})
