import { test } from 'tap'
import { appCache, routeCache, sessionCache } from '../../index.js'
import { captureLogs, cookieOf, fresh, secret } from '../helpers/app.js'
import { privateRedis, redisFor } from '../helpers/redis.js'
import { eventually } from '../helpers/wait.js'

// A Redis given as a URL that is down when the app starts (a deploy that brings the app up before Redis): the app
// starts, answers without it, says so once, and uses it as soon as it answers. Each Redis is the test's own
// redis-server, stopped before the app registers and started after it is ready.

test('sessions: an app whose Redis is down at start-up starts, logs one warning, and keeps sessions once Redis answers', async (t) => {
  const server = await privateRedis(t)
  if (server === undefined) return
  await server.kill()
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(sessionCache, { secret, store: server.url })
  app.post('/cart', async (request) => { await request.sessionCache.set('cart', ['apple']); return 'ok' })
  app.get('/cart', async (request) => ({ cart: await request.sessionCache.get('cart') ?? null }))
  await app.ready()
  const warnings = logs.lines.filter((line) => line.level === 40)
  t.equal(warnings.length, 1, 'one warning')
  t.match(warnings[0], { cacheLevel: 'session', msg: /^sessionCache: the Redis at redis:\/\/127\.0\.0\.1:\d+ did not answer at start-up \(.+\); starting without it/ })

  t.same((await app.inject('/cart')).json(), { cart: null }, 'a read is answered without Redis')
  const refused = await app.inject({ method: 'POST', url: '/cart' })
  t.equal(refused.statusCode, 503)
  t.match(refused.json(), { code: 'FST_MULTICACHE_STORE' }, 'a write cannot be kept, and says so')

  await server.restart()
  let cookie: string | undefined
  t.ok(await eventually(async () => {
    const written = await app.inject({ method: 'POST', url: '/cart' })
    cookie = cookieOf(written.headers)
    return written.statusCode === 200
  }, 5000), 'once Redis answers, a write is kept')
  t.same((await app.inject({ url: '/cart', headers: { cookie } })).json(), { cart: ['apple'] }, 'and read back')
})

test('application level: an app whose Redis is down at start-up answers from the loaders and caches tagged entries once Redis answers', async (t) => {
  if (await redisFor(t) === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  await server.kill()
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(appCache, { store: server.url })
  await app.register(routeCache)
  let loads = 0
  let runs = 0
  app.get('/product', async () => ({ load: await app.appCache.getOrLoad('product', () => ++loads, { tags: ['catalog'] }) }))
  app.get('/catalog', { config: { cache: { level: 'app', tags: ['catalog'] } } }, async () => ({ run: ++runs }))
  const started = Date.now()
  await app.ready()
  t.ok(Date.now() - started < 1500, 'the start is not held up waiting for Redis')
  const product = async (): Promise<number> => ((await app.inject('/product')).json() as { load: number }).load
  t.equal(await product(), 1, 'served from the loader')
  t.equal(await product(), 2, 'and again: nothing is cached without Redis')
  const warnings = logs.lines.filter((line) => line.level === 40)
  t.equal(warnings.length, 1, 'one warning, the failed reads that follow it held back')
  t.match(warnings[0], { cacheLevel: 'app', msg: /^appCache: the Redis at redis:\/\/127\.0\.0\.1:\d+ did not answer at start-up/ })

  await server.restart()
  t.ok(await eventually(async () => {
    const first = await product()
    return await product() === first
  }, 5000), 'once Redis answers, a tagged entry is cached')
  await app.inject('/catalog')
  t.equal((await app.inject('/catalog')).headers['x-cache'], 'HIT-APP', 'and so is a tagged route response')
  const cached = await product()
  await app.appCache.invalidateTag('catalog')
  t.ok(await product() > cached, 'invalidateTag drops it')
})

test('requireStore: a Redis that does not answer fails the start with an error that says the store is unreachable', async (t) => {
  for (const [plugin, register] of [
    ['appCache', async (app: ReturnType<typeof fresh>) => { await app.register(appCache, { store: 'redis://user:hunter2@127.0.0.1:1', requireStore: true }).ready() }],
    ['sessionCache', async (app: ReturnType<typeof fresh>) => { await app.register(sessionCache, { secret, store: 'redis://127.0.0.1:1', requireStore: true }).ready() }]
  ] as const) {
    const app = fresh(t)
    await t.rejects(async () => { await register(app) }, {
      code: 'FST_MULTICACHE_STORE_UNREACHABLE',
      message: new RegExp(`^${plugin}: the Redis at redis://(\\*\\*\\*@)?127\\.0\\.0\\.1:1 did not answer at start-up \\(.*ECONNREFUSED.*\\), and requireStore is set`)
    }, plugin)
  }
  const passed = fresh(t)
  await t.rejects(async () => { await passed.register(appCache, { requireStore: true }).ready() }, {
    code: 'FST_MULTICACHE_INVALID_OPTION', message: /^appCache: option "requireStore" applies to a Redis the plugin opens only/
  }, 'a store the plugin does not open')
})

test('requireStore: a Redis Cluster none of whose nodes answers fails the start, naming the nodes without the password', async (t) => {
  for (const store of ['redis+cluster://user:hunter2@127.0.0.1:1,127.0.0.1:2', ['redis://user:hunter2@127.0.0.1:1', 'redis://user:hunter2@127.0.0.1:2']] as const) {
    const app = fresh(t)
    const started = Date.now()
    await t.rejects(async () => { await app.register(appCache, { store, requireStore: true }).ready() }, {
      code: 'FST_MULTICACHE_STORE_UNREACHABLE',
      message: /^appCache: the Redis at redis\+cluster:\/\/127\.0\.0\.1:1,127\.0\.0\.1:2 did not answer at start-up \(.+\), and requireStore is set/
    })
    t.ok(Date.now() - started < 3000, 'within the start-up wait')
  }
})

test("a cluster's nodes must agree on the scheme and the credentials, and be host:port", async (t) => {
  for (const store of [['redis://127.0.0.1:7000', 'rediss://127.0.0.1:7001'], ['redis://a:b@127.0.0.1:7000', 'redis://127.0.0.1:7001'], 'redis+cluster://127.0.0.1:7000,:7001']) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(appCache, { store: store as never }).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message: /^appCache: option "store" must (give a cluster's nodes with one scheme and the same credentials|list each node of a cluster as host:port)/ }, String(store))
  }
})
