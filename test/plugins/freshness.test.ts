import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { test, type Test } from 'tap'
import multiCache, { appCache, sessionCache } from '../../index.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'
import { Redis } from 'ioredis'
import { REDIS_URL, privateRedis, redisFor, uniquePrefix } from '../helpers/redis.js'
import { until } from '../helpers/until.js'
import { eventually } from '../helpers/wait.js'

async function instance (t: Test, prefix: string, options: { l1?: false } = {}): Promise<ReturnType<typeof fresh>> {
  const app = fresh(t)
  await app.register(appCache, { store: REDIS_URL, prefix, ...options })
  await app.ready()
  return app
}

for (const options of [{}, { l1: false as const }]) {
  test(`two instances sharing Redis (${JSON.stringify(options)}): invalidateTag on one drops the tagged entries on the other within 100 ms`, async (t) => {
    const redis = await redisFor(t)
    if (redis === undefined) return
    const prefix = uniquePrefix(t)
    const a = await instance(t, prefix, options)
    const b = await instance(t, prefix, options)
    await a.appCache.set('p1', 'shoe', { tags: ['product:1'] })
    await a.appCache.set('p2', 'sock', { tags: ['product:2'] })
    t.equal(await b.appCache.get('p1'), 'shoe', 'B reads it (and keeps it in its memory tier)')
    t.equal(await b.appCache.get('p2'), 'sock')
    await a.appCache.invalidateTag('product:1')
    const took = await until(() => b.appCache.tags.of(['product:1']).versions[0] === 1, 100)
    t.ok(took < 100, `B heard of it in ${took.toFixed(1)} ms`)
    t.equal(await b.appCache.get('p1'), undefined, 'B no longer serves the tagged entry')
    t.equal(await b.appCache.get('p2'), 'sock', 'nor drops the others')
    t.same(await redis.hgetall(`fmc-fence:${prefix}#tags`), { '': b.appCache.tags.of([]).epoch, 'product:1': '1' }, 'the versions live in Redis, with the epoch they count in')

    const c = await instance(t, prefix, options)
    t.equal(await c.appCache.get('p1'), undefined, 'an instance started later reads the versions at start')
    await c.appCache.set('p1', 'new shoe', { tags: ['product:1'] })
    // B's memory tier drops its old copy when C's write is announced, within a few ms.
    let seen: unknown
    for (let i = 0; i < 50 && seen !== 'new shoe'; i++) {
      seen = await b.appCache.get('p1')
      if (seen !== 'new shoe') await sleep(2)
    }
    t.equal(seen, 'new shoe', 'an entry written after the invalidation is current everywhere')
  })
}

test('stale-while-revalidate in Redis: the entry lives ttl + window, with its fresh-until time beside the value', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const a = await instance(t, prefix)
  const b = await instance(t, prefix)
  let loads = 0
  const load = async (): Promise<number> => { await sleep(20); return ++loads }
  const options = { ttl: 100, staleWhileRevalidate: '10s' as const }
  t.equal(await a.appCache.getOrLoad('rates', load, options), 1)
  // The write goes on behind the answer.
  let pttl = -2
  await eventually(async () => (pttl = await redis.pttl(prefix + 'rates')) !== -2, 1000)
  t.ok(pttl > 9000 && pttl <= 10_100, `Redis keeps it ttl + window (${pttl} ms left)`)
  const held = JSON.parse(await redis.get(prefix + 'rates') as string) as { v: number, f: number, s: number }
  t.ok(held.f > Date.now() && held.s - held.f === 10_000, 'fresh-until and stale-until are stored with it')
  await sleep(120)
  t.equal(await b.appCache.getOrLoad('rates', load, options), 1, 'another instance agrees it is stale: served at once')
  t.equal(await a.appCache.getOrLoad('rates', load, options), 1)
  await until(() => loads >= 2, 1000)
  await sleep(40)
  t.ok(await b.appCache.getOrLoad('rates', load, options) > 1, 'then a new value')
  t.ok(loads <= 3, `background loads: ${loads - 1}, one per stale instance at most`)
})

test('session level and lookup: staleWhileRevalidate serves a stale entry at once and loads a new one behind it', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret, staleWhileRevalidate: '10s' } })
  let loads = 0
  app.get('/profile', async (request) => ({ n: await request.cache.getOrLoad('profile', async () => { await sleep(20); return ++loads }, { level: 'session', ttl: 50 }) }))
  const first = await app.inject('/profile')
  const cookie = cookieOf(first.headers) as string
  t.same(first.json(), { n: 1 })
  await sleep(70)
  t.same((await app.inject({ url: '/profile', headers: { cookie } })).json(), { n: 1 }, 'stale, served at once')
  await until(() => loads === 2, 1000)
  await sleep(10)
  t.same((await app.inject({ url: '/profile', headers: { cookie } })).json(), { n: 2 }, 'then fresh')
  const stats = app.multiCache.stats().session
  t.same([stats?.staleServed, stats?.backgroundLoads], [1, 1])
  await t.rejects(async () => { await Fastify().register(sessionCache, { staleWhileRevalidate: 'a while' as '1s' }).ready() }, { message: /sessionCache: option "staleWhileRevalidate"/ })
  await t.rejects(async () => { await Fastify().register(appCache, { graceOnError: -1 }).ready() }, { message: /appCache: option "graceOnError"/ })
})

test('with the lock, a stale key is loaded in the background once across instances', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const [a, b] = await Promise.all([0, 1].map(async () => {
    const app = fresh(t)
    await app.register(appCache, { store: REDIS_URL, prefix, lock: true, staleWhileRevalidate: '10s' })
    await app.ready()
    return app
  })) as [ReturnType<typeof fresh>, ReturnType<typeof fresh>]
  let loads = 0
  const load = async (): Promise<number> => { await sleep(30); return ++loads }
  t.equal(await a.appCache.getOrLoad('rates', load, { ttl: 100 }), 1)
  await sleep(120)
  t.same(await Promise.all([a, b, a, b].map(async (app) => await app.appCache.getOrLoad('rates', load, { ttl: 100 }))), [1, 1, 1, 1], 'stale everywhere, at once')
  await until(() => loads === 2, 1000)
  await sleep(60)
  t.equal(loads, 2, 'one background load for both instances')
  t.equal(await b.appCache.getOrLoad('rates', load, { ttl: 100 }), 2)
})

test('route caching: a stale response is served with x-cache: STALE while the first request to find it refreshes it', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  let version = 0
  let slow: (() => void) | undefined
  app.get('/news', { config: { cache: { level: 'app', ttl: 100, staleWhileRevalidate: '10s' } } }, async () => {
    const mine = ++version
    if (mine > 1) await new Promise<void>((resolve) => { slow = resolve })
    return { version: mine }
  })
  t.equal((await app.inject('/news')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/news')).headers['x-cache'], 'HIT-APP')
  await sleep(120)
  const refreshing = app.inject('/news')
  await until(() => slow !== undefined, 1000)
  const others = await Promise.all([1, 2, 3].map(async () => await app.inject('/news')))
  t.same(others.map((r) => [r.headers['x-cache'], r.json().version]), [['STALE', 1], ['STALE', 1], ['STALE', 1]], 'the others get the stale page at once')
  t.equal(version, 2, 'one request runs the handler')
  slow?.()
  const refreshed = await refreshing
  t.same([refreshed.headers['x-cache'], refreshed.json()], ['MISS', { version: 2 }])
  const after = await app.inject('/news')
  t.same([after.headers['x-cache'], after.json()], ['HIT-APP', { version: 2 }])
  t.equal(app.multiCache.stats().route?.staleServed, 3)
})

test('route caching: tags, static or from the request, are dropped by appCache.invalidateTag on every instance', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const servers = await Promise.all([0, 1].map(async () => {
    const app = fresh(t)
    await app.register(multiCache, { session: false, app: { store: REDIS_URL, prefix } })
    let n = 0
    app.get('/catalog', { config: { cache: { level: 'app', tags: ['catalog'] } } }, async () => ({ n: ++n }))
    app.get('/product/:id', { config: { cache: { level: 'app', tags: (request) => [`product:${(request.params as { id: string }).id}`] } } }, async () => ({ n: ++n }))
    await app.ready()
    return app
  })) as [ReturnType<typeof fresh>, ReturnType<typeof fresh>]
  const [a, b] = servers
  for (const url of ['/catalog', '/product/1', '/product/2']) {
    await b.inject(url)
    t.equal((await b.inject(url)).headers['x-cache'], 'HIT-APP', `B holds ${url}`)
  }
  await a.appCache.invalidateTag(['catalog', 'product:1'])
  await until(() => b.appCache.tags.of(['catalog']).versions[0] === 1, 100)
  t.equal((await b.inject('/catalog')).headers['x-cache'], 'MISS', 'dropped on the other instance')
  t.equal((await b.inject('/product/1')).headers['x-cache'], 'MISS')
  t.equal((await b.inject('/product/2')).headers['x-cache'], 'HIT-APP', 'another tag stays')

  const bare = fresh(t)
  await bare.register(multiCache, { app: false, session: false })
  t.throws(() => bare.get('/x', { config: { cache: { level: 'app', tags: ['x'] } } }, async () => 'x'), { message: /option "tags" need the appCache plugin/ })
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  t.throws(() => app.get('/y', { config: { cache: { level: 'app', tags: 'y' as never } } }, async () => 'y'), { message: /option "tags" must be an array of non-empty strings, or a function/ })
})

test('tags when messages may have been missed: no tagged entry is served until the versions are read again', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const admin = new Redis(server.url)
  t.teardown(() => { admin.disconnect() })
  const [a, b] = await Promise.all([0, 1].map(async () => {
    const app = fresh(t)
    await app.register(appCache, { store: server.url })
    await app.ready()
    return app
  })) as [ReturnType<typeof fresh>, ReturnType<typeof fresh>]
  await a.appCache.set('price', 'OLD', { tags: ['product:1'] })
  t.equal(await b.appCache.get('price'), 'OLD', 'B holds it')
  // B's subscription goes: what A publishes meanwhile never reaches B.
  await admin.call('CLIENT', 'KILL', 'TYPE', 'pubsub')
  // What is promised holds from the moment B sees its connection close (at once on loopback, but an event-loop turn
  // or more after the KILL's reply on a busy machine); ioredis reconnects 50 ms later at the earliest, so A's
  // message below is published while B is not subscribed. (`current([], [], epoch)`, in the epoch B knows, is false
  // only while B's versions are unknown, which is what seeing the connection close makes them.)
  await until(() => !b.appCache.tags.current([], [], b.appCache.tags.of([]).epoch), 1000)
  await a.appCache.invalidateTag('product:1')
  const seen: unknown[] = []
  for (let i = 0; i < 30; i++) {
    seen.push(await b.appCache.get('price'))
    await sleep(5)
  }
  t.same([...new Set(seen)], [undefined], 'B never serves the invalidated entry, before or after it reconnects')

  // An instance that cannot read the versions at start serves no tagged entry until it can.
  server.pause()
  const late = fresh(t)
  const starting = late.register(appCache, { store: server.url, timeout: 50 }).ready()
  await sleep(20)
  server.resume()
  await starting
  t.equal(await late.appCache.get('price'), undefined)
})

test('one background load of a stale key with Redis, even while its write is on its way', async (t) => {
  if (await redisFor(t) === undefined) return
  const app = await instance(t, uniquePrefix(t))
  let loads = 0
  const load = async (): Promise<number> => { await sleep(20); return ++loads }
  // The burst ends well before the new value goes stale in its turn.
  const options = { ttl: 400, staleWhileRevalidate: '10s' as const }
  await app.appCache.getOrLoad('k', load, options)
  await sleep(420)
  for (let i = 0; i < 40; i++) {
    await app.appCache.getOrLoad('k', load, options)
    await sleep(2)
  }
  t.equal(loads, 2, 'one load, then one in the background for the whole burst')
})
