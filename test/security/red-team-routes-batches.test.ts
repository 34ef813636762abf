import fastifyCookie from '@fastify/cookie'
import type { FastifyInstance } from 'fastify'
import type { Redis } from 'ioredis'
import { test, type Test } from 'tap'
import multiCache from '../../index.js'
import { captureLogs, fresh } from '../helpers/app.js'
import { overHttp } from '../helpers/http.js'
import { redisFor, uniquePrefix } from '../helpers/redis.js'

// Found by a red-team review of route caching and batch reads, each first reproduced against the packed package.

/** A JSON body as a client writes it: a `\ud800` escape in the text is a lone surrogate once parsed. */
async function postJson (app: FastifyInstance, url: string, body: string): Promise<{ statusCode: number, body: string }> {
  return await app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json' }, payload: body })
}

/** An app with the session level alone, on the shared Redis. */
async function sessionsOn (t: Test, redis: Redis): Promise<FastifyInstance> {
  const app = fresh(t)
  await app.register(multiCache, { session: { store: redis as never, prefix: uniquePrefix(t), secret: 'a-secret-of-at-least-32-characters!!' }, app: false })
  return app
}

test('a session found by getSessionId from a header is read by an app-level page: the page is not kept for everyone', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { getSessionId: (request) => request.headers['x-session-token'] as string | undefined } })
  app.post('/login', async (request) => { await request.sessionCache.set('user', 'alice'); return 'ok' })
  app.get('/hello', { config: { cache: { level: 'app' } } }, async (request) => ({ hello: (await request.sessionCache.get<string>('user')) ?? 'stranger' }))
  await app.inject({ method: 'POST', url: '/login', headers: { 'x-session-token': 'tok-alice' } })

  const alice = await overHttp(app, '/hello', { headers: { 'x-session-token': 'tok-alice' } })
  t.same(JSON.parse(alice.body.toString()), { hello: 'alice' })
  t.equal(alice.headers['cache-status'], 'fastify-multi-cache; fwd=uri-miss; detail=session', 'not stored: the handler read a session')
  const anonymous = await overHttp(app, '/hello')
  t.same(JSON.parse(anonymous.body.toString()), { hello: 'stranger' }, "an anonymous visitor never gets alice's page")
  t.equal(anonymous.headers['cache-status'], 'fastify-multi-cache; fwd=uri-miss; stored', 'a page without a session is kept')
  t.same(JSON.parse((await overHttp(app, '/hello', { headers: { 'x-session-token': 'tok-alice' } })).body.toString()), { hello: 'stranger' },
    'the public page is what every visitor of an app-level route gets: personal pages belong at the session level')
  t.equal(app.multiCache.stats().route?.reasons?.session, 1)
})

test('Vary: a value is matched as the handler reads it, whitespace inside included', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { route: {} })
  let runs = 0
  app.get('/greet', { config: { cache: { level: 'app' } } }, async (request, reply) => {
    runs++
    return await reply.header('vary', 'X-Name').send({ name: request.headers['x-name'] })
  })
  for (const [attacker, victim] of [['"a, b"', '"a,b"'], ['Smith,  John', 'Smith, John'], ['a ,b', 'a,b']] as const) {
    await overHttp(app, '/greet', { headers: { 'x-name': attacker } })
    const served = await overHttp(app, '/greet', { headers: { 'x-name': victim } })
    t.same(JSON.parse(served.body.toString()), { name: victim }, `${victim} is not served ${attacker}'s page`)
  }
  t.equal(runs, 6)
  t.equal((await overHttp(app, '/greet', { headers: { 'x-name': 'Smith, John' } })).headers['x-cache'], 'HIT-APP', 'the same value still hits')
})

test("a route's key or tags made unusable by what the client sent: the request runs uncached, never a 500", async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(multiCache, { app: {}, route: {} })
  app.get('/item', { config: { cache: { level: 'app', key: (request) => String((request.query as { id?: string }).id) } } }, async () => 'item')
  app.get('/tagged', { config: { cache: { level: 'app', tags: (request) => [String((request.query as { t?: string }).t)] } } }, async () => 'tagged')

  for (let i = 0; i < 2; i++) {
    const long = await app.inject(`/item?id=${'x'.repeat(2000)}`)
    t.equal(long.statusCode, 200)
    t.equal(long.body, 'item')
    t.equal(long.headers['cache-status'], 'fastify-multi-cache; fwd=bypass; detail=invalid-key')
    const empty = await app.inject('/tagged?t=')
    t.equal(empty.statusCode, 200)
    t.equal(empty.headers['cache-status'], 'fastify-multi-cache; fwd=bypass; detail=invalid-tags')
  }
  t.equal((await app.inject('/item?id=7')).headers['cache-status'], 'fastify-multi-cache; fwd=uri-miss; stored', 'a usable key is cached')
  t.equal((await app.inject('/tagged?t=news')).headers['cache-status'], 'fastify-multi-cache; fwd=uri-miss; stored')
  const warned = logs.lines.filter((line) => String(line.msg).includes('runs uncached'))
  t.equal(warned.length, 2, 'told once per route and reason, not once per request')
  t.match(String(warned[0]?.msg), /GET \/item runs uncached \(invalid-key\): .*maxKeyLength/)
  t.same(app.multiCache.stats().route?.reasons, { 'invalid-key': 2, 'invalid-tags': 2 })
})

test('a batch loader that sorts its keys in place fails instead of keeping values under other keys', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { app: {} })
  app.get('/products', async (request) => {
    const loader = request.reqCache.loader('products', (ids: string[]) => { ids.sort(); return ids.map((id) => `product ${id}`) })
    return (await loader.loadMany(['zz', 'aa'])).map((value) => value instanceof TypeError ? value.message : `kept ${String(value)}`)
  })
  await app.ready()
  await t.rejects(app.appCache.getOrLoadMany(['zz', 'aa'], (keys) => { keys.sort(); return keys.map((key) => `val-${key}`) }), TypeError)
  t.same(await app.appCache.getMany(['zz', 'aa']), [undefined, undefined], 'nothing was kept')
  t.same(await app.appCache.getOrLoadMany(['zz', 'aa'], (keys) => [...keys].sort().reverse().map((key) => `val-${key}`)), ['val-zz', 'val-aa'], 'a loader that sorts a copy is fine')

  const loaded = (await app.inject('/products')).json() as string[]
  t.equal(loaded.length, 2)
  t.ok(loaded.every((value) => /read.only|Cannot assign/i.test(value)), `each key failed with the TypeError: ${loaded.join('; ')}`)
})

for (const l1 of [true, false]) {
  test(`keys a client spells with lone surrogates are refused on Redis, never read as the key UTF-8 makes of them (${l1 ? 'memory tier' : 'l1: false'})`, async (t) => {
    const redis = await redisFor(t)
    if (redis === undefined) return
    const app = fresh(t)
    const prefix = uniquePrefix(t)
    await app.register(multiCache, { session: false, app: { store: redis as never, prefix, ...(l1 ? {} : { l1: false }) } })
    // A document whose name holds U+FFFD, which is what UTF-8 writes a lone surrogate as.
    const documents = new Map([['doc:\ufffd', 'the private note of doc U+FFFD']])
    app.post('/docs', async (request) => {
      const keys = (request.body as { names: string[] }).names.map((name) => `doc:${name}`)
      return await app.appCache.getOrLoadMany(keys, async (missing) => new Map(missing.flatMap((key) => documents.has(key) ? [[key, documents.get(key)]] : [])))
    })
    app.post('/doc', async (request) => await app.appCache.getOrLoad(`doc:${(request.body as { name: string }).name}`, () => documents.get(`doc:${(request.body as { name: string }).name}`) ?? null))
    t.same(JSON.parse((await postJson(app, '/docs', '{"names":["\\ufffd"]}')).body), ['the private note of doc U+FFFD'], 'cached under its own name')
    for (const [url, body] of [['/docs', '{"names":["\\ud800","\\udfff"]}'], ['/doc', '{"name":"\\udbff"}']] as const) {
      const answered = await postJson(app, url, body)
      t.notMatch(answered.body, /private note/, `${url} ${body}: not the other document`)
      t.equal(answered.statusCode, 500)
      t.match(JSON.parse(answered.body), { code: 'FST_MULTICACHE_INVALID_KEY', message: /lone surrogate \(at index 4\)/ })
    }
    await t.rejects(app.appCache.set('doc:\ud800', 'overwritten'), { code: 'FST_MULTICACHE_INVALID_KEY' }, 'nor written over it')
    await t.rejects(app.appCache.getOrLoad('doc', () => 1, { tags: ['t\udc00'] }), { code: 'FST_MULTICACHE_INVALID_OPTION' }, 'tags are kept under their names too')
    t.same(JSON.parse((await postJson(app, '/docs', '{"names":["\\ufffd","\\ud83d\\ude00"]}')).body), ['the private note of doc U+FFFD', null], 'paired surrogates are a key like any other')
  })
}

test('the memory store holds keys as they are: a lone surrogate is a key of its own there', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  await app.ready()
  await app.appCache.set('doc:\ufffd', 'one')
  await app.appCache.set('doc:\ud800', 'another')
  t.equal(await app.appCache.get('doc:\ufffd'), 'one')
  t.equal(await app.appCache.get('doc:\ud800'), 'another')
})

test('a session on Redis refuses entry names with a lone surrogate: in its hash they would name another entry', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const app = await sessionsOn(t, redis)
  app.post('/note', async (request) => {
    const { name } = request.body as { name: string }
    await request.sessionCache.set(`note:${name}`, name)
    return await request.sessionCache.get('note:\ufffd') ?? null
  })
  const answered = await postJson(app, '/note', '{"name":"\\ud800"}')
  t.equal(answered.statusCode, 500)
  t.match(JSON.parse(answered.body), { code: 'FST_MULTICACHE_INVALID_KEY' })
})

test('ignoreCookies: a cookie without a name is a cookie, not one of those ignored: the page is neither stored nor served from the cache', async (t) => {
  const app = fresh(t)
  await app.register(fastifyCookie)
  await app.register(multiCache, { session: false, route: { ignoreCookies: ['_ga'] } })
  app.get('/me', { config: { cache: { level: 'app' } } }, async (request) => ({ token: request.cookies?.[''] ?? null }))
  const nameless = await overHttp(app, '/me', { headers: { cookie: '_ga=1; =credential123' } })
  t.same(JSON.parse(nameless.body.toString()), { token: 'credential123' })
  t.equal(nameless.headers['x-cache'], 'BYPASS')
  const anonymous = await overHttp(app, '/me')
  t.same(JSON.parse(anonymous.body.toString()), { token: null }, 'an anonymous visitor never gets it')
  t.equal((await overHttp(app, '/me', { headers: { cookie: '_ga=1' } })).headers['x-cache'], 'HIT-APP', 'an ignored cookie alone still hits')
})

test('a user id with a lone surrogate is refused on Redis: it would name another user\'s index of sessions, to list or end', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const app = await sessionsOn(t, redis)
  app.post('/login', async (request) => {
    await request.sessionCache.regenerate({ user: (request.body as { user: string }).user })
    return 'ok'
  })
  app.post('/everywhere', async (request) => ({ ended: await request.sessionCache.destroyAllOf((request.body as { user: string }).user) }))
  app.get('/sessions', async (request) => (await request.sessionCache.sessionsOf('bob\ufffd')).length)
  t.equal((await postJson(app, '/login', '{"user":"bob\\ufffd"}')).statusCode, 200, "the victim's session, linked to their id")
  for (const url of ['/login', '/everywhere']) {
    const answered = await postJson(app, url, '{"user":"bob\\ud800"}')
    t.equal(answered.statusCode, 500, url)
    t.match(JSON.parse(answered.body), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /well-formed Unicode/ })
  }
  t.equal(Number((await app.inject('/sessions')).body), 1, "the victim's session is neither joined nor ended")
})

test('a batch uses the keys it checked: an array that answers otherwise when read again cannot pass a key past maxKeyLength', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false, app: { maxKeyLength: 64 } })
  await app.ready()
  let reads = 0
  const keys = ['a']
  Object.defineProperty(keys, 1, { get: () => reads++ === 0 ? 'b' : 'b'.repeat(100_000), enumerable: true })
  const given: number[] = []
  t.same(await app.appCache.getOrLoadMany(keys, async (missing) => { given.push(...missing.map((key) => key.length)); return missing.map(() => 1) }), [1, 1])
  t.same(given, [1, 1], 'the loader is given the keys as checked')
  t.equal(reads, 1, 'the array is read once')
})
