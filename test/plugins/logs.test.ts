import { test } from 'tap'
import multiCache from '../../index.js'
import { hashKey } from '../../lib/level-log.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import { captureLogs, cookieOf, fresh, secret } from '../helpers/app.js'
import { failing, GroupedStore } from '../helpers/stores.js'

type Line = Record<string, unknown>

/** An app at `trace` level over stores that can fail, with a route per level; the logs it wrote. */
async function logged (t: Parameters<typeof fresh>[0], logKeys?: boolean) {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'trace', stream: logs.stream } })
  const appStore = failing(new MemoryStore({ max: 100 }))
  const sessionStore = failing(new GroupedStore())
  await app.register(multiCache, {
    ...(logKeys === undefined ? {} : { logKeys }),
    session: { secret, store: sessionStore },
    app: { store: appStore }
  })
  app.post('/write', async (request) => {
    await request.sessionCache.set('card', 'secret-value-4242')
    return { id: request.sessionCache.id }
  })
  app.get('/read', async (request) => ({
    user: await request.reqCache.getOrLoad('user:ada@example.com', () => 'value-of-user'),
    card: await request.sessionCache.getOrLoad('card', () => 'value-of-card'),
    catalog: await app.appCache.getOrLoad('catalog', () => 'value-of-catalog')
  }))
  app.get('/page', { config: { cache: { level: 'app' } } }, async () => 'value-of-page')
  await app.ready()
  return { app, lines: logs.lines, appStore, sessionStore }
}

const withMessage = (lines: Line[], pattern: RegExp): Line[] => lines.filter((line) => pattern.test(String(line.msg)))

test('debug lines for misses, loads with their duration and invalidations, through the request logger when there is one', async (t) => {
  const { app, lines } = await logged(t)
  const written = await app.inject({ method: 'POST', url: '/write' })
  const cookie = cookieOf(written.headers) as string
  await app.inject({ url: '/read', headers: { cookie } })
  await app.inject('/page')
  await app.appCache.invalidate(['catalog'])

  const byLevel = (level: string): Line[] => lines.filter((line) => line.cacheLevel === level)
  t.ok(byLevel('request').some((line) => line.msg === 'reqCache: miss' && line.key === 'user:ada@example.com' && typeof line.reqId === 'string'), 'a request-level miss, with the reqId')
  t.ok(byLevel('request').some((line) => line.msg === 'reqCache: loaded' && typeof line.ms === 'number' && typeof line.reqId === 'string'), 'its load, with its duration')
  t.notOk(byLevel('session').some((line) => line.msg === 'sessionCache: miss'), 'the session held the card: no miss')
  t.ok(byLevel('app').some((line) => line.msg === 'appCache: miss' && line.key === 'catalog'), 'an application-level miss')
  t.ok(byLevel('app').some((line) => line.msg === 'appCache: loaded' && typeof line.ms === 'number'), 'its load')
  t.ok(byLevel('app').some((line) => line.msg === 'appCache: invalidated' && (line.keys as string[])[0] === 'catalog'), 'an invalidation')
  t.ok(byLevel('route').some((line) => line.msg === 'routeCache: miss' && String(line.key).includes('/page') && typeof line.reqId === 'string'), 'a route miss, with the reqId')
  t.ok(withMessage(lines, /: (miss|loaded|invalidated)$/).every((line) => line.level === 20), 'all at debug')
})

test('store faults: warn once per burst, through the request logger; never a value, a cookie or a session id', async (t) => {
  const { app, lines, sessionStore, appStore } = await logged(t)
  const written = await app.inject({ method: 'POST', url: '/write' })
  const cookie = cookieOf(written.headers) as string
  const id = (written.json() as { id: string }).id
  sessionStore.down = true
  appStore.down = true
  for (let i = 0; i < 5; i++) await app.inject({ url: '/read', headers: { cookie } })
  const session = withMessage(lines, /^sessionCache: the store failed/)
  t.equal(session.length, 1, 'one session fault line for the burst')
  t.equal(session[0]?.level, 40)
  t.type(session[0]?.reqId, 'string', "through the request's logger")
  t.equal(withMessage(lines, /^appCache: the store failed/).length, 1, 'one application fault line for the burst')
  const text = JSON.stringify(lines)
  for (const secretPart of [id, cookie.split('=')[1] as string, 'secret-value-4242', 'value-of-user', 'value-of-card', 'value-of-catalog', 'value-of-page']) {
    t.notOk(text.includes(secretPart), `${secretPart.slice(0, 12)}… is in no log line`)
  }
})

test('logKeys: false shows a short hash of each key instead of the key', async (t) => {
  const { app, lines, appStore } = await logged(t, false)
  const written = await app.inject({ method: 'POST', url: '/write' })
  await app.inject({ url: '/read', headers: { cookie: cookieOf(written.headers) as string } })
  await app.appCache.invalidate('catalog')
  appStore.down = true
  await app.inject({ url: '/read' })
  const text = JSON.stringify(lines)
  for (const key of ['user:ada@example.com', 'catalog', '/page']) t.notOk(text.includes(key), `${key} is in no line`)
  t.ok(lines.some((line) => line.msg === 'reqCache: miss' && line.key === hashKey('user:ada@example.com')))
  t.ok(lines.some((line) => line.msg === 'appCache: invalidated' && (line.keys as string[])[0] === hashKey('catalog')))
  t.ok(lines.some((line) => /^appCache: the store failed/.test(String(line.msg)) && line.key === hashKey('catalog')))
  t.match(hashKey('catalog'), /^[0-9a-f]{12}$/)
})

test("logKeys: false hides the key in the error a line carries too: this package's errors name their key", async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(multiCache, { session: false, logKeys: false, app: { maxBytes: 100 } })
  await app.ready()
  const key = 'user:ada@example.com:big'
  t.equal(await app.appCache.getOrLoad(key, () => 'x'.repeat(1000)), 'x'.repeat(1000))
  const line = logs.lines.find((one) => /too large to cache/.test(String(one.msg)))
  t.match(line, { key: hashKey(key), err: { message: new RegExp(hashKey(key)) } })
  t.notOk(JSON.stringify(logs.lines).includes('ada@example.com'), 'the key is in no line, its error included')
})

test('logKeys must be a boolean', async (t) => {
  const app = fresh(t)
  await t.rejects(async () => { await app.register(multiCache, { logKeys: 'no' } as never).ready() }, { message: /multiCache: option "logKeys" must be true or false/ })
})
