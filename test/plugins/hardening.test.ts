import Fastify from 'fastify'
import { test } from 'tap'
import multiCache, { appCache, sessionCache } from '../../index.js'
import { captureLogs, cookieOf, fresh, secret } from '../helpers/app.js'
import { REDIS_URL, privateRedis, redisFor, uniquePrefix } from '../helpers/redis.js'
import { until } from '../helpers/until.js'

test('maxKeyLength: a key a client makes too long is refused by name and never reaches Redis', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const app = fresh(t)
  await app.register(multiCache, { session: { secret, store: REDIS_URL, prefix: prefix + 's:' }, app: { store: REDIS_URL, prefix: prefix + 'a:', maxKeyLength: 64 }, maxKeyLength: 64 })
  app.get('/search', async (request, reply) => {
    const { q } = request.query as { q: string }
    try {
      return await request.cache.getOrLoad(`search:${q}`, () => ({ q }), { level: 'app' })
    } catch (error) {
      return await reply.code(400).send({ code: (error as { code: string }).code, message: (error as Error).message })
    }
  })
  t.same((await app.inject('/search?q=shoes')).json(), { q: 'shoes' })
  const long = await app.inject(`/search?q=${'x'.repeat(2000)}`)
  t.equal(long.statusCode, 400)
  t.same(long.json(), { code: 'FST_MULTICACHE_INVALID_KEY', message: 'cache key of 2007 characters is longer than maxKeyLength (64)' })
  await until(() => true)
  t.same((await redis.keys(prefix + '*')).filter((key) => key.includes('xxxx')), [], 'nothing of it reached Redis')
  await t.rejects(async () => { await fresh(t).register(appCache, { maxKeyLength: 0 }).ready() }, { message: /appCache: option "maxKeyLength" must be a positive integer/ })
})

test('the circuit breaker: a paused Redis opens it after a few budgets, the loader answers, and it closes once Redis answers', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  const logs = captureLogs()
  const app = Fastify({ logger: { level: 'info', stream: logs.stream } })
  t.teardown(() => app.close())
  await app.register(appCache, { store: server.url, l1: false, breaker: { failures: 2, coolDown: '300ms' } })
  let loads = 0
  app.get('/v/:n', async (request) => await app.appCache.getOrLoad(`v${(request.params as { n: string }).n}`, () => { loads++; return 'loaded' }))
  await app.ready()
  t.equal(app.multiCache.stats().app?.breaker, 'closed')
  server.pause()
  for (let i = 0; i < 6; i++) t.equal((await app.inject(`/v/${i}`)).body, 'loaded', `answered while Redis is paused (${i})`)
  const paused = app.multiCache.stats().app
  t.equal(paused?.breaker, 'open', 'two failures in a row opened it')
  t.equal(paused?.storeErrors, 6, 'every read that failed or was skipped is counted, and nothing more: a miss whose read failed asks the store for no fence')
  t.equal(logs.lines.filter((line) => /circuit breaker open/.test(String(line.msg))).length, 1, 'opening is logged once')
  server.resume()
  await until(() => app.multiCache.stats().app?.breaker === 'open', 10)
  await new Promise((resolve) => setTimeout(resolve, 350))
  t.equal((await app.inject('/v/probe')).body, 'loaded', 'after the cool-down a probe reaches Redis')
  await until(() => app.multiCache.stats().app?.breaker === 'closed', 1000)
  t.equal(logs.lines.filter((line) => /circuit breaker closed/.test(String(line.msg))).length, 1, 'closing is logged once')
  await until(() => true)
  t.equal((await app.inject('/v/probe')).body, 'loaded')
  t.equal(loads, 7, 'cached again: the second probe read was a hit')
  await t.rejects(async () => { await fresh(t).register(appCache, { store: REDIS_URL, breaker: { coolDown: 0 } }).ready() }, { message: /option "coolDown" must be greater than 0/ })
})

test('maxEntryBytes and maxBytes are options of the levels', async (t) => {
  if (await redisFor(t) === undefined) return
  const app = fresh(t)
  await app.register(sessionCache, { secret, store: REDIS_URL, prefix: uniquePrefix(t), maxEntryBytes: 100 })
  await app.register(appCache, { maxBytes: 1000 })
  app.post('/big', async (request, reply) => {
    const error = await request.sessionCache.set('big', 'x'.repeat(200)).catch((e: { code: string }) => e.code)
    return await reply.send({ error })
  })
  t.same((await app.inject({ method: 'POST', url: '/big' })).json(), { error: 'FST_MULTICACHE_ENTRY_TOO_LARGE' })
  await t.rejects(app.appCache.set('big', 'x'.repeat(2000)), { code: 'FST_MULTICACHE_ENTRY_TOO_LARGE' })
  t.equal(app.multiCache.stats().session?.oversized, 1)
  t.equal(app.multiCache.stats().app?.oversized, 1)
  await t.rejects(async () => { await fresh(t).register(appCache, { store: REDIS_URL, maxBytes: 1000 }).ready() }, { message: /appCache: option "maxBytes" bounds the memory store only/ })
  await t.rejects(async () => { await fresh(t).register(appCache, { sizeOf: () => 1 }).ready() }, { message: /option "sizeOf" needs maxBytes/ })
})

test('absoluteTtl ends a session however active; destroyAllOf logs a user out of every device', async (t) => {
  const app = fresh(t)
  await app.register(sessionCache, { secret, absoluteTtl: 300 })
  app.post('/login/:user', async (request) => { await request.sessionCache.regenerate({ user: (request.params as { user: string }).user }); return 'ok' })
  app.get('/me', async (request) => ({ user: request.sessionCache.user ?? (await request.sessionCache.get('x'), request.sessionCache.user) ?? null }))
  app.post('/password', async (request) => ({ ended: await request.sessionCache.destroyAllOf(undefined, { keepCurrent: true }) }))
  const laptop = cookieOf((await app.inject({ method: 'POST', url: '/login/alice' })).headers) as string
  const phone = cookieOf((await app.inject({ method: 'POST', url: '/login/alice' })).headers) as string
  const bob = cookieOf((await app.inject({ method: 'POST', url: '/login/bob' })).headers) as string
  t.same((await app.inject({ url: '/me', headers: { cookie: laptop } })).json(), { user: 'alice' })
  t.same((await app.inject({ method: 'POST', url: '/password', headers: { cookie: phone } })).json(), { ended: 1 })
  t.same((await app.inject({ url: '/me', headers: { cookie: laptop } })).json(), { user: null }, 'the laptop is logged out')
  t.same((await app.inject({ url: '/me', headers: { cookie: phone } })).json(), { user: 'alice' }, 'the phone, where the password changed, is not')
  t.same((await app.inject({ url: '/me', headers: { cookie: bob } })).json(), { user: 'bob' })
  await new Promise((resolve) => setTimeout(resolve, 320))
  t.same((await app.inject({ url: '/me', headers: { cookie: phone } })).json(), { user: null }, 'past its absolute lifetime the session is over')
})

test('the __Host- and __Secure- cookie prefixes: Secure by default, and attributes that break them are refused', async (t) => {
  const app = fresh(t)
  await app.register(sessionCache, { secret, cookieName: '__Host-sid' })
  app.post('/w', async (request) => { await request.sessionCache.set('a', 1); return 'ok' })
  const header = String((await app.inject({ method: 'POST', url: '/w' })).headers['set-cookie'])
  t.match(header, /^__Host-sid=[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax$/, 'Secure, Path=/, no Domain, even outside production')
  const cases: Array<[object, RegExp]> = [
    [{ cookieName: '__Host-sid', cookie: { secure: false } }, /sessionCache \(cookie\): option "secure" must be true with the cookie name "__Host-sid"/],
    [{ cookieName: '__Host-sid', cookie: { domain: 'example.com' } }, /option "domain" must be left out with the cookie name "__Host-sid"/],
    [{ cookieName: '__Host-sid', cookie: { path: '/app' } }, /option "path" must be left out with the cookie name "__Host-sid"/],
    [{ cookieName: '__Secure-sid', cookie: { secure: false } }, /option "secure" must be true with the cookie name "__Secure-sid" \(browsers drop a __Secure- cookie without Secure\)/]
  ]
  for (const [options, message] of cases) {
    await t.rejects(async () => { await fresh(t).register(sessionCache, { secret, ...options }).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message })
  }
})

test('values a client makes the store refuse (too large, not serializable) never open the breaker for other users', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const app = fresh(t)
  await app.register(multiCache, { session: { secret, store: REDIS_URL, prefix, maxEntryBytes: 1024 }, app: false, route: false })
  // A route that keeps what the client sends (a draft), the first thing it does with the session.
  app.post('/draft', async (request) => {
    const { text, big } = request.body as { text: string, big?: boolean }
    return await request.sessionCache.set('draft', big === true ? BigInt(text.length) : text).then(() => 'stored', (error: { code: string }) => error.code)
  })
  app.post('/cart', async (request) => await request.sessionCache.set('cart', [1]).then(() => 'stored', (error: { code: string }) => error.code))
  const victim = cookieOf((await app.inject({ method: 'POST', url: '/cart' })).headers) as string
  for (let i = 0; i < 4; i++) {
    t.equal((await app.inject({ method: 'POST', url: '/draft', payload: { text: 'x'.repeat(5000) } })).body, 'FST_MULTICACHE_ENTRY_TOO_LARGE')
    t.equal((await app.inject({ method: 'POST', url: '/draft', payload: { text: 'x', big: true } })).body, 'FST_MULTICACHE_SERIALIZE')
  }
  t.equal(app.multiCache.stats().session?.breaker, 'closed')
  t.equal((await app.inject({ method: 'POST', url: '/cart', headers: { cookie: victim } })).body, 'stored', "another user's session is written")
  t.equal((await app.inject({ method: 'POST', url: '/cart' })).body, 'stored', 'and a new one created')
})
