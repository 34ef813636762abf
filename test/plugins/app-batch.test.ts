import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import Keyv from 'keyv'
import { test, type Test } from 'tap'
import { appCache, type AppCacheOptions } from '../../index.js'
import { fresh } from '../helpers/app.js'
import { Gates } from '../helpers/gate.js'
import { commandCalls, privateRedis } from '../helpers/redis.js'
import { until } from '../helpers/until.js'
import { eventually } from '../helpers/wait.js'

// appCache.getMany and getOrLoadMany over HTTP, on the memory store, Keyv, and a redis-server of the test's own whose
// commands are counted (INFO commandstats, which counts the commands a script runs too).

/** What the loader of one app did: the keys of each call, and what it answers (by key, unless `answer` says otherwise). */
interface Loads {
  calls: string[][]
  version: number
  /** Each call waits at the gate of this name first, when set. */
  hold?: string
  /** Replaces the default answer, a value per key in their order. */
  answer?: (keys: string[]) => unknown
}

/**
 * An app with `POST /many` (`getMany` of the body's keys) and `POST /load` (`getOrLoadMany` of the body's keys, with
 * the body's options), `POST /invalidate` and `POST /tag`. Errors answer 500 with their code.
 */
async function app (t: Test, options: AppCacheOptions, loads: Loads, gates = new Gates()): Promise<FastifyInstance> {
  const server = fresh(t)
  await server.register(appCache, options)
  // Typed as an array: what it answers instead is the point of some tests.
  const loader = async (keys: string[]): Promise<unknown[]> => {
    loads.calls.push(keys)
    const version = loads.version
    if (loads.hold !== undefined) await gates.get(loads.hold).pass()
    return (loads.answer?.(keys) ?? keys.map((key) => ({ key, version }))) as unknown[]
  }
  server.post('/many', async (request) => await server.appCache.getMany((request.body as { keys: string[] }).keys))
  server.post('/load', async (request) => {
    const { keys, options: callOptions } = request.body as { keys: string[], options?: Record<string, unknown> }
    return await server.appCache.getOrLoadMany(keys, loader, callOptions)
  })
  server.post('/invalidate', async (request) => { await server.appCache.invalidate((request.body as { keys: string[] }).keys); return { ok: true } })
  server.post('/tag', async (request) => { await server.appCache.invalidateTag((request.body as { tag: string }).tag); return { ok: true } })
  await server.ready()
  return server
}

async function post (server: FastifyInstance, url: string, body: unknown): Promise<{ status: number, body: unknown }> {
  const response = await server.inject({ method: 'POST', url, payload: body as object })
  return { status: response.statusCode, body: response.json() }
}

const keysOf = (count: number, prefix = 'product:'): string[] => Array.from({ length: count }, (_, i) => prefix + i)

/** A client of a redis-server of the test's own, to count its commands; undefined when the test is skipped. */
async function ownRedis (t: Test): Promise<{ url: `redis://${string}`, admin: Redis, reset: () => Promise<void> } | undefined> {
  const server = await privateRedis(t)
  if (server === undefined) return undefined
  const admin = new Redis(server.url)
  t.teardown(() => { admin.disconnect() })
  return { url: server.url, admin, reset: async () => { await admin.call('CONFIG', 'RESETSTAT') } }
}

test('getMany: 50 keys another instance wrote, with an empty memory tier, in one round trip; then from memory with none', async (t) => {
  const redis = await ownRedis(t)
  if (redis === undefined) return
  const writer = await app(t, { store: redis.url }, { calls: [], version: 1 })
  const keys = keysOf(50)
  t.equal((await post(writer, '/load', { keys })).status, 200)
  const reader = await app(t, { store: redis.url }, { calls: [], version: 1 })
  const asked = [...keys.slice(0, 25), 'missing', keys[0] as string, ...keys.slice(25)]
  await redis.reset()
  const { body } = await post(reader, '/many', { keys: asked })
  const expected = asked.map((key) => key === 'missing' ? null : { key, version: 1 })
  t.same(body, expected, 'in the order asked, a miss as undefined (null in JSON), a key asked twice answered twice')
  t.same(await commandCalls(redis.admin), { eval: 1, get: 51, pttl: 50 }, 'one EVAL: each GET and PTTL ran inside it')
  await redis.reset()
  t.same((await post(reader, '/many', { keys })).body, expected.filter((_, i) => asked[i] !== 'missing' && i !== 26))
  t.same(await commandCalls(redis.admin), {}, 'the second read: all from the memory tier, nothing sent')

  // What 50 get() calls cost the same instance with the same empty tier: a transaction (GET and PTTL) per key.
  const other = await app(t, { store: redis.url }, { calls: [], version: 1 })
  await redis.reset()
  for (const key of keys) await other.appCache.get(key)
  t.match(await commandCalls(redis.admin), { multi: 50, exec: 50 })

  const direct = await app(t, { store: redis.url, prefix: 'direct:', l1: false }, { calls: [], version: 1 })
  await direct.appCache.set('a', 1)
  await redis.reset()
  t.same(await direct.appCache.getMany(['a', 'b']), [1, undefined])
  t.same(await commandCalls(redis.admin), { mget: 1 }, 'with l1: false, one MGET')
})

test('getOrLoadMany on Redis: one read, one fence read, one loader call for the missing keys only, one write and one bus message', async (t) => {
  const redis = await ownRedis(t)
  if (redis === undefined) return
  const loads: Loads = { calls: [], version: 1 }
  const server = await app(t, { store: redis.url }, loads)
  await server.appCache.set('product:1', { key: 'product:1', version: 0 })
  await redis.reset()
  const keys = keysOf(50)
  const { status, body } = await post(server, '/load', { keys: [...keys, 'product:2'] })
  t.equal(status, 200)
  t.same(loads.calls, [keys.filter((key) => key !== 'product:1')], 'the loader had the 49 missing keys, once')
  t.same((body as unknown[])[1], { key: 'product:1', version: 0 }, 'a key held is a hit')
  t.same((body as unknown[])[50], { key: 'product:2', version: 1 })
  // The callers have their values before the write lands: it goes on behind them.
  let calls = await commandCalls(redis.admin)
  for (let i = 0; i < 200 && calls.publish === undefined; i++) calls = await sleep(5).then(async () => await commandCalls(redis.admin))
  t.same({ eval: calls.eval, publish: calls.publish, set: calls.set }, { eval: 3, publish: 1, set: 50 }, 'a read, a fence read and a fenced write, each one script (49 SETs of values, and the store-wide fence the first fence read drew); one message to the other instances')
  t.same(Object.keys(calls).filter((name) => !['eval', 'publish', 'get', 'pttl', 'set'].includes(name)), [], 'nothing else')
  await redis.reset()
  await post(server, '/load', { keys })
  t.equal(loads.calls.length, 1, 'all hits now')
  t.same(await commandCalls(redis.admin), {}, 'from the memory tier')
  const other = await app(t, { store: redis.url }, { calls: [], version: 2 })
  t.same((await post(other, '/load', { keys })).body, (await post(server, '/load', { keys })).body, 'another instance reads what was written')
  t.same(await redis.admin.pttl('fmc:app:product:3'), -1, 'no ttl: none in Redis')
  await post(server, '/load', { keys: ['ttl'], options: { ttl: '1m' } })
  // The write goes on behind the answer.
  let left = -2
  await eventually(async () => (left = await redis.admin.pttl('fmc:app:ttl')) !== -2, 1000)
  t.ok(left > 59_000 && left <= 60_000, `the call's ttl: ${left} ms`)
})

test('two concurrent getOrLoadMany share the keys in flight: the second loads only what the first is not loading', async (t) => {
  const redis = await ownRedis(t)
  if (redis === undefined) return
  const gates = new Gates()
  const loads: Loads = { calls: [], version: 1, hold: 'first' }
  const server = await app(t, { store: redis.url }, loads, gates)
  const first = post(server, '/load', { keys: ['a', 'b', 'c'] })
  await gates.get('first').reached
  loads.hold = undefined
  loads.version = 2
  const second = post(server, '/load', { keys: ['b', 'c', 'd'] })
  await until(() => loads.calls.length === 2)
  t.same(loads.calls, [['a', 'b', 'c'], ['d']], 'b and c are awaited, not loaded again')
  gates.get('first').release()
  t.same((await first).body, ['a', 'b', 'c'].map((key) => ({ key, version: 1 })))
  t.same((await second).body, [{ key: 'b', version: 1 }, { key: 'c', version: 1 }, { key: 'd', version: 2 }])
  t.same(await server.appCache.getMany(['a', 'b', 'c', 'd']), [{ key: 'a', version: 1 }, { key: 'b', version: 1 }, { key: 'c', version: 1 }, { key: 'd', version: 2 }])
})

test('a key invalidated while its batch load runs is fenced alone: the batch answers its callers and writes every other key', async (t) => {
  const redis = await ownRedis(t)
  if (redis === undefined) return
  const gates = new Gates()
  const loads: Loads = { calls: [], version: 1, hold: 'load' }
  const server = await app(t, { store: redis.url }, loads, gates)
  // Another instance makes the change: the fence in Redis refuses the write, whenever its bus message arrives here.
  const other = await app(t, { store: redis.url }, { calls: [], version: 9 })
  const pending = post(server, '/load', { keys: ['x', 'y', 'z'] })
  await gates.get('load').reached
  await post(other, '/invalidate', { keys: ['y'] })
  gates.get('load').release()
  t.same((await pending).body, ['x', 'y', 'z'].map((key) => ({ key, version: 1 })), 'the load answers the callers that started it')
  t.ok(await eventually(async () => await redis.admin.exists('fmc:app:x', 'fmc:app:z') === 2, 1000), 'x and z were written, behind the answer')
  t.equal(await redis.admin.get('fmc:app:y'), null, 'y was not: its fence moved while it loaded')
  loads.hold = undefined
  loads.version = 2
  t.same((await post(server, '/load', { keys: ['x', 'y'] })).body, [{ key: 'x', version: 1 }, { key: 'y', version: 2 }])
  t.same(loads.calls.at(-1), ['y'], 'only y is loaded again')

  // On this instance, a caller after the invalidation does not join the load that started before it.
  loads.hold = 'again'
  loads.version = 3
  const old = post(server, '/load', { keys: ['p', 'q'] })
  await gates.get('again').reached
  await post(server, '/invalidate', { keys: ['q'] })
  loads.hold = undefined
  loads.version = 4
  t.same((await post(server, '/load', { keys: ['q'] })).body, [{ key: 'q', version: 4 }], 'a new load, not the old one')
  gates.get('again').release()
  t.same((await old).body, [{ key: 'p', version: 3 }, { key: 'q', version: 3 }])
  t.same(await server.appCache.getMany(['p', 'q']), [{ key: 'p', version: 3 }, { key: 'q', version: 4 }], 'the older q was not written over the newer one')
})

test('a tag invalidated while a tagged batch load runs fences every key of it: nothing is written, the next call loads again', async (t) => {
  const redis = await ownRedis(t)
  if (redis === undefined) return
  const gates = new Gates()
  const loads: Loads = { calls: [], version: 1, hold: 'load' }
  const server = await app(t, { store: redis.url }, loads, gates)
  const pending = post(server, '/load', { keys: ['t1', 't2'], options: { tags: ['catalog'] } })
  await gates.get('load').reached
  await post(server, '/tag', { tag: 'catalog' })
  gates.get('load').release()
  t.same((await pending).body, [{ key: 't1', version: 1 }, { key: 't2', version: 1 }])
  t.equal(await redis.admin.exists('fmc:app:t1', 'fmc:app:t2'), 0, 'nothing written')
  loads.hold = undefined
  loads.version = 2
  t.same((await post(server, '/load', { keys: ['t1', 't2'], options: { tags: ['catalog'] } })).body, [{ key: 't1', version: 2 }, { key: 't2', version: 2 }])
  t.same(await server.appCache.getMany(['t1', 't2']), [{ key: 't1', version: 2 }, { key: 't2', version: 2 }], 'a load after the invalidation is kept')
  await post(server, '/tag', { tag: 'catalog' })
  t.same(await server.appCache.getMany(['t1', 't2']), [undefined, undefined], 'and goes with its tag, each entry checked as get checks it')
})

test('what a loader answers: fewer or more values fail the batch, a Map or an object is read by the keys asked, an Error fails its key', async (t) => {
  const loads: Loads = { calls: [], version: 1 }
  const server = await app(t, {}, loads)
  loads.answer = (keys) => keys.slice(1)
  t.match(await post(server, '/load', { keys: ['a', 'b', 'c'] }), { status: 500, body: { code: 'FST_MULTICACHE_BATCH_RESULT', message: 'appCache.getOrLoadMany: the loader answered 2 values for 3 keys; it must answer an array with one value per key in the order of the keys (undefined for a key it has no value for), a Map or an object by key' } })
  loads.answer = (keys) => [...keys, 'extra']
  t.match(await post(server, '/load', { keys: ['a', 'b', 'c'] }), { status: 500, body: { code: 'FST_MULTICACHE_BATCH_RESULT' } }, 'more values than keys: no value can be trusted to its key')
  loads.answer = () => 'rows'
  t.match(await post(server, '/load', { keys: ['a'] }), { status: 500, body: { message: /the loader answered "rows"/ } })
  t.same(await server.appCache.getMany(['a', 'b', 'c']), [undefined, undefined, undefined], 'nothing cached')

  loads.answer = (keys) => new Map([[keys[0], 'first'], ['not asked', 'x'], [keys[2], null]])
  t.same((await post(server, '/load', { keys: ['a', 'b', 'c'] })).body, ['first', null, null], 'b left out: a miss (null in JSON)')
  t.same(await server.appCache.getMany(['a', 'b', 'c', 'not asked']), ['first', undefined, null, undefined], 'a key not asked is never cached; b stays a miss')
  loads.answer = () => ({ b: 'bee', constructor: 'asked' })
  t.same((await post(server, '/load', { keys: ['b', 'constructor', '__proto__'] })).body, ['bee', 'asked', null], 'own properties only: __proto__ is a key left out')
  t.same(loads.calls.at(-1), ['b', 'constructor', '__proto__'])

  loads.answer = (keys) => keys.map((key) => key === 'bad' ? new Error('no such product') : key.toUpperCase())
  t.match(await post(server, '/load', { keys: ['good', 'bad'] }), { status: 500, body: { message: 'no such product' } }, 'a call with a failed key fails')
  t.same(await server.appCache.getMany(['good', 'bad']), ['GOOD', undefined], 'the other keys are cached')
  t.equal(server.multiCache.stats().app?.loadErrors, 3 + 3 + 1 + 1, 'the failed batches of 3, 3 and 1 keys count per key, and the failed key its own')
})

test('a loader that throws: every waiter gets its error, nothing is cached, the next call loads again', async (t) => {
  const gates = new Gates()
  const loads: Loads = { calls: [], version: 1, hold: 'load' }
  const server = await app(t, {}, loads, gates)
  loads.answer = () => { throw new Error('database down') }
  const first = post(server, '/load', { keys: ['a', 'b'] })
  await gates.get('load').reached
  const joined = post(server, '/load', { keys: ['b'] })
  await until(() => server.multiCache.stats().app?.misses === 3)
  const single = server.appCache.getOrLoad('a', () => 'never called').catch((error: unknown) => error)
  gates.get('load').release()
  t.match(await first, { status: 500, body: { message: 'database down' } })
  t.match(await joined, { status: 500, body: { message: 'database down' } }, 'a batch that joined it')
  t.match(await single, { message: 'database down' }, 'and getOrLoad of one of its keys')
  t.equal(loads.calls.length, 1)
  loads.answer = undefined
  loads.hold = undefined
  t.same((await post(server, '/load', { keys: ['a', 'b'] })).body, [{ key: 'a', version: 1 }, { key: 'b', version: 1 }])
  t.same(loads.calls.length, 2, 'nothing was cached: loaded again')
})

test('hostile input: a list of 100,000 keys is refused whole before any key is read, and no key bypasses maxKeyLength', async (t) => {
  const redis = await ownRedis(t)
  if (redis === undefined) return
  const loads: Loads = { calls: [], version: 1 }
  const server = await app(t, { store: redis.url, maxKeyLength: 20 }, loads)
  const huge = Array.from({ length: 100_000 }, (_, i) => String(i))
  await redis.reset()
  const heap = process.memoryUsage().heapUsed
  for (const url of ['/load', '/many']) {
    const method = url === '/load' ? 'getOrLoadMany' : 'getMany'
    t.match(await post(server, url, { keys: huge }), {
      status: 500,
      body: { code: 'FST_MULTICACHE_TOO_MANY_KEYS', message: `appCache.${method}: 100000 keys in one call, more than maxKeysPerCall (1000): split the list, or raise maxKeysPerCall` }
    })
  }
  t.ok(process.memoryUsage().heapUsed - heap < 50 * 1024 * 1024, 'no memory held for them')
  t.same(await commandCalls(redis.admin), {}, 'nothing reached Redis')
  t.same(loads.calls, [])
  t.equal((await post(server, '/load', { keys: huge.slice(0, 1000) })).status, 200, 'exactly maxKeysPerCall is taken')
  t.match(await post(server, '/load', { keys: huge.slice(0, 1001) }), { body: { code: 'FST_MULTICACHE_TOO_MANY_KEYS' } }, 'one more is not')
  t.match(await post(server, '/load', { keys: ['ok', 'x'.repeat(21)] }), { status: 500, body: { code: 'FST_MULTICACHE_INVALID_KEY', message: 'cache key of 21 characters is longer than maxKeyLength (20)' } })
  t.match(await post(server, '/many', { keys: ['ok', ''] }), { body: { code: 'FST_MULTICACHE_INVALID_KEY' } })
  t.match(await post(server, '/many', { keys: 'a,b' }), { body: { code: 'FST_MULTICACHE_INVALID_KEY', message: 'appCache.getMany: keys must be an array, got "a,b"' } })
  t.equal(loads.calls.length, 1, 'no loader call for a refused list')

  const raised = await app(t, { maxKeysPerCall: 100_000 }, loads)
  t.equal((await post(raised, '/many', { keys: huge })).status, 200, 'maxKeysPerCall raises the bound')
  await t.rejects(app(t, { maxKeysPerCall: 0 }, loads), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /appCache: option "maxKeysPerCall" must be a positive integer/ })
})

test('lock: true across two instances: the keys one instance is loading are taken from it by the other, per key', async (t) => {
  const redis = await ownRedis(t)
  if (redis === undefined) return
  const gates = new Gates()
  const loadsA: Loads = { calls: [], version: 1, hold: 'a' }
  const loadsB: Loads = { calls: [], version: 2 }
  const a = await app(t, { store: redis.url, lock: true }, loadsA, gates)
  const b = await app(t, { store: redis.url, lock: true }, loadsB, gates)
  const fromA = post(a, '/load', { keys: ['k1', 'k2'] })
  await gates.get('a').reached
  const fromB = post(b, '/load', { keys: ['k1', 'k2', 'k3'] })
  await until(() => loadsB.calls.length === 1, 2000)
  t.same(loadsB.calls, [['k3']], 'B loads only the key no instance holds the lock of')
  gates.get('a').release()
  t.same((await fromA).body, [{ key: 'k1', version: 1 }, { key: 'k2', version: 1 }])
  t.same((await fromB).body, [{ key: 'k1', version: 1 }, { key: 'k2', version: 1 }, { key: 'k3', version: 2 }], 'and waits for the others, written by A')
  t.equal(await redis.admin.exists('fmc-lock:fmc:app:k1'), 0)
  t.same((await redis.admin.keys('fmc-lock:*')), [], 'every lock released')

  // A holder that let go without a value: the waiter loads what is left itself, in one more call.
  loadsA.hold = 'a2'
  loadsA.answer = (keys) => keys.map(() => undefined)
  const empty = post(a, '/load', { keys: ['m1', 'm2'] })
  await gates.get('a2').reached
  const waiter = post(b, '/load', { keys: ['m1', 'm2'] })
  await sleep(60)
  gates.get('a2').release()
  t.same((await empty).body, [null, null])
  t.same((await waiter).body, [{ key: 'm1', version: 2 }, { key: 'm2', version: 2 }])
  t.same(loadsB.calls.at(-1), ['m1', 'm2'])
})

test('staleWhileRevalidate, graceOnError and hardTimeout apply per key, as in getOrLoad', async (t) => {
  const gates = new Gates()
  const loads: Loads = { calls: [], version: 1 }
  const server = await app(t, {}, loads, gates)
  const stale = { ttl: 40, staleWhileRevalidate: '1m' }
  await post(server, '/load', { keys: ['s1', 's2'], options: stale })
  await post(server, '/load', { keys: ['fresh'], options: { ttl: '1m' } })
  await sleep(60)
  loads.version = 2
  loads.hold = 'background'
  const served = await post(server, '/load', { keys: ['s1', 'fresh', 's2'], options: stale })
  t.same(served.body, [{ key: 's1', version: 1 }, { key: 'fresh', version: 1 }, { key: 's2', version: 1 }], 'stale values served at once, while the background load waits at its gate')
  t.same(loads.calls.at(-1), ['s1', 's2'], 'the stale keys loaded together in the background')
  t.same((await post(server, '/load', { keys: ['s2', 's1'], options: stale })).body, [{ key: 's2', version: 1 }, { key: 's1', version: 1 }])
  t.equal(loads.calls.length, 3, 'one background load at a time')
  gates.get('background').release()
  await until(() => server.multiCache.stats().app?.backgroundLoads === 2)
  await sleep(5)
  loads.hold = undefined
  t.same(await server.appCache.getMany(['s1', 's2']), [{ key: 's1', version: 2 }, { key: 's2', version: 2 }], 'the background load landed')

  await post(server, '/load', { keys: ['g1', 'g2'], options: { ttl: 30, graceOnError: '1m' } })
  await sleep(50)
  loads.answer = (keys) => keys.map((key) => key === 'g1' ? new Error('g1 failed') : { key, version: 3 })
  t.same((await post(server, '/load', { keys: ['g1', 'g2'], options: { ttl: 30, graceOnError: '1m' } })).body, [{ key: 'g1', version: 2 }, { key: 'g2', version: 3 }], 'the failed key gets its grace value, the other its new one')
  t.equal(server.multiCache.stats().app?.graceServed, 1)

  loads.answer = undefined
  loads.hold = 'slow'
  const started = performance.now()
  t.match(await post(server, '/load', { keys: ['h1'], options: { hardTimeout: 50 } }), { status: 504, body: { code: 'FST_MULTICACHE_LOAD_TIMEOUT' } })
  t.ok(performance.now() - started < 1000, 'rejected at the timeout, not when the load ends')
  gates.get('slow').release()
})

test('a Redis that does not answer: what the memory tier holds is still served, the rest loaded and written nowhere', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const loads: Loads = { calls: [], version: 1 }
  const cache = await app(t, { store: server.url, timeout: 50, breaker: false }, loads)
  await post(cache, '/load', { keys: ['a', 'b'] })
  // Redis answers in order: once this read is answered, the write of the load before it has landed, and is in memory.
  t.same(await cache.appCache.getMany(['a', 'b']), [{ key: 'a', version: 1 }, { key: 'b', version: 1 }])
  server.pause()
  t.teardown(() => { server.resume() })
  loads.version = 2
  const started = performance.now()
  const { status, body } = await post(cache, '/load', { keys: ['a', 'b', 'c'] })
  const took = performance.now() - started
  t.equal(status, 200)
  t.same(body, [{ key: 'a', version: 1 }, { key: 'b', version: 1 }, { key: 'c', version: 2 }], 'a and b from memory, c from the loader')
  t.same(loads.calls.at(-1), ['c'])
  t.ok(took < 1000, `answered in ${took.toFixed(0)} ms: the batch read's budget, then c's own`)
  server.resume()
  const admin = new Redis(server.url)
  t.teardown(() => { admin.disconnect() })
  t.equal(await admin.exists('fmc:app:c'), 0, 'c, loaded while Redis could not vouch for its fence, was written nowhere')
  t.ok((cache.multiCache.stats().app?.storeErrors ?? 0) >= 2, 'the failed reads are counted')
})

test('Keyv: the loaded values go back in one setMany; memory: getMany reloads a defined key with its own loader', async (t) => {
  const keyv = new Keyv()
  const batches: number[] = []
  const setMany = keyv.setMany.bind(keyv)
  keyv.setMany = async (entries) => { batches.push(entries.length); return await setMany(entries) }
  const loads: Loads = { calls: [], version: 1 }
  const server = await app(t, { store: keyv }, loads)
  t.same((await post(server, '/load', { keys: ['a', 'b', 'c'] })).body, ['a', 'b', 'c'].map((key) => ({ key, version: 1 })))
  await until(() => batches.length === 1)
  t.same(batches, [3], 'one setMany of the three values')
  t.same(await server.appCache.getMany(['c', 'a']), [{ key: 'c', version: 1 }, { key: 'a', version: 1 }])

  const memory = fresh(t)
  await memory.register(appCache)
  let version = 0
  memory.appCache.define('rates', () => ({ version: ++version }), { ttl: 30 })
  await memory.ready()
  await memory.appCache.set('other', 1)
  t.same(await memory.appCache.getMany(['rates', 'other', 'none']), [{ version: 1 }, 1, undefined])
  await sleep(50)
  t.same(await memory.appCache.getMany(['rates', 'other']), [{ version: 2 }, 1], 'the defined key expired: loaded again by its loader, as get() does')
  t.match(memory.multiCache.stats().app, { hits: 3, misses: 2 }, 'the reload counted as get() counts it')
})
