import { setTimeout as sleep } from 'node:timers/promises'
import KeyvRedis from '@keyv/redis'
import Keyv from 'keyv'
import { pack, unpack } from 'msgpackr'
import { test, type Test } from 'tap'
import type { Serializer } from '../../../lib/serializer.js'
import { KeyvStore, type KeyvLike } from '../../../lib/stores/keyv.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../../helpers/redis.js'

const msgpack: Serializer = { encode: pack, decode: (data) => unpack(data as Buffer) }

/** A Keyv over the test Redis in a namespace of its own, disconnected and emptied with the test; undefined when skipped. */
async function redisKeyv (t: Test): Promise<{ keyv: Keyv, namespace: string } | undefined> {
  if (await redisFor(t) === undefined) return undefined
  const namespace = uniquePrefix(t).slice(0, -1)
  const keyv = new Keyv({ store: new KeyvRedis(REDIS_URL), namespace })
  t.teardown(async () => { await keyv.disconnect() })
  return { keyv, namespace }
}

/** The same checks over any Keyv: a JSON round trip, TTLs, batches, delete and clear. */
async function roundTrips (t: Test, keyv: Keyv): Promise<void> {
  const store = new KeyvStore({ keyv })
  await store.set('a', { n: 1, when: new Date(0), list: [1, 'x', null], nested: { ok: true } })
  await store.set('null', null)
  await store.set('text', 'plain')
  await store.set('number', 0)
  t.same(await store.get('a'), { n: 1, when: '1970-01-01T00:00:00.000Z', list: [1, 'x', null], nested: { ok: true } }, 'a Date comes back as its ISO string with JSON')
  t.equal(await store.get('null'), null, 'null is a value')
  t.equal(await store.get('text'), 'plain')
  t.equal(await store.get('number'), 0)
  t.equal(await store.get('missing'), undefined)
  t.equal(await keyv.get('text'), '"plain"', 'what reaches Keyv is the JSON text')
  t.same(await store.getMany(['text', 'missing', 'null', 'number']), ['plain', undefined, null, 0])
  t.same(await store.getMany([]), [])
  await store.setMany([{ key: 'm1', value: { m: 1 }, ttl: 0 }, { key: 'm2', value: 'two', ttl: 60_000 }])
  t.same(await store.getMany(['m1', 'm2']), [{ m: 1 }, 'two'], 'setMany: one call of the Keyv\'s own setMany')
  t.equal(await keyv.get('m2'), '"two"')

  await store.set('short', 'v', 60)
  await store.set('zero', 'z', 0)
  t.equal(await store.get('short'), 'v')
  await sleep(100)
  t.equal(await store.get('short'), undefined, 'gone after its ttl')
  t.equal(await store.get('zero'), 'z', 'ttl 0: no expiry')

  await store.delete('text')
  t.equal(await store.get('text'), undefined)
  await store.delete('never-set')
  await store.clear()
  t.same(await store.getMany(['a', 'null', 'number', 'zero']), [undefined, undefined, undefined, undefined], 'clear removed everything')
}

test('over an in-memory Keyv', async (t) => {
  await roundTrips(t, new Keyv())
})

test('over @keyv/redis', async (t) => {
  const found = await redisKeyv(t)
  if (found === undefined) return
  await roundTrips(t, found.keyv)
})

test('@keyv/redis: TTLs are set in Redis, and clear clears this namespace only', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const first = await redisKeyv(t)
  const second = await redisKeyv(t)
  if (first === undefined || second === undefined) return
  const one = new KeyvStore({ keyv: first.keyv })
  const two = new KeyvStore({ keyv: second.keyv })
  await one.set('k', 1, 5000)
  await one.set('forever', 2)
  await two.set('k', 3)
  const keys = await client.keys(first.namespace + '*')
  t.equal(keys.length, 2, `one Redis key per entry: ${keys.join(', ')}`)
  const ttl = await client.pttl(keys.find((key) => key.endsWith(':k')) ?? '')
  t.ok(ttl > 4000 && ttl <= 5000, `the ttl is Redis' own: ${ttl}`)
  t.equal(await client.pttl(keys.find((key) => key.endsWith(':forever')) ?? ''), -1, 'no ttl: no expiry')
  await one.clear()
  t.equal((await client.keys(first.namespace + '*')).length, 0)
  t.equal(await one.get('k'), undefined)
  t.equal(await two.get('k'), 3, 'the other namespace is left alone')
})

/** Two stores under two prefixes of one Keyv that also holds a key of the app's own. */
async function prefixes (t: Test, keyv: Keyv): Promise<void> {
  const app = new KeyvStore({ keyv, prefix: 'app:' })
  const session = new KeyvStore({ keyv, prefix: 'session:' })
  await app.set('k', 1)
  await session.set('k', 2)
  await keyv.set('own', 'kept')
  t.equal(await keyv.get('app:k'), '1', 'the key is prefixed inside the Keyv')
  t.same([await app.get('k'), await session.get('k')], [1, 2])
  t.same(await app.getMany(['k', 'missing']), [1, undefined])
  await app.delete('k')
  t.equal(await session.get('k'), 2, 'delete stays in its prefix')
  await app.set('a', 1)
  await app.set('b', 2)
  await app.clear()
  t.same(await app.getMany(['a', 'b']), [undefined, undefined])
  t.equal(await session.get('k'), 2, 'clear stays in its prefix')
  t.equal(await keyv.get('own'), 'kept')
}

test('a prefix namespaces the keys inside the Keyv, and clear deletes that prefix only', async (t) => {
  await prefixes(t, new Keyv())
  const found = await redisKeyv(t)
  if (found === undefined) return
  await prefixes(t, found.keyv)
})

test('a stalled Keyv: once one write ran out of its budget, no more is sent while the bytes they write reach the bound; all flows again once it answers', async (t) => {
  const answers: Array<() => void> = []
  let sent = 0
  let stalled = true
  const keyv: KeyvLike = {
    get: async () => undefined,
    set: async () => {
      sent++
      if (stalled) await new Promise<void>((resolve) => { answers.push(resolve) })
      return true
    },
    delete: async () => true,
    clear: async () => {}
  }
  const store = new KeyvStore({ keyv, timeout: 10 })
  const value = 'x'.repeat(2 ** 19)
  // 128 writes of 512 KiB (and the quotes of its JSON): past 64 MiB waiting, the bound of bytes, far below 1,000 writes.
  const first = await Promise.allSettled(Array.from({ length: 128 }, async (_, i) => { await store.set(`k${i}`, value) }))
  t.ok(first.every((outcome) => outcome.status === 'rejected'), 'each ran out of its budget')
  t.equal(sent, 128)
  const more = await Promise.allSettled(Array.from({ length: 100 }, async (_, i) => { await store.set(`more${i}`, value) }))
  t.ok(more.every((outcome) => outcome.status === 'rejected' && /128 operations \(67109120 bytes\) still wait for the store, 128 of them past their time budget/.test((outcome.reason as Error).message)), 'refused at once, naming why')
  t.equal(sent, 128, 'none of them sent to the Keyv')
  stalled = false
  for (const answer of answers) answer()
  await sleep(5)
  await store.set('after', 'v')
  t.equal(sent, 129, 'sent again once the Keyv answered')
})

test('clear under a prefix: in batches, within its own time budget, and refused where the adapter cannot list keys', async (t) => {
  const keyv = new Keyv()
  const store = new KeyvStore({ keyv, prefix: 'p:' })
  for (let i = 0; i < 1200; i++) await store.set(`k${i}`, i)
  await keyv.set('other', 1)
  await store.clear()
  t.same([await store.get('k0'), await store.get('k1199'), await keyv.get('other')], [undefined, undefined, 1], 'more keys than a batch, all gone')

  const unlisted: KeyvLike = { get: async () => undefined, set: async () => true, delete: async () => true, clear: async () => { cleared++ } }
  let cleared = 0
  await t.rejects(new KeyvStore({ keyv: unlisted, prefix: 'p:' }).clear(), {
    code: 'FST_MULTICACHE_STORE', message: 'store clear failed: this Keyv\'s adapter cannot list its keys, so the keys under "p:" cannot be found; give the level a Keyv of its own'
  })
  await new KeyvStore({ keyv: unlisted }).clear()
  t.equal(cleared, 1, 'without a prefix the whole Keyv is the store\'s, and Keyv clears it')

  const stalled: KeyvLike = { ...unlisted, iterator: () => ({ next: async () => await new Promise<never>(() => {}) }) }
  await t.rejects(new KeyvStore({ keyv: stalled, prefix: 'p:', clearTimeout: 20 }).clear(), { code: 'FST_MULTICACHE_STORE', message: 'store clear failed: no answer within 20 ms' })

  // A Keyv that walks a large backend between two of this store's keys (@keyv/redis SCANs the whole database): each
  // step takes longer than an operation's budget, and the clear still ends.
  let listed = 0
  const slow: KeyvLike = {
    ...unlisted,
    iterator: () => ({ next: async () => { await sleep(30); return listed++ < 3 ? { done: false, value: [`p:k${listed}`, '1'] } : { done: true, value: undefined } } })
  }
  await new KeyvStore({ keyv: slow, prefix: 'p:', timeout: 10 }).clear()
  t.equal(listed, 4, 'every key was listed, though each step outlasted timeout')
})

test('values JSON would change are refused and nothing is stored', async (t) => {
  const keyv = new Keyv()
  const store = new KeyvStore({ keyv })
  const circular: Record<string, unknown> = {}
  circular.self = circular
  const refused = [
    [() => 1, /function/],
    [{ big: 10n }, /bigint/],
    [circular, /circular/i],
    [new Map([[1, 2]]), /Map/],
    [{ set: new Set([1]) }, /Set/],
    [{ s: Symbol('x') }, /symbol/]
  ] as const
  for (const [value, reason] of refused) {
    await t.rejects(store.set('bad', value), { code: 'FST_MULTICACHE_SERIALIZE', message: reason })
  }
  const throwsText = new KeyvStore({ keyv, serializer: { encode: () => { throw 'no' }, decode: (data) => data } }) // eslint-disable-line no-throw-literal
  await t.rejects(throwsText.set('bad', 1), { code: 'FST_MULTICACHE_SERIALIZE', message: 'cannot store the value of "bad": no' }, 'whatever a serializer throws')
  t.equal(await keyv.get('bad'), undefined, 'nothing reached Keyv')
  t.equal(await store.get('bad'), undefined)
})

test('a binary serializer (msgpackr) keeps Dates, through base64 text', async (t) => {
  const when = new Date('2026-11-24T10:00:00Z')
  const value = { when, bytes: Buffer.from([0, 1, 255]), n: 1 }
  const memory = new Keyv()
  const store = new KeyvStore({ keyv: memory, serializer: msgpack })
  await store.set('d', value)
  const back = await store.get('d') as typeof value
  t.ok(back.when instanceof Date, 'a Date')
  t.equal(back.when.getTime(), when.getTime())
  t.same([...back.bytes], [0, 1, 255])
  t.equal(typeof await memory.get('d'), 'string', 'stored as text')
  t.equal(await memory.get('d'), ':base64:' + pack(value).toString('base64'))
  t.same(await store.getMany(['d', 'missing']), [back, undefined])
})

test('a binary serializer through @keyv/redis', async (t) => {
  const when = new Date('2026-11-24T10:00:00Z')
  const found = await redisKeyv(t)
  if (found === undefined) return
  const remote = new KeyvStore({ keyv: found.keyv, serializer: msgpack })
  await remote.set('d', { when })
  const fromRedis = await remote.get('d') as { when: Date }
  t.ok(fromRedis.when instanceof Date)
  t.equal(fromRedis.when.getTime(), when.getTime(), 'and through Redis')
})

test('a custom serializer that produces text round-trips', async (t) => {
  // The Serializer contract allows `encode` to return a string; RedisStore stores it as bytes and decodes it back.
  const text: Serializer = { encode: (value) => 'T' + JSON.stringify(value), decode: (data) => JSON.parse(String(data).slice(1)) }
  const keyv = new Keyv()
  const store = new KeyvStore({ keyv, serializer: text })
  await store.set('k', { a: 1 })
  t.equal(await keyv.get('k'), 'T{"a":1}', 'the text is stored as it is')
  const back = await store.get('k').catch((error: unknown) => error)
  t.same(back, { a: 1 }, 'and read back')
})

test('an adapter that never answers fails within the time budget instead of hanging', async (t) => {
  const never = (): Promise<never> => new Promise<never>(() => {})
  const keyv = new Keyv({ store: { get: never, set: never, delete: never, clear: never, has: never } })
  const store = new KeyvStore({ keyv, timeout: 50, clearTimeout: 50 })
  const operations: Array<[string, () => Promise<unknown>]> = [
    ['get', async () => await store.get('k')],
    ['getMany', async () => await store.getMany(['k', 'l'])],
    ['set', async () => { await store.set('k', 1, 1000) }],
    ['setMany', async () => { await store.setMany([{ key: 'k', value: 1, ttl: 0 }]) }],
    ['delete', async () => { await store.delete('k') }],
    ['clear', async () => { await store.clear() }]
  ]
  for (const [name, operation] of operations) {
    const started = performance.now()
    await t.rejects(operation(), { code: 'FST_MULTICACHE_STORE', message: `store ${name} failed: no answer within 50 ms` })
    const waited = performance.now() - started
    t.ok(waited >= 45 && waited < 300, `${name} failed after ${waited.toFixed(0)} ms`)
  }
})

test('an adapter error becomes a StoreError with its cause; a Keyv without getMany or setMany is read and written key by key', async (t) => {
  const boom = new Error('boom')
  const calls: string[] = []
  const failing: KeyvLike = {
    get: async (key) => {
      calls.push(key)
      if (key === 'bad') throw boom
      if (key === 'odd') throw 'not an error' // eslint-disable-line no-throw-literal
      return key === 'k' ? '"v"' : undefined
    },
    set: async () => { throw boom },
    delete: async () => true,
    clear: async () => undefined
  }
  const store = new KeyvStore({ keyv: failing, timeout: 50 })
  t.same(await store.getMany(['k', 'missing']), ['v', undefined], 'getMany without a batch: one get per key')
  t.same(calls, ['k', 'missing'])
  const error = await store.get('bad').catch((caught: unknown) => caught) as Error & { code: string }
  t.equal(error.code, 'FST_MULTICACHE_STORE')
  t.equal(error.message, 'store get failed: boom')
  t.equal(error.cause, boom)
  await t.rejects(store.getMany(['k', 'bad']), { code: 'FST_MULTICACHE_STORE', message: 'store getMany failed: boom' })
  await t.rejects(store.get('odd'), { code: 'FST_MULTICACHE_STORE', message: 'store get failed: not an error' })
  await t.rejects(store.set('k', 1), { code: 'FST_MULTICACHE_STORE', message: 'store set failed: boom' })
  await t.rejects(store.setMany([{ key: 'k', value: 1, ttl: 0 }]), { code: 'FST_MULTICACHE_STORE', message: 'store set failed: boom' }, 'setMany without a batch: one set per key')
})
