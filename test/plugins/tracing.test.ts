import { AsyncLocalStorage } from 'node:async_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { tracingChannel } from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import multiCache, { CACHE_OPERATION_CHANNEL, type CacheOperationContext, type MultiCacheOptions } from '../../index.js'
import { CacheOperation } from '../../lib/events.js'
import { sessionStoreKey } from '../../lib/keys.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

type Event = 'start' | 'end' | 'asyncStart' | 'asyncEnd' | 'error'

/** Every event of the channel while the test runs, each with the context it carried, in order. */
function record (t: Test): { events: Array<[Event, CacheOperationContext, string]>, contexts: () => CacheOperationContext[], lines: () => string[] } {
  const events: Array<[Event, CacheOperationContext, string]> = []
  const channel = tracingChannel<unknown, CacheOperationContext>(CACHE_OPERATION_CHANNEL)
  // What a test compares, as it was at the event: the event, the level, the operation and the key, and what was
  // found once it ended.
  const line = (event: Event, c: CacheOperationContext): string =>
    [event, c.level, c.operation, c.key ?? c.keys?.join(',') ?? '-', ...(event === 'asyncEnd' || (event === 'end' && 'result' in c) ? [String(c.hit), String(c.stale), String(c.tier)] : [])].join(' ')
  const on = (event: Event) => (context: CacheOperationContext) => { events.push([event, context, line(event, context)]) }
  const subscribers = { start: on('start'), end: on('end'), asyncStart: on('asyncStart'), asyncEnd: on('asyncEnd'), error: on('error') }
  channel.subscribe(subscribers)
  t.teardown(() => { channel.unsubscribe(subscribers) })
  return {
    events,
    contexts: () => [...new Set(events.map(([, context]) => context))],
    lines: () => events.map(([, , text]) => text)
  }
}

async function shop (t: Test, options: MultiCacheOptions, more?: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = fresh(t)
  await app.register(multiCache, options)
  more?.(app)
  app.get('/product/:id', async (request) => {
    const { id } = request.params as { id: string }
    return await app.appCache.getOrLoad(`product:${id}`, async () => ({ id }))
  })
  app.get('/broken', async () => await app.appCache.getOrLoad('broken', async () => { throw new Error('the database is down') }))
  app.post('/cart/:item', async (request) => {
    const cart = await request.sessionCache.get<string[]>('cart') ?? []
    await request.sessionCache.set('cart', [...cart, (request.params as { item: string }).item])
    const name = await request.sessionCache.getOrLoad('name', async () => 'Ada')
    return { id: request.sessionCache.id, name }
  })
  app.get('/request', async (request) => {
    request.reqCache.set('a', 1)
    const found = [request.reqCache.get('a'), request.reqCache.get('b')]
    const loaded = await request.reqCache.getOrLoad('c', async () => 3)
    request.reqCache.delete('a')
    return { found, loaded }
  })
  app.get('/page', { config: { cache: { level: 'app', ttl: '1m' } } }, async () => ({ page: 1 }))
  await app.ready()
  return app
}

test('the application level over Redis: getOrLoad, with its load nested, then a hit from each tier', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const app = await shop(t, { app: { store: REDIS_URL, prefix: prefix + 'a:' } })
  const noL1 = await shop(t, { app: { store: REDIS_URL, prefix: prefix + 'a:', l1: false } })
  const { lines, events } = record(t)

  t.same((await app.inject('/product/1')).json(), { id: '1' })
  t.same(lines(), [
    'start app getOrLoad product:1',
    'end app getOrLoad product:1',
    'start app load product:1',
    'end app load product:1',
    'asyncStart app load product:1',
    'asyncEnd app load product:1 undefined undefined undefined',
    'asyncStart app getOrLoad product:1',
    'asyncEnd app getOrLoad product:1 false undefined undefined'
  ])
  t.same(events.find(([event, c]) => event === 'asyncEnd' && c.operation === 'load')?.[1].result, { id: '1' }, 'the loaded value as result')

  // The first hit may come from Redis, while the write of the load reaches the memory tier.
  await app.inject('/product/1')
  events.length = 0
  await app.inject('/product/1')
  t.same(lines().at(-1), 'asyncEnd app getOrLoad product:1 true false memory', 'a hit of the memory tier')
  events.length = 0
  await noL1.inject('/product/1')
  t.same(lines(), [
    'start app getOrLoad product:1',
    'end app getOrLoad product:1',
    'asyncStart app getOrLoad product:1',
    'asyncEnd app getOrLoad product:1 true false store'
  ], 'a hit of Redis, without a load')
})

test('a loader that throws: the error event of the load and of the lookup, with context.error', async (t) => {
  const app = await shop(t, {})
  const { lines, events } = record(t)
  t.equal((await app.inject('/broken')).statusCode, 500)
  t.same(lines(), [
    'start app getOrLoad broken',
    'end app getOrLoad broken',
    'start app load broken',
    'end app load broken',
    'error app load broken',
    'asyncStart app load broken',
    'asyncEnd app load broken undefined undefined undefined',
    'error app getOrLoad broken',
    'asyncStart app getOrLoad broken',
    'asyncEnd app getOrLoad broken false undefined undefined'
  ])
  const errors = events.filter(([event]) => event === 'error').map(([, c]) => (c.error as Error).message)
  t.same(errors, ['the database is down', 'the database is down'])
})

test("a subscriber's AsyncLocalStorage flows into the loader, nested under the lookup", async (t) => {
  const store = new AsyncLocalStorage<{ operation: string, parent: string | undefined }>()
  let inLoader: unknown
  const app = await shop(t, {}, (app) => {
    app.get('/als', async () => await app.appCache.getOrLoad('als', async () => {
      inLoader = store.getStore()
      return 1
    }))
  })
  const channel = tracingChannel<{ operation: string, parent: string | undefined }, CacheOperationContext>(CACHE_OPERATION_CHANNEL)
  channel.start.bindStore(store, (context) => ({ operation: context.operation, parent: store.getStore()?.operation }))
  t.teardown(() => { channel.start.unbindStore(store) })
  await app.inject('/als')
  t.same(inLoader, { operation: 'load', parent: 'getOrLoad' })
  t.equal(store.getStore(), undefined, 'nothing outside')
})

test('the request level: traceSync for get, set and delete; tracePromise events for getOrLoad', async (t) => {
  const app = await shop(t, {})
  const { lines } = record(t)
  t.same((await app.inject('/request')).json(), { found: [1, null], loaded: 3 })
  t.same(lines(), [
    'start request set a', 'end request set a undefined undefined undefined',
    'start request get a', 'end request get a true false undefined',
    'start request get b', 'end request get b false undefined undefined',
    'start request getOrLoad c', 'start request load c', 'end request load c', 'end request getOrLoad c',
    'asyncStart request load c', 'asyncEnd request load c undefined undefined undefined',
    'asyncStart request getOrLoad c', 'asyncEnd request getOrLoad c false undefined undefined',
    'start request delete a', 'end request delete a undefined undefined undefined'
  ])
})

test('the route level: method and path as the key, never the query; a miss then a hit', async (t) => {
  const app = await shop(t, {})
  const { lines } = record(t)
  t.equal((await app.inject('/page?user=ada@example.com')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/page?user=ada@example.com')).headers['x-cache'], 'HIT-APP')
  t.same(lines().filter((line) => line.startsWith('asyncEnd')), [
    'asyncEnd route get GET /page false undefined undefined',
    'asyncEnd route get GET /page true false undefined'
  ])
  t.notOk(lines().some((line) => line.includes('ada@')), 'no query in a key')
  await app.routeCache.invalidate('/page')
  t.same(lines().at(-1), 'asyncEnd route invalidate /page undefined undefined undefined')
})

test('the route level: the route as declared beside the path, on lookups and on invalidate', async (t) => {
  const app = await shop(t, {}, (app) => {
    app.get('/users/:name', { config: { cache: { level: 'app', ttl: '1m' } } }, async (request) => ({ name: (request.params as { name: string }).name }))
  })
  const { contexts } = record(t)
  await app.inject('/users/alice?tab=orders')
  await app.routeCache.invalidate('/users/:name', '/users/alice')
  t.same(contexts().map(({ operation, key, route }) => ({ operation, key, route })), [
    { operation: 'get', key: 'GET /users/alice', route: '/users/:name' },
    { operation: 'invalidate', key: '/users/alice', route: '/users/:name' }
  ])
})

test('hostile: no context ever carries a session id, its cookie, or its store key', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const app = await shop(t, { session: { secret, store: REDIS_URL, prefix: prefix + 's:' }, app: { store: REDIS_URL, prefix: prefix + 'a:' } }, (app) => {
    app.post('/login', async (request) => {
      await request.sessionCache.regenerate({ user: 'ada' })
      await request.sessionCache.set('cart', [])
      await request.sessionCache.delete('cart')
      await request.sessionCache.clear()
      return { id: request.sessionCache.id }
    })
    app.get('/session-page', { config: { cache: { level: 'session', ttl: '1m' } } }, async () => ({ page: 1 }))
  })
  const { contexts, lines } = record(t)

  const first = await app.inject({ method: 'POST', url: '/cart/apple' })
  const cookie = cookieOf(first.headers) as string
  const again = await app.inject({ method: 'POST', url: '/cart/pear', headers: { cookie } })
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie } })
  const after = cookieOf(login.headers) as string
  await app.inject({ url: '/session-page', headers: { cookie: after } })
  // The page is stored after the response went out: a later request finds it once that write landed.
  const hit = 'asyncEnd route get GET /session-page true false undefined'
  for (let i = 0; i < 100 && !lines().includes(hit); i++) {
    await sleep(5)
    await app.inject({ url: '/session-page', headers: { cookie: after } })
  }

  const ids = [first.json<{ id: string }>().id, again.json<{ id: string }>().id, login.json<{ id: string }>().id]
  const secrets = [...new Set([...ids, ...ids.map(sessionStoreKey), ...ids.map((id) => prefix + 's:' + sessionStoreKey(id)), cookie.split('=')[1] as string, after.split('=')[1] as string])]
  t.ok(ids.every((id) => typeof id === 'string' && id.length > 10), 'the ids are known')
  t.ok(lines().includes('asyncEnd session getOrLoad name false undefined undefined'))
  t.ok(lines().includes(hit))
  t.ok(contexts().length >= 12, `${contexts().length} contexts`)
  const leaks: string[] = []
  for (const context of contexts()) {
    for (const text of strings(context)) if (secrets.some((secret) => text.includes(secret))) leaks.push(`${context.level} ${context.operation}: ${text}`)
  }
  t.same(leaks, [])
})

test('nothing is published, nor built, without subscribers', async (t) => {
  const app = await shop(t, {})
  let runs = 0
  const { sync, promise } = CacheOperation.prototype
  CacheOperation.prototype.sync = function (this: CacheOperation, run) { runs++; return sync.call(this, run) } as typeof sync
  CacheOperation.prototype.promise = function (this: CacheOperation, run) { runs++; return promise.call(this, run) } as typeof promise
  t.teardown(() => { Object.assign(CacheOperation.prototype, { sync, promise }) })
  await app.inject('/request')
  await app.inject('/product/2')
  await app.inject('/page')
  await app.inject({ method: 'POST', url: '/cart/apple' })
  t.equal(runs, 0)
  const { lines } = record(t)
  await app.inject('/product/2')
  t.equal(runs, 1, 'and from the first subscriber on')
  t.same(lines().at(-1), 'asyncEnd app getOrLoad product:2 true false memory')
})

/** Every string a context holds, however deep (the result included), each object once. */
function strings (value: unknown, seen = new Set<unknown>()): string[] {
  if (typeof value === 'string') return [value]
  if (value === null || typeof value !== 'object' || seen.has(value)) return []
  seen.add(value)
  return Object.entries(value).flatMap(([name, inner]) => [name, ...strings(inner, seen)])
}

test('the application level over Redis: writes, invalidations, batches and refresh, each with its keys', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const app = await shop(t, { app: { store: REDIS_URL, prefix: prefix + 'a:' } }, (app) => {
    app.appCache.define('rates', async () => ({ eur: 1 }))
  })
  const { lines } = record(t)
  const ended = (): string[] => lines().filter((line) => line.startsWith('asyncEnd'))
  await app.appCache.set('a', 1, { tags: ['t'] })
  await app.appCache.getMany(['a', 'b'])
  await app.appCache.getOrLoadMany(['a', 'c'], async (keys) => keys.map((key) => key.toUpperCase()))
  await app.appCache.invalidate(['a', 'c'])
  await app.appCache.invalidate('b')
  await app.appCache.invalidateTag('t')
  await app.appCache.refresh('rates')
  await app.appCache.delete('rates')
  await app.appCache.clear()
  t.same(ended(), [
    'asyncEnd app set a undefined undefined undefined',
    'asyncEnd app getMany a,b undefined undefined undefined',
    'asyncEnd app load c undefined undefined undefined',
    'asyncEnd app getOrLoadMany a,c undefined undefined undefined',
    'asyncEnd app invalidate a,c undefined undefined undefined',
    'asyncEnd app invalidate b undefined undefined undefined',
    'asyncEnd app invalidateTag t undefined undefined undefined',
    'asyncEnd app load rates undefined undefined undefined',
    'asyncEnd app refresh rates undefined undefined undefined',
    'asyncEnd app delete rates undefined undefined undefined',
    'asyncEnd app clear - undefined undefined undefined'
  ])
})

test('batches count their hits; a stale hit and a grace value are stale; a timeout is an error', async (t) => {
  const app = await shop(t, {})
  const { events } = record(t)
  const ended = (): CacheOperationContext[] => events.filter(([event]) => event === 'asyncEnd').map(([, c]) => c)
  await app.appCache.set('a', 1)
  await app.appCache.getMany(['a', 'b'])
  t.equal(ended().at(-1)?.hits, 1)

  await app.appCache.set('s', 1, { ttl: 1, staleWhileRevalidate: '1m' })
  await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(await app.appCache.getOrLoad('s', async () => 2, { ttl: 1, staleWhileRevalidate: '1m' }), 1)
  t.match(ended().find((c) => c.operation === 'getOrLoad' && c.key === 's'), { hit: true, stale: true, tier: 'memory' })

  await app.appCache.set('g', 1, { ttl: 1, graceOnError: '1m' })
  await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(await app.appCache.getOrLoad('g', async () => { throw new Error('down') }, { ttl: 1, graceOnError: '1m' }), 1)
  t.match(ended().find((c) => c.operation === 'getOrLoad' && c.key === 'g'), { hit: true, stale: true })

  await t.rejects(app.appCache.getOrLoad('slow', async () => await new Promise((resolve) => setTimeout(resolve, 200, 1)), { hardTimeout: 10 }), { code: 'FST_MULTICACHE_LOAD_TIMEOUT' })
  const failed = events.filter(([event, c]) => event === 'error' && c.key === 'slow').map(([, c]) => c)
  t.match(failed, [{ operation: 'getOrLoad', error: { code: 'FST_MULTICACHE_LOAD_TIMEOUT' } }], 'the lookup fails; its load goes on')
})

test('the session level over Redis: each operation, a miss then a hit', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const app = await shop(t, { session: { secret, store: REDIS_URL, prefix: prefix + 's:' } }, (app) => {
    app.post('/session', async (request) => {
      await request.sessionCache.get('x')
      await request.sessionCache.set('x', 1)
      await request.sessionCache.get('x')
      await request.sessionCache.getOrLoad('x', async () => 2)
      await request.sessionCache.delete('x')
      await request.sessionCache.clear()
      return {}
    })
  })
  const { lines } = record(t)
  t.equal((await app.inject({ method: 'POST', url: '/session' })).statusCode, 200)
  t.same(lines().filter((line) => line.startsWith('asyncEnd')), [
    'asyncEnd session get x false undefined undefined',
    'asyncEnd session set x undefined undefined undefined',
    'asyncEnd session get x true false undefined',
    'asyncEnd session getOrLoad x true false undefined',
    'asyncEnd session delete x undefined undefined undefined',
    'asyncEnd session clear - undefined undefined undefined'
  ])
})
