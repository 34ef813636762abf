import { test } from 'tap'
import multiCache, { appCache, requestCache, sessionCache } from '../../index.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'

test('registers every level and decorates request.cache', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  t.ok(app.hasRequestDecorator('reqCache'))
  t.ok(app.hasRequestDecorator('sessionCache'))
  t.ok(app.hasDecorator('appCache'))
  t.ok(app.hasRequestDecorator('cache'))
  t.same(Object.keys(app.multiCache.stats()), ['request', 'session', 'app', 'route'])
})

test('works with levels the app registered first; options for them are refused', async (t) => {
  const app = fresh(t)
  await app.register(appCache, { max: 5 })
  await app.register(requestCache)
  await app.register(multiCache, { session: { secret } })
  await app.ready()
  t.same(Object.keys(app.multiCache.stats()), ['request', 'session', 'app', 'route'])

  const conflicting = fresh(t)
  await conflicting.register(appCache)
  await t.rejects(async () => { await conflicting.register(multiCache, { app: { max: 1 } }).ready() }, {
    code: 'FST_MULTICACHE_INVALID_OPTION', message: /multiCache: option "app" must be left out or false: appCache is registered already/
  })
  const unknown = fresh(t)
  await t.rejects(async () => { await unknown.register(multiCache, { sessions: {} } as never).ready() }, { message: /option "sessions" is not an option/ })
})

test('a level given as anything but options or false is refused by its multiCache option name', async (t) => {
  for (const [options, pattern] of [
    [{ app: true }, /^multiCache: option "app" must be an object of appCache options \({} for the defaults\) or false to leave it out, got true$/],
    [{ session: 'redis' }, /^multiCache: option "session" must be an object of sessionCache options/],
    [{ request: [] }, /^multiCache: option "request" must be an object of requestCache options .*, got an array$/],
    [{ route: null }, /^multiCache: option "route" must be an object of routeCache options .*, got null$/]
  ] as const) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(multiCache, options as never).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message: pattern })
  }
})

test('multiCache registered twice, or again in an encapsulated context, is refused with what to do', async (t) => {
  const expected = { code: 'FST_MULTICACHE_ALREADY_REGISTERED', message: /^multiCache is already registered on this instance: register it once, at the root/ }
  const twice = fresh(t)
  await twice.register(multiCache)
  await t.rejects(async () => { await twice.register(multiCache).ready() }, expected)
  const nested = fresh(t)
  await nested.register(multiCache)
  await t.rejects(async () => { await nested.register(async (child) => { await child.register(multiCache) }).ready() }, expected)
  const levels = fresh(t)
  await levels.register(sessionCache, { secret })
  await levels.register(appCache)
  await t.rejects(async () => { await levels.register(sessionCache, { secret }).ready() }, { code: 'FST_MULTICACHE_ALREADY_REGISTERED', message: /^sessionCache is already registered/ })
  const apps = fresh(t)
  await apps.register(appCache)
  await t.rejects(async () => { await apps.register(appCache).ready() }, { code: 'FST_MULTICACHE_ALREADY_REGISTERED', message: /^appCache is already registered.*\{ app: \{ … \} \}/ })
})

test('false leaves a level out of the app and of the lookup', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false, app: false })
  t.equal(app.multiCache.session, undefined)
  t.equal(app.multiCache.app, undefined)
  t.throws(() => app.appCache, { code: 'FST_MULTICACHE_NOT_REGISTERED' }, 'its decorator names the plugin to register')
  app.get('/', async (request) => {
    const miss = await request.cache.get('k')
    const loaded = await request.cache.getOrLoad('k', () => 1, { level: 'request' })
    const refused = await request.cache.getOrLoad('x', () => 1, { level: 'app' }).catch((error: Error) => error.message)
    return { miss: miss ?? null, loaded, refused }
  })
  t.same((await app.inject('/')).json(), { miss: null, loaded: 1, refused: 'request.cache.getOrLoad: the app level is not registered' })

  const noRequest = fresh(t)
  await noRequest.register(multiCache, { request: false, session: { secret } })
  noRequest.get('/', async (request) => ({ v: await request.cache.getOrLoad('k', () => 2, { level: 'app' }), again: await request.cache.get('k') }))
  t.same((await noRequest.inject('/')).json(), { v: 2, again: 2 })
})

test('get looks in the request, then the session, then the application level, and memoises', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  app.post('/session', async (request) => { await request.sessionCache.set('k', 'session'); return 'ok' })
  app.get('/', async (request) => {
    const first = await request.cache.get('k')
    const onlyApp = await request.cache.get('onlyApp')
    await app.appCache.set('onlyApp', 'changed mid-request')
    const stable = await request.cache.get('onlyApp')
    request.reqCache.set('k', 'request')
    return { first, onlyApp, stable, request: await request.cache.get('k'), missing: await request.cache.get('none') ?? null }
  })
  await app.ready()
  await app.appCache.set('k', 'app')
  await app.appCache.set('onlyApp', 'app')
  t.same((await app.inject('/')).json(), { first: 'app', onlyApp: 'app', stable: 'app', request: 'request', missing: null })
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/session' })).headers) as string
  t.same((await app.inject({ url: '/', headers: { cookie } })).json().first, 'session', 'the session wins over the application level')
  t.same((await app.inject('/')).json().onlyApp, 'changed mid-request', 'the next request sees the change')
})

test('getOrLoad stores at the level asked for and reads up to it', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  let calls = 0
  const loader = async (): Promise<string> => `v${++calls}`
  app.get('/:level', async (request) => {
    const { level } = request.params as { level: 'request' | 'session' | 'app' }
    const value = await request.cache.getOrLoad(`key-${level}`, loader, { level, ttl: '1m' })
    return { value, memo: request.reqCache.get(`key-${level}`), inSession: await request.sessionCache.has(`key-${level}`), inApp: await app.appCache.has(`key-${level}`) }
  })
  app.get('/bad', async (request) => await Promise.resolve().then(() => request.cache.getOrLoad('k', loader, { level: 'global' as 'app' })).catch((error: { code: string, message: string }) => error.message))
  t.same((await app.inject('/request')).json(), { value: 'v1', memo: 'v1', inSession: false, inApp: false })
  t.same((await app.inject('/request')).json().value, 'v2', 'request level lasts one request')
  const session = await app.inject('/session')
  t.same(session.json(), { value: 'v3', memo: 'v3', inSession: true, inApp: false })
  const cookie = cookieOf(session.headers) as string
  t.same((await app.inject({ url: '/session', headers: { cookie } })).json().value, 'v3')
  t.same((await app.inject('/app')).json(), { value: 'v4', memo: 'v4', inSession: false, inApp: true })
  t.same((await app.inject({ url: '/app', headers: { cookie } })).json().value, 'v4')
  t.match((await app.inject('/bad')).body, /request.cache.getOrLoad: option "level" must be one of request, session, app, got "global"/)
})

test('the app level is consulted after the session for getOrLoad at app level', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  app.post('/s', async (request) => { await request.sessionCache.set('shared', 'from-session'); return 'ok' })
  app.get('/', async (request) => ({ v: await request.cache.getOrLoad('shared', () => 'loaded', { level: 'app' }) }))
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/s' })).headers) as string
  t.same((await app.inject({ url: '/', headers: { cookie } })).json(), { v: 'from-session' })
  t.same((await app.inject('/')).json(), { v: 'loaded' })
})

test('stats count hits, misses, loads, errors and sizes per level', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  app.get('/', async (request) => {
    await request.cache.getOrLoad('a', () => 1, { level: 'app' })
    await request.cache.getOrLoad('a', () => 1, { level: 'app' })
    await request.cache.getOrLoad('bad', () => { throw new Error('x') }, { level: 'app' }).catch(() => {})
    return 'ok'
  })
  await app.inject('/')
  await app.inject('/')
  const stats = app.multiCache.stats()
  t.same(stats.app, { hits: 1, misses: 3, loads: 3, loadErrors: 2, evictions: 0, storeErrors: 0, oversized: 0, staleServed: 0, graceServed: 0, backgroundLoads: 0, tagInvalidations: 0, tagsUnknown: 0, size: 1, pinned: 0 })
  t.equal(stats.request?.size, 0)
  t.equal(stats.session?.size, 0)
})

test('each level plugin can be registered alone', async (t) => {
  const app = fresh(t)
  await app.register(sessionCache, { secret })
  t.same(Object.keys(app.multiCache.stats()), ['session'])
})
