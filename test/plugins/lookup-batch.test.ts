import { Redis } from 'ioredis'
import { test } from 'tap'
import multiCache from '../../index.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'
import { commandCalls, privateRedis } from '../helpers/redis.js'
import { eventually } from '../helpers/wait.js'

// request.cache.getOrLoadMany over HTTP: the hierarchical walk (request → session → application → loader) in batches.

test('the walk in batches: each key from the first level that has it, one loader call for the rest, stored at the level asked, memoised', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const admin = new Redis(server.url)
  t.teardown(() => { admin.disconnect() })
  const app = fresh(t)
  await app.register(multiCache, { session: { secret }, app: { store: server.url } })
  const calls: string[][] = []
  const loader = async (keys: string[]): Promise<Map<string, string>> => {
    calls.push(keys)
    return new Map(keys.filter((key) => key !== 'none').map((key) => [key, `loaded ${key}`]))
  }
  app.post('/session', async (request) => { await request.sessionCache.set('s', 'from session'); return { ok: true } })
  app.post('/walk', async (request) => {
    const { keys, level } = request.body as { keys: string[], level: 'request' | 'session' | 'app' }
    request.reqCache.set('r', 'from request')
    const values = await request.cache.getOrLoadMany(keys, loader, { level, ttl: '1m' })
    return { values, memo: keys.map((key) => request.reqCache.get(key) ?? null) }
  })
  await app.ready()
  await app.appCache.set('a', 'from app')
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/session' })).headers)
  const walk = async (keys: string[], level: string): Promise<{ values: unknown[], memo: unknown[] }> =>
    (await app.inject({ method: 'POST', url: '/walk', payload: { keys, level }, headers: { cookie: cookie as string } })).json()

  await admin.call('CONFIG', 'RESETSTAT')
  t.same(await walk(['r', 's', 'a', 'x', 'y', 'none', 'x'], 'app'), {
    values: ['from request', 'from session', 'from app', 'loaded x', 'loaded y', null, 'loaded x'],
    memo: ['from request', 'from session', 'from app', 'loaded x', 'loaded y', null, 'loaded x']
  }, 'each from the first level that holds it, memoised for the request; a key the loader left out stays a miss')
  t.same(calls, [['x', 'y', 'none']], 'one loader call, for the keys no level held')
  // The write goes on behind the answer.
  let redis = await commandCalls(admin)
  await eventually(async () => (redis = await commandCalls(admin)).eval === 3, 1000)
  t.equal(redis.eval, 3, 'the application level read the keys the session lacked in one script, their fences in one, and wrote them in one')
  t.same(await app.appCache.getMany(['x', 'y', 'none']), ['loaded x', 'loaded y', undefined], 'stored at the application level')
  t.ok((await admin.pttl('fmc:app:x')) > 59_000, 'with the ttl asked for')

  calls.length = 0
  t.same((await walk(['s', 'p', 'q'], 'session')).values, ['from session', 'loaded p', 'loaded q'])
  t.same(calls, [['p', 'q']], 'at the session level: one call for the keys the session lacked')
  t.same((await walk(['p', 'q'], 'session')).values, ['loaded p', 'loaded q'])
  t.same(calls, [['p', 'q']], 'stored in the session: the next request of it finds them')

  calls.length = 0
  t.same((await walk(['r', 'm', 'n'], 'request')).values, ['from request', 'loaded m', 'loaded n'])
  t.same((await walk(['m'], 'request')).values, ['loaded m'])
  t.same(calls, [['m', 'n'], ['m']], 'at the request level: one call per request, nothing kept after it')
})

test('request.cache.getOrLoadMany refuses what getOrLoad refuses, and a list past maxKeysPerCall', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false, maxKeysPerCall: 10, maxKeyLength: 8 })
  app.post('/', async (request) => {
    const { keys, level } = request.body as { keys: unknown, level: unknown }
    return await request.cache.getOrLoadMany(keys as string[], async (asked) => asked, { level: level as 'app' })
  })
  const call = async (keys: unknown, level: unknown = 'app'): Promise<unknown> => (await app.inject({ method: 'POST', url: '/', payload: { keys, level } })).json()
  t.same(await call(['a', 'b']), ['a', 'b'])
  t.match(await call(Array.from({ length: 11 }, (_, i) => `k${i}`)), { code: 'FST_MULTICACHE_TOO_MANY_KEYS', message: 'request.cache.getOrLoadMany: 11 keys in one call, more than maxKeysPerCall (10): split the list, or raise maxKeysPerCall' })
  t.match(await call(['ok', 'too-long-key']), { code: 'FST_MULTICACHE_INVALID_KEY', message: 'cache key of 12 characters is longer than maxKeyLength (8)' })
  t.match(await call(['a'], 'global'), { code: 'FST_MULTICACHE_INVALID_OPTION', message: 'request.cache.getOrLoadMany: option "level" must be one of request, session, app, got "global"' })
  t.match(await call(['a'], 'session'), { code: 'FST_MULTICACHE_UNSUPPORTED', message: 'request.cache.getOrLoadMany: the session level is not registered' })
})
