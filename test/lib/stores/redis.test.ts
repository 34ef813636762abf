import { setTimeout as sleep } from 'node:timers/promises'
import { pack, unpack } from 'msgpackr'
import { Redis } from 'ioredis'
import { test } from 'tap'
import { jsonSerializer } from '../../../lib/serializer.js'
import type { Group } from '../../../lib/store.js'
import { RedisStore, type RedisClient } from '../../../lib/stores/redis.js'
import { MAX_WAITING } from '../../../lib/budget.js'
import { REDIS_URL, commandCalls, privateRedis, redisFor, uniquePrefix } from '../../helpers/redis.js'
import { until } from '../../helpers/until.js'

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
  await store.groups.create('g', { fence: 'f', fields: { when } }, 1000)
  t.same({ ...(await store.groups.read('g', 1000))?.fields }, { when })
})

test('groups: one hash per key under a fence, changed atomically, whose expiry every call restarts', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix })
  const { groups } = store
  const fields = async (ttl = 1000): Promise<Record<string, unknown> | undefined> => {
    const group = await groups.read('s', ttl)
    return group === undefined ? undefined : { ...group.fields }
  }
  t.equal(await groups.read('s', 1000), undefined)
  t.equal(await groups.update('s', 'f', { set: { a: 1 } }, 1000), false, 'no update creates a group')
  t.equal(await client.exists(prefix + 's'), 0)
  t.equal(await groups.create('s', { fence: 'f', fields: { a: 1, b: { x: 2 } } }, 2000), true)
  t.equal(await groups.create('s', { fence: 'g', fields: { z: 0 } }, 2000), false, 'an existing group is never created over')
  t.equal(await client.type(prefix + 's'), 'hash')
  t.same(await client.hgetall(prefix + 's'), { '': 'f', '#': '1', a: '1', b: '{"x":2}' }, 'the fence and the version in marker fields, each entry in its own field')
  t.ok(await client.pttl(prefix + 's') > 1500)
  t.same(await fields(60_000), { a: 1, b: { x: 2 } })
  t.equal((await groups.read('s', 60_000))?.fence, 'f')
  t.ok(await client.pttl(prefix + 's') > 50_000, 'a read restarts the expiry (rolling)')

  t.equal(await groups.update('s', 'g', { set: { a: 9 } }, 3000), false, 'another fence is refused')
  t.equal(await groups.update('s', 'f', { remove: ['a'], set: { c: 3 } }, 3000), true)
  t.same(await fields(3000), { b: { x: 2 }, c: 3 })
  t.ok(await client.pttl(prefix + 's') <= 3000)
  t.equal(await groups.update('s', 'f', { set: JSON.parse('{"__proto__": "p"}') as Record<string, unknown> }, 3000), true)
  const read = await groups.read('s', 3000)
  t.equal(Object.getOwnPropertyDescriptor(read?.fields, '__proto__')?.value, 'p', 'a field named __proto__ is read back as a field, not as a prototype')
  t.equal(await groups.update('s', 'f', { clear: true, set: { d: 4 } }, 3000), true)
  t.same(await fields(3000), { d: 4 }, 'clear drops every field but keeps the group and its fence')
  t.equal(await groups.update('s', 'f', { set: { 'm:a': 1, 'm:b': 2, e: 5 } }, 3000), true)
  t.equal(await groups.update('s', 'f', { clear: true, keep: 'm:', set: { f: 6 } }, 3000), true)
  t.same(await fields(3000), { 'm:a': 1, 'm:b': 2, f: 6 }, 'clear with keep drops every field but those it keeps')

  const copy = await groups.read('s', 3000) as Group
  t.equal(copy.version, '6', 'every change moved the version, clears included')
  t.equal(await groups.read('s', 3000, copy), copy, 'an unchanged group answers the copy itself')
  t.equal(await groups.update('s', 'f', { clear: true }, 3000), true)
  const cleared = await groups.read('s', 3000, copy)
  t.not(cleared, copy, 'a clear without keep moves the version too')
  t.same({ ...cleared?.fields }, {})
  t.equal(await groups.update('s', 'f', { set: { g: 7 } }, 3000), true)
  t.same({ ...(await groups.read('s', 3000, cleared as Group))?.fields }, { g: 7 }, 'a changed group answers what it holds now')
  t.same(await groups.exists?.(['s', 'nothing']), [true, false])

  // A change made on a copy: the group as the change left it, only when nothing else changed it since that copy.
  const copyOf = await groups.read('s', 3000) as Group
  const vouched = await groups.update('s', 'f', { set: { h: { at: new Date(0) } } }, 3000, copyOf)
  t.same(typeof vouched === 'object' ? { ...vouched.fields } : vouched, { g: 7, h: { at: '1970-01-01T00:00:00.000Z' } }, 'its fields as they read back (a Date as JSON keeps it)')
  t.same(vouched, await groups.read('s', 3000), 'exactly what a read answers')
  t.equal(await groups.update('s', 'f', { set: { i: 8 } }, 3000, copyOf), true, 'a copy another change overtook is not vouched for')
  t.same({ ...(await groups.read('s', 3000))?.fields }, { g: 7, h: { at: '1970-01-01T00:00:00.000Z' }, i: 8 }, 'and the change still applies')
  const full = await groups.read('s', 3000) as Group
  t.equal(await groups.update('s', 'f', { set: { j: 9 }, cap: { prefix: '', max: 3 } }, 3000, full), true, 'nor one whose cap dropped a field (the hash keeps its own order)')

  t.equal(await groups.end('s', 'g'), undefined, 'end under another fence does nothing')
  t.same(Object.keys((await groups.end('s', 'f'))?.fields ?? {}).length, 3, 'end answers what the group held')
  t.equal(await client.exists(prefix + 's'), 0)
  t.equal(await groups.update('s', 'f', { set: { late: 1 } }, 3000), false, 'a late write cannot bring an ended group back')
  t.equal(await client.exists(prefix + 's'), 0)
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
  await t.rejects(store.set('k', 'w'), { code: 'FST_MULTICACHE_STORE', message: /store set failed/ })
  // Until the socket has closed (a loaded machine takes more than a few ms) ioredis fails commands its own way.
  if (own.status !== 'end') await new Promise((resolve) => own.once('end', resolve))
  const lost = Date.now()
  await t.rejects(store.get('k'), { message: /Redis is not connected \(end\)/ })
  t.ok(Date.now() - lost < 50, 'no queueing while disconnected')
})

test('a paused Redis under load: at most MAX_WAITING operations wait once it is behind, the rest fail at once; all flow again once it answers', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const own = new Redis(server.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => { own.disconnect() })
  await new Promise((resolve) => own.once('ready', resolve))
  const store = new RedisStore({ client: own as unknown as RedisClient, prefix: 'p:', timeout: 20 })
  await store.set('k', 'v')
  server.pause()
  const sent = (): number => (own as unknown as { commandQueue: { length: number } }).commandQueue.length
  const first = await Promise.allSettled(Array.from({ length: MAX_WAITING }, async () => await store.get('k')))
  t.ok(first.every((outcome) => outcome.status === 'rejected'), 'each ran out of its budget')
  const queued = sent()
  t.ok(queued >= MAX_WAITING, `ioredis still holds them: ${queued}`)
  // The client keeps coming, as a server under load does: none of it reaches ioredis now.
  const started = Date.now()
  const more = await Promise.allSettled(Array.from({ length: 5000 }, async () => await store.get('k')))
  t.ok(Date.now() - started < 1000, 'refused at once')
  t.ok(more.every((outcome) => outcome.status === 'rejected' && /still wait for the store, \d+ of them past their time budget/.test((outcome.reason as Error).message)), 'each refused, naming why')
  t.equal(sent(), queued, 'not one more command queued')
  server.resume()
  await until(() => sent() === 0, 5000)
  t.equal(await store.get('k'), 'v', 'answers again once Redis does')
})

test('groups.update on Redis: a cap counts the fields of its prefix only, a clear keeps those of keep, and a fence may hold spaces', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const { groups } = new RedisStore({ client: client as unknown as RedisClient, prefix })
  const fields = async (): Promise<Record<string, unknown>> => ({ ...(await groups.read('s', 2000))?.fields })
  const fence = 'a fence with spaces'
  t.equal(await groups.create('s', { fence, fields: { 'p:1': 1, 'p:2': 2, other: 0, gone: 9 } }, 2000), true)
  t.equal(await groups.update('s', 'a fence', { set: { x: 1 } }, 2000), false, "the start of the group's fence is another fence")
  t.equal(await groups.update('s', fence, { remove: ['gone'], set: { 'p:3': 3 }, cap: { prefix: 'p:', max: 2 } }, 2000), true)
  t.same(await fields(), { 'p:2': 2, other: 0, 'p:3': 3 }, 'the oldest field of the prefix went, no other')
  t.equal(await groups.update('s', fence, { clear: true, keep: 'p:', set: { y: 1 } }, 2000), true)
  t.same(await fields(), { 'p:2': 2, 'p:3': 3, y: 1 }, 'the clear kept the fields of keep')
  t.ok(await client.pttl(prefix + 's') > 1000, 'the ttl applies')
  await groups.end('s', fence)
})

test('clear() escapes the glob characters of its prefix: it never deletes keys outside it', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const base = uniquePrefix(t)
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix: base + 'a*?[x]\\:' })
  await store.set('mine', 1)
  // Keys that the unescaped pattern `a*?[x]\:*` would match.
  const others = [base + 'ab?x\\:k', base + 'aZZx\\:k', base + 'a*?x:k', base + 'abcd']
  for (const key of others) await client.set(key, 'other app')
  await store.clear()
  t.equal(await store.get('mine'), undefined)
  for (const key of others) t.equal(await client.get(key), 'other app', `${key} is not ours`)
})

test('session ids are stored only as a hash: no key and no field in Redis holds the id', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const { SessionLevel } = await import('../../../lib/scopes/session.js')
  const level = new SessionLevel({ ttl: 10_000, maxEntriesPerSession: 10, store: new RedisStore({ client: client as unknown as RedisClient, prefix }) })
  const session = level.open(() => undefined)
  await session.set('cart', ['apple'])
  const id = session.id as string
  const keys = await client.keys(prefix + '*')
  t.equal(keys.length, 1)
  t.notOk(keys.some((key) => key.includes(id)), 'not in the key')
  const fields = await client.hgetall(keys[0] as string)
  t.notOk(Object.entries(fields).some(([name, value]) => name.includes(id) || value.includes(id)), 'nor in the hash')
})

test('fences: a load that read its fence before a change writes nothing once Redis forgot its data, however many changes follow', async (t) => {
  if (await redisFor(t) === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  const client = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 20 })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  const ready = async (): Promise<void> => { if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve)) }
  await ready()
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix: 'p:', fenced: true })
  const fences = store.fences
  if (fences === undefined) throw new Error('a fenced RedisStore has fences')
  const losses = { 'a restart': async () => { await server.restart(); await ready() }, FLUSHALL: server.flushAll }
  for (const [loss, forget] of Object.entries(losses)) {
    // A change before the load, then one after it began: a fence counted anew after the loss would meet the load's again.
    for (const change of ['delete', 'clear'] as const) {
      const act = async (): Promise<void> => { if (change === 'delete') await store.delete('k'); else await store.clear() }
      await server.flushAll()
      await act()
      const fence = await fences.read('k')
      await act()
      await forget()
      t.equal(await fences.setIf('k', 'old', 0, fence), false, `${loss}, no change since: refused`)
      await act()
      t.equal(await fences.setIf('k', 'old', 0, fence), false, `${loss}, then a ${change}: refused`)
      t.equal(await store.get('k'), undefined)
      t.equal(await fences.setIf('k', 'new', 0, await fences.read('k')), true, 'a load that starts after it writes')
      t.equal(await store.get('k'), 'new')
    }
  }
})

test('batches: getTimedMany reads each value with its time left in one script; fences read and write many in one script each', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const client = new Redis(server.url)
  t.teardown(() => { client.disconnect() })
  await client.ping()
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix: 'p:', fenced: true })
  const fences = store.fences
  if (fences?.readMany === undefined || fences.setManyIf === undefined) throw new Error('a fenced RedisStore reads and writes fences in batches')
  await store.set('a', { n: 1 }, 5000)
  await store.set('b', null)
  await client.call('CONFIG', 'RESETSTAT')
  const timed = await store.getTimedMany(['a', 'missing', 'b', '__proto__'])
  t.same(timed.map((one) => one?.value), [{ n: 1 }, undefined, null, undefined])
  t.ok((timed[0]?.ttl ?? 0) > 4000 && (timed[0]?.ttl ?? 0) <= 5000, `a: ${timed[0]?.ttl} ms left`)
  t.equal(timed[2]?.ttl, 0, 'b does not expire')
  t.same(await store.getTimedMany([]), [])
  t.same(await commandCalls(client), { eval: 1, get: 4, pttl: 2 }, 'one EVAL; its GETs and PTTLs run inside Redis')

  await store.set('c', 'old')
  const [a, c, d] = await fences.readMany(['a', 'c', 'd'])
  t.same([a, c, d], [await fences.read('a'), await fences.read('c'), await fences.read('d')], 'the fences read one by one')
  await store.delete('c')
  await client.call('CONFIG', 'RESETSTAT')
  const written = await fences.setManyIf([
    { key: 'a', value: 'A', ttl: 1000, fence: a as string },
    { key: 'c', value: 'C', ttl: 0, fence: c as string },
    { key: 'd', value: 'D', ttl: 0, fence: d as string }
  ])
  t.same(written, [true, false, true], 'c changed since its fence was read: not written')
  t.same(await commandCalls(client), { eval: 1, get: 4, set: 2 })
  t.same(await store.getMany(['a', 'c', 'd']), ['A', undefined, 'D'])
  const pttl = await client.pttl('p:a')
  t.ok(pttl > 0 && pttl <= 1000, `ttl of a written entry: ${pttl}`)
  t.equal(await client.pttl('p:d'), -1, 'ttl 0: no expiry')
  await server.flushAll()
  t.same(await fences.setManyIf([{ key: 'a', value: 'late', ttl: 0, fence: a as string }]), [false], 'after Redis forgot its fences, nothing vouches for a load')
  t.same(await fences.setManyIf([]), [])
  t.same(await fences.readMany([]), [])
})

/** Counts the writes a client's socket makes (a `_writev` of many chunks is one). */
function socketWrites (client: Redis): { count: number } {
  const seen = { count: 0 }
  const stream = client.stream as unknown as { _write: (...args: unknown[]) => void, _writev: (...args: unknown[]) => void }
  const write = stream._write.bind(stream)
  const writev = stream._writev.bind(stream)
  stream._write = (...args) => { seen.count++; write(...args) }
  stream._writev = (...args) => { seen.count++; writev(...args) }
  return seen
}

test('commands sent in one turn of the event loop go to the socket in one write, in the order they were sent, the app\'s own included', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix })
  await store.set('warm', 0)
  const writes = socketWrites(client)
  const sets = await Promise.all([store.set('a', 1), store.set('b', 2), store.set('c', 3), store.set('d', 4)])
  t.equal(sets.length, 4)
  t.equal(writes.count, 1, 'four writes of one turn: one socket write')
  t.same(await store.getMany(['a', 'b', 'c', 'd']), [1, 2, 3, 4])

  // The app's command between two of the store's, on the same client, in one turn: each runs where it was sent.
  writes.count = 0
  const [before, , , after] = await Promise.all([store.get('a'), store.set('a', 'store'), client.set(prefix + 'a', '"app"'), store.get('a')])
  t.equal(before, 1)
  t.equal(after, 'app', 'the app\'s SET, sent after the store\'s, ran after it')
  t.equal(writes.count, 1)

  // Sent in turns of their own, each goes when its turn ends.
  writes.count = 0
  for (let i = 0; i < 3; i++) await store.set('a', i)
  t.equal(writes.count, 3)
})

test('a connection lost while a turn\'s writes are held: they are sent again on the new one, none lost', async (t) => {
  if (await redisFor(t) === undefined) return
  // ioredis's defaults: it reconnects, and sends again the commands that were not answered.
  const client = new Redis(REDIS_URL)
  t.teardown(() => { client.disconnect() })
  await client.ping()
  const prefix = uniquePrefix(t)
  // Time for ioredis to reconnect (its first retry waits 50 ms) within the command's budget.
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix, timeout: 5000 })
  await store.set('warm', 0)
  const written = Promise.all([store.set('a', 1), store.set('b', 2)])
  // The socket goes before the turn ends: ioredis reconnects and sends what it had not been answered.
  client.stream.destroy()
  await written
  t.same(await store.getMany(['a', 'b']), [1, 2])
})
