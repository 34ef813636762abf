import { setTimeout as sleep } from 'node:timers/promises'
import fastifyRedis from '@fastify/redis'
import Fastify, { type FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import Keyv from 'keyv'
import { test, type Test } from 'tap'
import multiCache, { appCache, sessionCache, type MultiCacheOptions } from '../../index.js'
import { MAX_WAITING } from '../../lib/budget.js'
import { sessionStoreKey } from '../../lib/keys.js'
import { captureLogs, cookieOf, fresh, secret } from '../helpers/app.js'
import { REDIS_URL, privateRedis, redisFor, uniquePrefix } from '../helpers/redis.js'

/** One instance of the same app: sessions and the application level in the Redis at `url`, under `prefix`. */
async function instance (t: Test, prefix: string, extra: MultiCacheOptions = {}, url = REDIS_URL): Promise<FastifyInstance> {
  const app = fresh(t)
  await app.register(multiCache, {
    session: { secret, store: url, prefix: prefix + 's:', ...(extra.session === false ? {} : extra.session) },
    app: { store: url, prefix: prefix + 'a:', ...(extra.app === false ? {} : extra.app) }
  })
  app.post('/cart/:item', async (request) => {
    const cart = await request.sessionCache.get<string[]>('cart') ?? []
    await request.sessionCache.set('cart', [...cart, (request.params as { item: string }).item])
    return { id: request.sessionCache.id }
  })
  app.get('/cart', async (request) => ({ cart: await request.sessionCache.get('cart') ?? null, id: request.sessionCache.id ?? null }))
  app.post('/login', async (request) => {
    await request.sessionCache.regenerate()
    return { id: request.sessionCache.id }
  })
  await app.ready()
  return app
}

/** A client of a test's own server, which the test kills: its reconnect errors are expected. */
function quiet (client: Redis): Redis {
  client.on('error', () => {})
  return client
}

/** Polls until `done` holds, returning how long it took; fails the test past `limit` ms. */
async function within (t: Test, limit: number, done: () => Promise<boolean>): Promise<number> {
  const started = performance.now()
  while (!(await done())) {
    if (performance.now() - started > limit * 5) {
      t.fail(`not done within ${limit * 5} ms`)
      break
    }
    await sleep(2)
  }
  return performance.now() - started
}

test('a session created through instance A is read, extended and regenerated through instance B', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, prefix, { session: { ttl: '2s', l1: false } })
  const b = await instance(t, prefix, { session: { ttl: '2s', l1: false } })

  const created = await a.inject({ method: 'POST', url: '/cart/apple' })
  const cookie = cookieOf(created.headers) as string
  const id = created.json().id as string
  const hash = prefix + 's:' + sessionStoreKey(id)
  t.equal(await redis.type(hash), 'hash', 'one Redis hash per session, under a hash of the id')
  t.equal(await redis.exists(prefix + 's:' + id), 0, 'the raw id is no key')

  await b.inject({ method: 'POST', url: '/cart/pear', headers: { cookie } })
  t.same((await a.inject({ url: '/cart', headers: { cookie } })).json(), { cart: ['apple', 'pear'], id })

  const before = await redis.pttl(hash)
  t.ok(before > 1500 && before <= 2000, `the inactivity ttl is set in Redis: ${before}`)
  await sleep(400)
  t.ok(await redis.pttl(hash) <= 1600, 'time passes')
  await b.inject({ url: '/cart', headers: { cookie } })
  t.ok(await redis.pttl(hash) > 1800, 'a read through B restarts the expiry in Redis (rolling)')

  const login = await b.inject({ method: 'POST', url: '/login', headers: { cookie } })
  const renewed = cookieOf(login.headers) as string
  t.not(renewed, cookie)
  t.same((await a.inject({ url: '/cart', headers: { cookie: renewed } })).json().cart, ['apple', 'pear'], 'the data follows the new id')
  t.same((await a.inject({ url: '/cart', headers: { cookie } })).json(), { cart: null, id: null }, 'the old id is worth nothing')
  t.equal(await redis.exists(hash), 0, 'and its hash is gone')
})

test('with memory tiers, a change on one instance reaches the other within 100 ms', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  let version = 0
  const define = (app: FastifyInstance): void => { app.appCache.define('menu', () => ({ version: ++version }), { refreshInterval: '1h' }) }
  const a = fresh(t)
  const b = fresh(t)
  for (const app of [a, b]) {
    await app.register(appCache, { store: REDIS_URL, prefix })
    define(app)
    await app.ready()
  }
  await a.appCache.set('rate', 1.1)
  await sleep(20) // let A's own announcement of 'rate' reach B first: B does not keep a value read before a message
  const held = b.multiCache.stats().app?.size ?? 0
  t.equal(await b.appCache.get('rate'), 1.1, 'B reads it from Redis, and keeps it in memory')
  t.equal(b.multiCache.stats().app?.size, held + 1, "B's memory tier holds it")

  await a.appCache.delete('rate')
  const deleted = await within(t, 100, async () => await b.appCache.get('rate') === undefined)
  t.ok(deleted < 100, `B stopped serving the deleted key after ${deleted.toFixed(1)} ms`)

  await a.appCache.set('rate', 1.2)
  const changed = await within(t, 100, async () => await b.appCache.get('rate') === 1.2)
  t.ok(changed < 100, `B serves the new value after ${changed.toFixed(1)} ms`)

  const before = (await b.appCache.get<{ version: number }>('menu'))?.version
  const refreshed = (await a.appCache.refresh<{ version: number }>('menu')).version
  t.ok(refreshed > (before ?? 0))
  const seen = await within(t, 100, async () => (await b.appCache.get<{ version: number }>('menu'))?.version === refreshed)
  t.ok(seen < 100, `a background refresh on A reaches B after ${seen.toFixed(1)} ms`)

  await a.appCache.set('x', 1)
  await a.appCache.set('y', 2)
  t.equal(await b.appCache.get('x'), 1)
  await a.appCache.invalidate(['x', 'y'])
  await within(t, 100, async () => await b.appCache.get('x') === undefined && await b.appCache.get('y') === undefined)
  t.equal(await redis.exists(prefix + 'x', prefix + 'y'), 0, 'invalidate removes the keys from Redis in one call')
  await a.appCache.set('z', 3)
  t.equal(await b.appCache.get('z'), 3)
  await a.appCache.clear()
  await within(t, 100, async () => await b.appCache.get('z') === undefined)
  t.pass('clear on A empties B')
})

test('a cold key hit by many concurrent requests across two instances is loaded once with the lock', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  let calls = 0
  const apps: FastifyInstance[] = []
  for (let i = 0; i < 2; i++) {
    const app = fresh(t)
    await app.register(appCache, { store: REDIS_URL, prefix, lock: { wait: '2s' } })
    app.get('/catalog', async () => await app.appCache.getOrLoad('catalog', async () => {
      calls++
      await sleep(100)
      return { items: 1000 }
    }))
    await app.ready()
    apps.push(app)
  }
  const responses = await Promise.all(Array.from({ length: 200 }, async (_, i) => await (apps[i % 2] as FastifyInstance).inject('/catalog')))
  t.ok(responses.every((r) => r.statusCode === 200 && r.body === '{"items":1000}'))
  t.equal(calls, 1, 'one loader call across both instances')
  t.same(await redis.keys('fmc-lock:' + prefix + 'catalog*'), [], 'the lock is released')

  // Without the lock each instance loads once: the lock is what made it one.
  const unlocked = uniquePrefix(t)
  let unlockedCalls = 0
  const plain = await Promise.all([0, 1].map(async () => {
    const app = fresh(t)
    await app.register(appCache, { store: REDIS_URL, prefix: unlocked })
    await app.ready()
    return app
  }))
  await Promise.all(Array.from({ length: 20 }, async (_, i) => await (plain[i % 2] as FastifyInstance).appCache.getOrLoad('k', async () => {
    unlockedCalls++
    await sleep(50)
    return 1
  })))
  t.equal(unlockedCalls, 2)
  // A miss's write-back goes on behind its callers: let it land before the prefix is cleaned up.
  await within(t, 200, async () => await redis.exists(unlocked + 'k') === 1)

  // A holder slower than the others' wait: they stop waiting and load for themselves, so nobody waits unbounded.
  const slow = uniquePrefix(t)
  let slowCalls = 0
  const impatient = await Promise.all([0, 1].map(async () => {
    const app = fresh(t)
    await app.register(appCache, { store: REDIS_URL, prefix: slow, lock: { wait: '100ms' } })
    await app.ready()
    return app
  }))
  const values = await Promise.all(impatient.map(async (app) => await app.appCache.getOrLoad('k', async () => {
    slowCalls++
    await sleep(400)
    return 'v'
  })))
  t.same(values, ['v', 'v'])
  t.equal(slowCalls, 2, 'the waiter loaded itself after its bounded wait')
  await within(t, 200, async () => await redis.exists(slow + 'k') === 1)
})

test('sessions with memory tiers: a change through one instance is what the other serves next', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, prefix)
  const b = await instance(t, prefix)
  const cookie = cookieOf((await a.inject({ method: 'POST', url: '/cart/apple' })).headers) as string
  await sleep(20) // A's announcement of its write reaches B first: B does not keep what it read before a message
  t.same((await b.inject({ url: '/cart', headers: { cookie } })).json().cart, ['apple'], 'B reads the session and keeps it in memory')
  t.equal(b.multiCache.stats().session?.size, 1)
  await a.inject({ method: 'POST', url: '/cart/pear', headers: { cookie } })
  const took = await within(t, 100, async () => String((await b.inject({ url: '/cart', headers: { cookie } })).json().cart) === 'apple,pear')
  t.ok(took < 100, `B serves the new cart after ${took.toFixed(1)} ms`)
})

test('with the lock, one instance refreshes a defined key per interval for all of them', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  let loads = 0
  const apps = await Promise.all([0, 1].map(async () => {
    const app = fresh(t)
    await app.register(appCache, { store: REDIS_URL, prefix, lock: true })
    app.appCache.define('menu', () => ({ version: ++loads }), { refreshInterval: '100ms' })
    await app.ready()
    return app
  }))
  const afterPreload = loads
  await sleep(1000)
  const refreshes = loads - afterPreload
  t.ok(refreshes >= 3 && refreshes <= 12, `${refreshes} refreshes in 1 s at 100 ms, for two instances (20 without the lease)`)
  let pttl = -2
  await within(t, 100, async () => (pttl = await redis.pttl('fmc-lease:' + prefix + 'menu')) > 0)
  t.ok(pttl > 0 && pttl <= 90, `the lease lives 90 % of the interval: ${pttl}`)
  const [a, b] = apps as [FastifyInstance, FastifyInstance]
  await within(t, 100, async () => {
    const [x, y] = await Promise.all([a.appCache.get<{ version: number }>('menu'), b.appCache.get<{ version: number }>('menu')])
    return x?.version === y?.version
  })
  t.pass('both instances serve the same version')
})

test('fastify.close() closes every connection it opened and none that it did not', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const observer = quiet(new Redis(server.url))
  t.teardown(() => { observer.disconnect() })
  const clients = async (): Promise<number> => String(await observer.call('CLIENT', 'LIST')).trim().split('\n').length
  const mine = quiet(new Redis(server.url))
  t.teardown(() => { mine.disconnect() })
  await mine.ping()
  const before = await clients()
  t.equal(before, 2)

  const app = fresh(t)
  await app.register(multiCache, {
    session: { secret, store: server.url },
    app: { store: mine }
  })
  await app.ready()
  t.equal(await clients(), before + 3, "a client for the session URL and its subscriber (the strict memory tier's leases), a subscriber beside the app's client")
  await app.close()
  await within(t, 200, async () => await clients() === before)
  t.equal(mine.status, 'ready', "the app's own client stays open")
  t.equal(await mine.ping(), 'PONG')
})

test('store: "redis" uses @fastify/redis, a named namespace, and fails clearly without it', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const app = fresh(t)
  await app.register(fastifyRedis, { url: REDIS_URL })
  await app.register(fastifyRedis, { url: REDIS_URL, namespace: 'cache' })
  await app.register(appCache, { store: 'redis', redisNamespace: 'cache', prefix, l1: false })
  await app.ready()
  await app.appCache.set('k', { v: 1 }, { ttl: '10s' })
  const pttl = await redis.pttl(prefix + 'k')
  t.ok(pttl > 9000 && pttl <= 10_000, `SET … PX in Redis: ${pttl}`)
  t.same(await app.appCache.get('k'), { v: 1 })

  const bare = fresh(t)
  await t.rejects(async () => { await bare.register(appCache, { store: 'redis' }).ready() }, {
    code: 'FST_MULTICACHE_INVALID_OPTION', message: /appCache: option "store" is 'redis' but no client was found at fastify.redis: register @fastify\/redis first/
  })
  const named = fresh(t)
  await named.register(fastifyRedis, { url: REDIS_URL })
  await t.rejects(async () => { await named.register(sessionCache, { secret, store: 'redis', redisNamespace: 'nope' }).ready() }, {
    message: /sessionCache: option "store" is 'redis' but no client was found at fastify.redis\['nope'\]/
  })
})

test('shared-store options are checked at registration and name what was expected', async (t) => {
  const cases: Array<[object, RegExp]> = [
    [{ store: 'memory', timeout: 0 }, /appCache: option "timeout" must be greater than 0/],
    [{ timeout: 'soon' }, /appCache: option "timeout" must be a number of milliseconds/],
    [{ prefix: '' }, /appCache: option "prefix" must be a non-empty string/],
    [{ serializer: { encode: JSON.stringify } }, /appCache: option "serializer" must be an object with encode\(value\) and decode\(data\) functions/],
    [{ store: new Keyv(), l1: { ttl: 0 } }, /appCache \(l1\): option "ttl" must be greater than 0/],
    [{ store: new Keyv(), l1: { size: 1 } }, /appCache \(l1\): option "size" is not an option/],
    [{ lock: true }, /appCache: option "lock" needs a Redis store/],
    [{ store: 42 }, /appCache: option "store" must be 'memory', 'redis' .*, got 42/]
  ]
  for (const [options, message] of cases) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(appCache, options).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message }, JSON.stringify(options))
  }
})

test('a stalled Redis: requests are answered by the loader within the budget, logged once, and caching resumes', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(appCache, { store: server.url, timeout: 100, l1: false })
  let loads = 0
  app.get('/p/:id', async (request) => {
    const { id } = request.params as { id: string }
    return await app.appCache.getOrLoad(`p:${id}`, async () => {
      loads++
      await sleep(30)
      return { id, load: loads }
    })
  })
  await app.ready()
  t.same((await app.inject('/p/1')).json(), { id: '1', load: 1 })
  t.same((await app.inject('/p/1')).json(), { id: '1', load: 1 }, 'cached')

  server.pause()
  const started = performance.now()
  const during = await Promise.all([1, 2, 3, 4, 5].map(async () => await app.inject('/p/1')))
  const took = performance.now() - started
  t.ok(during.every((r) => r.statusCode === 200 && r.json().id === '1'), 'every request answered, by the loader')
  t.ok(took < 1000, `no hang: five requests took ${took.toFixed(0)} ms with a 100 ms budget`)
  t.equal(loads, 2, 'concurrent misses still share one load')
  t.ok((app.multiCache.stats().app?.storeErrors ?? 0) >= 2, 'the failed read and write are counted')
  t.equal(logs.lines.filter((line) => /the store failed/.test(String(line.msg))).length, 1, 'logged once for the burst')

  server.resume()
  // The circuit breaker opened during the pause: caching resumes after its cool-down, with its first probe.
  let cachedAgain = false
  let key = 1
  await within(t, 400, async () => {
    const before = loads
    const url = `/p/again-${key++}`
    await app.inject(url)
    await sleep(5) // a miss does not wait for its write-back
    cachedAgain = (await app.inject(url)).json().load === before + 1 && loads === before + 1
    return cachedAgain
  })
  t.ok(cachedAgain, 'after SIGCONT values are cached again')
})

test('a paused Redis under load with the circuit breaker off: every request answered, and the commands ioredis holds stop growing', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const app = fresh(t, { logger: { level: 'fatal' } })
  await app.register(fastifyRedis, { url: server.url, maxRetriesPerRequest: 1 })
  await app.register(appCache, { store: 'redis', timeout: 20, breaker: false, l1: false })
  app.get('/p/:id', async (request) => await app.appCache.getOrLoad(`p:${(request.params as { id: string }).id}`, async () => 'loaded'))
  await app.ready()
  const held = (): number => (app.redis as unknown as { commandQueue: { length: number } }).commandQueue.length
  server.pause()
  const wave = async (n: number): Promise<void> => {
    const answers = await Promise.all(Array.from({ length: 400 }, async (_, i) => await app.inject(`/p/${n}-${i}`)))
    t.ok(answers.every((answer) => answer.statusCode === 200 && answer.body === 'loaded'), `wave ${n}: every request answered by the loader`)
  }
  for (let n = 0; n < 3; n++) await wave(n)
  await sleep(50)
  const afterThree = held()
  for (let n = 3; n < 8; n++) await wave(n)
  await sleep(50)
  t.ok(afterThree <= MAX_WAITING + 800, `bounded: ${afterThree} commands held (${MAX_WAITING} operations waiting at most once Redis is behind, and those of the first wave, sent before it was)`)
  t.equal(held(), afterThree, 'five more waves of requests queue nothing more')
  server.resume()
  await within(t, 2000, async () => held() === 0)
  t.equal((await app.inject('/p/again')).body, 'loaded')
})

test('a session write that cannot reach Redis answers 503, with Retry-After while the circuit breaker is open', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const app = fresh(t, { logger: { level: 'fatal' } })
  await app.register(sessionCache, { secret, store: server.url, timeout: 50, breaker: { failures: 2, coolDown: '3s' } })
  app.post('/cart', async (request) => { await request.sessionCache.set('cart', ['apple']); return 'ok' })
  await app.ready()
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/cart' })).headers) as string

  server.pause()
  const answers = []
  for (let i = 0; i < 4; i++) {
    const response = await app.inject({ method: 'POST', url: '/cart', headers: { cookie } })
    answers.push([response.statusCode, response.json().code, response.headers['retry-after']])
  }
  t.same(answers.slice(0, 2), [[503, 'FST_MULTICACHE_STORE', undefined], [503, 'FST_MULTICACHE_STORE', undefined]], 'a timeout: 503, and no time to retry after')
  t.same(answers.slice(2), [[503, 'FST_MULTICACHE_STORE', '3'], [503, 'FST_MULTICACHE_STORE', '3']], 'the breaker open: 503, and when it probes the store again')
  server.resume()
})

test('sessions in Redis: a value the serializer refuses fails its write and leaves nothing behind', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const app = fresh(t)
  await app.register(sessionCache, { secret, store: REDIS_URL, prefix })
  app.post('/bad', async (request) => {
    await request.sessionCache.set('ok', 1)
    const error = await request.sessionCache.set('when', new Map()).catch((e: { code: string }) => e.code)
    return { error, when: await request.sessionCache.get('when') ?? null, ok: await request.sessionCache.get('ok') }
  })
  const response = await app.inject({ method: 'POST', url: '/bad' })
  t.same(response.json(), { error: 'FST_MULTICACHE_SERIALIZE', when: null, ok: 1 })
  const keys = await redis.keys(prefix + '*')
  t.equal(keys.length, 1)
  t.same(Object.keys(await redis.hgetall(keys[0] as string)).sort(), ['', '#', 'd:ok'], 'only the fence, the version and the good entry')
})

test('any Keyv backs a level; what JSON changes is what the README says', async (t) => {
  const keyv = new Keyv()
  const app = fresh(t)
  await app.register(appCache, { store: keyv })
  await app.ready()
  await app.appCache.set('when', { at: new Date(0) })
  t.same(await app.appCache.get('when'), { at: '1970-01-01T00:00:00.000Z' })
  t.equal(typeof await keyv.get('fmc:app:when'), 'string', 'Keyv holds our serialized text, under the prefix')
  await t.rejects(app.appCache.set('f', { f: () => 1 }), { code: 'FST_MULTICACHE_SERIALIZE' })
  t.equal(await keyv.get('fmc:app:f'), undefined)
})

test('fastify.close() does not wait for a paused Redis', async (t) => {
  t.setTimeout(15_000)
  const server = await privateRedis(t)
  if (server === undefined) return
  const app = Fastify()
  await app.register(multiCache, { session: { secret, store: server.url }, app: { store: server.url, lock: true } })
  app.get('/v', async () => await app.appCache.getOrLoad('v', () => 'v'))
  await app.ready()
  t.equal((await app.inject('/v')).body, 'v')
  server.pause()
  t.equal((await app.inject('/v')).statusCode, 200, 'requests are answered while Redis is paused')
  // With a QUIT that waits for an answer, this would hang until Redis resumes (the test's own timeout fails it).
  await app.close()
  server.resume()
  t.pass('closed while Redis was still paused')
})

test('with l1: false a read of the application level is one GET: the bus it keeps asks Redis for nothing more', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const admin = new Redis(server.url)
  t.teardown(() => { admin.disconnect() })
  const app = fresh(t)
  await app.register(appCache, { store: server.url, l1: false })
  await app.ready()
  await app.appCache.set('rates', { eur: 1 })
  await admin.call('CONFIG', 'RESETSTAT')
  for (let i = 0; i < 10; i++) t.same(await app.appCache.get('rates'), { eur: 1 })
  const stats = await admin.call('INFO', 'commandstats') as string
  const calls = Object.fromEntries([...stats.matchAll(/cmdstat_(\w+):calls=(\d+)/g)].map(([, name, count]) => [name, Number(count)]))
  // The admin's own INFO and CONFIG count too; the app sent the GETs and nothing else.
  t.same(Object.keys(calls).filter((name) => !['info', 'config'].includes(name)), ['get'], 'no PTTL nor MULTI beside the reads')
  t.equal(calls.get, 10)
})
