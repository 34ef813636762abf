import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import multiCache from '../../index.js'
import { captureLogs, cookieOf, fresh, secret } from '../helpers/app.js'
import { privateRedis } from '../helpers/redis.js'
import { JsonStore, failing } from '../helpers/stores.js'
import { until } from '../helpers/until.js'

// A store that fails or stalls never turns a handler's 200 into an error: a read that fails is a miss, a write that
// fails leaves the response as it was, and is counted and logged once per burst.

test('with a real Redis paused, cached routes at both levels still answer 200', async (t) => {
  const redis = await privateRedis(t)
  if (redis === undefined) return
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(multiCache, { session: { secret, store: redis.url }, app: { store: redis.url } })
  let runs = 0
  app.get('/catalog', { config: { cache: { level: 'app' } } }, async () => ({ run: ++runs }))
  app.get('/me', { config: { cache: { level: 'session' } } }, async (request) => ({ user: await request.sessionCache.get('user') ?? null, run: ++runs }))
  app.post('/login', async (request) => { await request.sessionCache.set('user', 'alice'); return 'ok' })
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/login' })).headers) as string

  redis.pause()
  t.teardown(() => { redis.resume() })
  for (let i = 0; i < 3; i++) {
    const catalog = await app.inject('/catalog')
    t.equal(catalog.statusCode, 200, `application level, request ${i}`)
    const me = await app.inject({ url: '/me', headers: { cookie } })
    t.equal(me.statusCode, 200, `session level, request ${i}`)
  }
  t.equal((await app.inject('/catalog')).headers['x-cache'], 'HIT-APP', "the application level's responses do not live in Redis")
  redis.resume()
  // Until the page written after the pause has landed in Redis (the response did not wait for it).
  let back = await app.inject({ url: '/me', headers: { cookie } })
  for (let tries = 0; tries < 100 && back.headers['x-cache'] !== 'HIT-SESSION'; tries++) {
    await sleep(10)
    back = await app.inject({ url: '/me', headers: { cookie } })
  }
  t.equal(back.headers['x-cache'], 'HIT-SESSION', 'caching resumes with Redis')
  t.equal(back.json().user, 'alice')
})

test('a page whose write fails goes out unchanged; the fault is counted, and logged once per burst', async (t) => {
  const store = failing(new JsonStore())
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(multiCache, { session: { secret, store } })
  // The session is read before the handler runs; the store goes down while it runs, so only the write fails.
  app.get('/me', { config: { cache: { level: 'session' } } }, async () => { store.down = true; return { user: 'alice' } })
  app.post('/login', async (request) => { await request.sessionCache.set('user', 'alice'); return 'ok' })
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/login' })).headers) as string

  for (let i = 1; i <= 5; i++) {
    const page = await app.inject({ url: '/me', headers: { cookie } })
    t.equal(page.statusCode, 200)
    t.same(page.json(), { user: 'alice' })
    t.equal(page.headers['x-cache'], 'MISS')
    await until(() => app.multiCache.stats().route?.storeErrors === i)
    store.down = false
  }
  const warnings = logs.lines.filter((line) => String(line.msg).startsWith('routeCache: the store failed (write)'))
  t.equal(warnings.length, 1, 'one line for the burst')

  store.down = true
  const unreadable = await app.inject({ url: '/me', headers: { cookie } })
  t.equal(unreadable.statusCode, 200, 'a session that cannot be read is a miss: the handler answers')
  t.equal(unreadable.headers['x-cache'], 'BYPASS')
})
