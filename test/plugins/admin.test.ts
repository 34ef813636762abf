import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import cacheAdmin from '../../plugins/admin.js'
import multiCache, { appCache } from '../../index.js'
import { captureLogs, fresh, secret } from '../helpers/app.js'
import { REDIS_URL, privateRedis, redisFor, uniquePrefix } from '../helpers/redis.js'

const TOKEN = { authorization: 'Bearer let-me-in' }
const JSON_HEADERS = { ...TOKEN, 'content-type': 'application/json' }

/** An app with every level, a defined key, and the admin API behind a bearer token; the log lines it wrote. */
async function admin (t: Test, extra: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, lines: Array<Record<string, unknown>>, loads: () => number }> {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'info', stream: logs.stream } })
  await app.register(multiCache, { session: { secret } })
  let loads = 0
  app.appCache.define('catalog', async () => ['pear', ++loads], { refreshInterval: '1h' })
  await app.register(cacheAdmin, { authorize: (request) => request.headers.authorization === TOKEN.authorization, ...extra })
  await app.ready()
  return { app, lines: logs.lines, loads: () => loads }
}

test('every route asks authorize first: 403 when it says no, 401 when it set that, and the call is logged at info', async (t) => {
  const { app, lines } = await admin(t, { logLevel: 'info' })
  for (const [method, url] of [['GET', '/_cache/'], ['GET', '/_cache/stats'], ['GET', '/_cache/defined'], ['POST', '/_cache/refresh'], ['POST', '/_cache/invalidate'], ['GET', '/_cache/keys'], ['GET', '/_cache/dashboard.js']] as const) {
    const refused = await app.inject({ method, url, headers: { authorization: 'Bearer wrong' } })
    t.equal(refused.statusCode, 403, `${method} ${url} refused`)
    t.same(refused.json(), { error: 'not allowed' })
  }
  const logged = lines.filter((line) => /^cacheAdmin: /.test(String(line.msg)))
  t.equal(logged.length, 7, 'each refusal is logged')
  t.match(logged[1], { level: 30, route: 'GET /_cache/stats', statusCode: 403, outcome: 'refused' })

  const basic = fresh(t)
  await basic.register(multiCache, { session: { secret } })
  await basic.register(cacheAdmin, {
    prefix: '/ops/cache',
    authorize: async (request, reply) => {
      if (request.headers.authorization === 'Basic b3BzOnB3') return true
      reply.code(401).header('www-authenticate', 'Basic realm="cache"')
      return false
    }
  })
  const prompted = await basic.inject('/ops/cache/stats')
  t.equal(prompted.statusCode, 401)
  t.equal(prompted.headers['www-authenticate'], 'Basic realm="cache"')
  t.equal((await basic.inject({ url: '/ops/cache/stats', headers: { authorization: 'Basic b3BzOnB3' } })).statusCode, 200)
})

test("the dashboard's polling writes nothing at info: the read-only routes log at warn, unless logLevel says otherwise", async (t) => {
  const { app, lines } = await admin(t)
  const poll = async (server: FastifyInstance): Promise<void> => {
    for (const url of ['/_cache/', '/_cache/dashboard.js', '/_cache/dashboard.css', '/_cache/defined', '/_cache/keys']) await server.inject({ url, headers: TOKEN })
    for (let i = 0; i < 30; i++) await server.inject({ url: '/_cache/stats', headers: TOKEN }) // a minute of an open tab
    await server.inject({ url: '/_cache/stats', headers: { authorization: 'Bearer expired' } })
  }
  const before = lines.length
  await poll(app)
  t.same(lines.slice(before), [], 'not a line: neither Fastify\'s request lines nor cacheAdmin\'s')
  await app.inject({ method: 'POST', url: '/_cache/invalidate', headers: JSON_HEADERS, payload: { keys: ['catalog'] } })
  t.match(lines.slice(before).find((line) => /^cacheAdmin: /.test(String(line.msg))), { level: 30, route: 'POST /_cache/invalidate', outcome: 'ok' }, 'a change is still logged at info')

  const verbose = await admin(t, { logLevel: 'info' })
  const from = verbose.lines.length
  await poll(verbose.app)
  const logged = verbose.lines.slice(from).filter((line) => /^cacheAdmin: /.test(String(line.msg)))
  t.equal(logged.length, 36, "with logLevel: 'info', every call is logged again")
  t.match(logged.at(-1), { level: 30, route: 'GET /_cache/stats', outcome: 'refused' })
})

test('GET stats: the levels and their stats, plus hit ratios', async (t) => {
  const { app, lines } = await admin(t)
  await app.appCache.get('catalog')
  await app.appCache.get('nothing')
  const res = await app.inject({ url: '/_cache/stats', headers: TOKEN })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.same(Object.keys(body.levels), ['request', 'session', 'app', 'route'])
  t.match(body.levels.app, { hits: 1, misses: 1, loads: 1, size: 1, pinned: 1, tagsUnknown: 0, hitRatio: 0.5 })
  t.equal(body.levels.request.hitRatio, null, 'null before the first lookup')
  t.type(body.at, 'number')
  t.equal(lines.find((line) => line.route === 'GET /_cache/stats'), undefined, 'a read is not logged at info')
})

test('GET defined and POST refresh: the refresh time changes, and an unknown key is a 404', async (t) => {
  const { app, loads } = await admin(t)
  const before = (await app.inject({ url: '/_cache/defined', headers: TOKEN })).json().keys
  t.match(before, [{ key: 'catalog', lastRefresh: Number, durationMs: Number, lastError: null, nextRefresh: Number }])
  t.ok(before[0].nextRefresh > Date.now(), 'the next refresh is ahead')
  await new Promise((resolve) => setTimeout(resolve, 5)) // a later millisecond for the new refresh time
  const refreshed = await app.inject({ method: 'POST', url: '/_cache/refresh', headers: JSON_HEADERS, payload: { key: 'catalog' } })
  t.equal(refreshed.statusCode, 200)
  t.ok(refreshed.json().lastRefresh > before[0].lastRefresh, 'a new refresh time')
  t.equal(loads(), 2)
  t.same(await app.appCache.get('catalog'), ['pear', 2])
  const unknown = await app.inject({ method: 'POST', url: '/_cache/refresh', headers: JSON_HEADERS, payload: { key: 'nope' } })
  t.equal(unknown.statusCode, 404)
  t.same(unknown.json(), { error: '"nope" is not a defined key' })
})

test('a refresh that fails answers 502, keeps the last good value and shows the error in defined', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'info', stream: logs.stream } })
  await app.register(appCache)
  let fail = false
  app.appCache.define('rates', async () => { if (fail) throw new Error('upstream down'); return 1 })
  await app.register(cacheAdmin, { authorize: () => true })
  await app.ready()
  fail = true
  const res = await app.inject({ method: 'POST', url: '/_cache/refresh', headers: { 'content-type': 'application/json' }, payload: { key: 'rates' } })
  t.equal(res.statusCode, 502)
  t.same(res.json(), { error: 'the refresh failed: upstream down' })
  t.equal(await app.appCache.get('rates'), 1)
  t.match((await app.inject('/_cache/defined')).json().keys, [{ key: 'rates', lastError: 'upstream down', nextRefresh: null }])
  t.ok(logs.lines.some((line) => line.level === 40 && /refreshing a defined key failed/.test(String(line.msg))), 'logged at warn')
})

test('POST invalidate drops keys and tags', async (t) => {
  const { app } = await admin(t)
  await app.appCache.set('a', 1)
  await app.appCache.set('b', 2)
  const res = await app.inject({ method: 'POST', url: '/_cache/invalidate', headers: JSON_HEADERS, payload: { keys: ['a', 'b'] } })
  t.same([res.statusCode, res.json()], [200, { keys: 2, tags: 0 }])
  t.equal(await app.appCache.get('a'), undefined)
  await app.appCache.set('p', 1, { tags: ['products'] })
  await app.appCache.set('q', 2, { tags: ['prices'] })
  const tags = await app.inject({ method: 'POST', url: '/_cache/invalidate', headers: JSON_HEADERS, payload: { tags: ['products', 'prices'] } })
  t.same([tags.statusCode, tags.json()], [200, { keys: 0, tags: 2 }])
  t.same([await app.appCache.get('p'), await app.appCache.get('q')], [undefined, undefined], 'every entry with one of the tags is gone')
  t.equal(app.multiCache.stats().app?.tagInvalidations, 1)
  for (const payload of [{}, { keys: [] }, { keys: [''] }, { other: ['a'] }]) {
    t.equal((await app.inject({ method: 'POST', url: '/_cache/invalidate', headers: JSON_HEADERS, payload })).statusCode, 400, JSON.stringify(payload))
  }
  t.equal((await app.inject({ method: 'POST', url: '/_cache/invalidate', headers: JSON_HEADERS, payload: { keys: ['k'.repeat(2000)] } })).statusCode, 400, 'a key over maxKeyLength')
})

test('state-changing routes take JSON bodies only and refuse a cross-site Origin', async (t) => {
  const { app } = await admin(t)
  const post = async (headers: Record<string, string>, payload: string): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/_cache/invalidate', headers: { ...TOKEN, ...headers }, payload })).statusCode
  const json = JSON.stringify({ keys: ['a'] })
  t.equal(await post({ 'content-type': 'text/plain' }, json), 415, 'text/plain, which a form can send without a preflight')
  t.equal(await post({ 'content-type': 'application/x-www-form-urlencoded' }, 'keys=a'), 415)
  t.equal(await post({ 'content-type': 'application/json', origin: 'https://evil.example' }, json), 403)
  t.equal(await post({ 'content-type': 'application/json', origin: 'null' }, json), 403)
  t.equal(await post({ 'content-type': 'application/json', 'sec-fetch-site': 'cross-site' }, json), 403)
  t.equal(await post({ 'content-type': 'application/json', origin: 'http://localhost:80', 'sec-fetch-site': 'same-origin' }, json), 200, 'same origin')
  t.equal(await post({ 'content-type': 'application/json' }, json), 200, 'no browser headers: curl')
  t.equal(await post({ 'content-type': 'Application/JSON; charset=utf-8' }, json), 200, 'its parameters and letter case are its own')
  t.equal(await post({ 'content-type': 'application/jsonx' }, json), 415)
})

test('JSON bodies only even where the app parses forms (@fastify/formbody): a form posts no JSON without a preflight', async (t) => {
  const app = fresh(t)
  // What @fastify/formbody adds, on the app, before the admin API is registered.
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_request, body, done) => { done(null, Object.fromEntries(new URLSearchParams(body as string))) })
  app.addContentTypeParser('multipart/form-data', (_request, _payload, done) => { done(null, { keys: ['hot'] }) })
  await app.register(multiCache, { session: { secret } })
  await app.register(cacheAdmin, { authorize: (request) => request.headers.authorization === TOKEN.authorization })
  await app.ready()
  await app.appCache.set('hot', 1)
  for (const [type, payload] of [['application/x-www-form-urlencoded', 'keys=hot'], ['multipart/form-data; boundary=x', '--x--']] as const) {
    const answered = await app.inject({ method: 'POST', url: '/_cache/invalidate', headers: { ...TOKEN, 'content-type': type }, payload })
    t.equal(answered.statusCode, 415, type)
  }
  t.equal(await app.appCache.get('hot'), 1, 'nothing was invalidated')
  const stats = await app.inject({ url: '/_cache/stats', headers: TOKEN })
  t.equal(stats.headers['cache-control'], 'no-store', 'and what it answers is kept by no cache between')
})

test('GET keys: application keys with their remaining ttl, paged, never values', async (t) => {
  const { app } = await admin(t)
  for (let i = 0; i < 5; i++) await app.appCache.set(`product:${i}`, { secret: `value-${i}` }, { ttl: '1h' })
  const first = await app.inject({ url: '/_cache/keys?match=product:&limit=3', headers: TOKEN })
  t.equal(first.statusCode, 200)
  const page = first.json()
  t.equal(page.keys.length, 3)
  t.ok(page.keys.every((entry: { key: string, ttl: number }) => entry.key.startsWith('product:') && entry.ttl > 0 && entry.ttl <= 3_600_000))
  const second = (await app.inject({ url: `/_cache/keys?match=product:&limit=3&cursor=${page.cursor as string}`, headers: TOKEN })).json()
  t.equal(second.keys.length, 2)
  t.equal(second.cursor, null, 'the last page')
  t.same(new Set([...page.keys, ...second.keys].map((entry: { key: string }) => entry.key)).size, 5)
  t.notMatch(first.body, /value-/, 'no value')
  const all = (await app.inject({ url: '/_cache/keys', headers: TOKEN })).json()
  t.match(all.keys, [{ key: String, ttl: Number }])
  t.ok(all.keys.some((entry: { key: string, ttl: number }) => entry.key === 'catalog' && entry.ttl === 0), 'no ttl reads 0')
  t.equal((await app.inject({ url: '/_cache/keys?limit=5000', headers: TOKEN })).statusCode, 400)
})

test('GET keys from Redis, through the memory tier and the circuit breaker', async (t) => {
  // A Redis of the test's own: the pages walk a few hundred keys each, and the shared one may hold thousands of others.
  const server = await privateRedis(t)
  if (server === undefined) return
  const app = fresh(t)
  await app.register(appCache, { store: server.url })
  await app.register(cacheAdmin, { authorize: () => true })
  for (let i = 0; i < 25; i++) await app.appCache.set(`k${i}`, i, { ttl: i === 0 ? 0 : '1m' })
  const seen = new Map<string, number>()
  let cursor: string | null = null
  let pages = 0
  do {
    const page = (await app.inject(`/_cache/keys?limit=10${cursor === null ? '' : `&cursor=${cursor}`}`)).json() as { keys: Array<{ key: string, ttl: number }>, cursor: string | null }
    for (const { key, ttl } of page.keys) seen.set(key, ttl)
    cursor = page.cursor
  } while (cursor !== null && ++pages < 100)
  t.equal(seen.size, 25)
  t.equal(seen.get('k0'), 0)
  t.ok((seen.get('k1') ?? 0) > 0)
  // A page scans a bounded part of Redis (others' keys included), so the matches may take more than one.
  const matched: string[] = []
  cursor = null
  pages = 0
  do {
    const page = (await app.inject(`/_cache/keys?match=k2&limit=100${cursor === null ? '' : `&cursor=${cursor}`}`)).json() as { keys: Array<{ key: string }>, cursor: string | null }
    matched.push(...page.keys.map(({ key }) => key))
    cursor = page.cursor
  } while (cursor !== null && ++pages < 100)
  t.same(matched.sort(), ['k2', 'k20', 'k21', 'k22', 'k23', 'k24'])
})

test('a store that cannot list its keys answers 501; without the application level, 404', async (t) => {
  const app = fresh(t)
  await app.register(appCache, { store: { get: () => undefined, set: () => {}, delete: () => false, clear: () => {} } })
  await app.register(cacheAdmin, { authorize: () => true })
  t.equal((await app.inject('/_cache/keys')).statusCode, 501)
  const bare = fresh(t)
  await bare.register(multiCache, { app: false, session: { secret } })
  await bare.register(cacheAdmin, { authorize: () => true })
  t.equal((await bare.inject('/_cache/keys')).statusCode, 404)
  t.same((await bare.inject('/_cache/defined')).json(), { keys: [] })
  t.equal((await bare.inject({ method: 'POST', url: '/_cache/refresh', payload: { key: 'x' } })).statusCode, 404)
  t.equal((await bare.inject({ method: 'POST', url: '/_cache/invalidate', payload: { keys: ['x'] } })).statusCode, 404)
})

test('the dashboard: one page, one script, one stylesheet, from the prefix, under a strict CSP', async (t) => {
  const { app } = await admin(t)
  const page = await app.inject({ url: '/_cache/', headers: TOKEN })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.equal(page.headers['content-security-policy'], "default-src 'self'; frame-ancestors 'none'")
  t.match(page.body, '<script src="/_cache/dashboard.js" defer></script>')
  t.match(page.body, '<link rel="stylesheet" href="/_cache/dashboard.css">')
  t.notMatch(page.body, /<script>|<style|style=|\son\w+=/, 'no inline script or style')
  t.equal((await app.inject({ url: '/_cache', headers: TOKEN })).statusCode, 200, 'without the trailing slash too')
  const script = await app.inject({ url: '/_cache/dashboard.js', headers: TOKEN })
  t.match(script.headers['content-type'], /^text\/javascript/)
  t.doesNotThrow(() => new Function(script.body), 'the script parses') // eslint-disable-line no-new-func
  t.match((await app.inject({ url: '/_cache/dashboard.css', headers: TOKEN })).headers['content-type'], /^text\/css/)
})

test('invalid options fail ready() naming the option', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{}, /cacheAdmin: option "authorize" is required/],
    [{ authorize: true }, /cacheAdmin: option "authorize" must be a function/],
    [{ authorize: () => true, prefix: 'cache' }, /cacheAdmin: option "prefix" must be a path/],
    [{ authorize: () => true, prefix: '/cache/' }, /option "prefix" must be a path/],
    [{ authorize: () => true, open: true }, /option "open" is not an option/],
    [{ authorize: () => true, logLevel: 'quiet' }, /cacheAdmin: option "logLevel" must be one of 'warn', 'fatal', 'error', 'info', 'debug', 'trace', 'silent', got "quiet"/]
  ]
  for (const [options, message] of cases) {
    const app = fresh(t)
    await app.register(appCache)
    await t.rejects(async () => { await app.register(cacheAdmin, options as never).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message })
  }
  const alone = fresh(t)
  await t.rejects(async () => { await alone.register(cacheAdmin, { authorize: () => true }).ready() }, /multiCache/, 'the levels come first')
})

test('what a red-team review found: a cursor that is not one, an origin of another scheme, a yes after a refusal, an enclosing prefix', async (t) => {
  if (await redisFor(t) === undefined) return
  const app = fresh(t)
  await app.register(appCache, { store: REDIS_URL, prefix: uniquePrefix(t) })
  await app.register(cacheAdmin, {
    authorize: (request, reply) => {
      // Sets a refusal and still says yes: read as a refusal.
      if (request.headers['x-confused'] !== undefined) reply.code(401)
      return request.headers.authorization === TOKEN.authorization
    }
  })
  await app.ready()
  for (let i = 0; i < 5; i++) t.equal((await app.inject({ url: '/_cache/keys?cursor=x', headers: TOKEN })).statusCode, 400, 'a malformed cursor is refused before it reaches Redis')
  for (let i = 0; i < 5; i++) t.equal((await app.inject({ url: '/_cache/keys?cursor=18446744073709551616', headers: TOKEN })).statusCode, 400, 'and one past 64 bits, which Redis refuses as an error')
  t.equal((await app.inject({ url: '/_cache/keys?cursor=18446744073709551615', headers: TOKEN })).statusCode, 200, 'the largest cursor there is')
  t.equal(app.multiCache.stats().app?.breaker, 'closed', 'so it cannot open the circuit breaker')
  await app.appCache.set('k', 1)
  const post = async (headers: Record<string, string>): Promise<number> =>
    (await app.inject({ method: 'POST', url: '/_cache/invalidate', headers: { ...JSON_HEADERS, ...headers }, payload: { keys: ['k'] } })).statusCode
  t.equal(await post({ origin: 'https://localhost:80' }), 403, 'an origin of another scheme is another site')
  t.equal(await post({ 'x-confused': '1' }), 401, 'a yes after a refusal is a refusal')
  t.equal(await app.appCache.get('k'), 1, 'nothing ran')

  const nested = fresh(t)
  await nested.register(async (ops) => {
    await ops.register(appCache)
    await ops.register(cacheAdmin, { authorize: () => true })
  }, { prefix: '/ops' })
  const page = await nested.inject('/ops/_cache/')
  t.match(page.body, /<script src="\/ops\/_cache\/dashboard\.js" defer><\/script>/, 'the page names its assets where they are')
  t.match(page.body, /data-prefix="\/ops\/_cache"/)
  t.equal((await nested.inject('/ops/_cache/dashboard.js')).statusCode, 200)
})
