import fastifyCookie from '@fastify/cookie'
import fastifySession from '@fastify/session'
import { test } from 'tap'
import multiCache from '../../index.js'
import { captureLogs, cookieOf, fresh, secret } from '../helpers/app.js'
import { overHttp } from '../helpers/http.js'

// Route caching in a real app's set-up: a browser's analytics and consent cookies, @fastify/session beside the
// session level, and the Cache-Status header that says what happened and why (issue 19).

const ANALYTICS = ['theme', 'cookieconsent_status', /^_ga(_.+)?$/, '_gid']

test('ignoreCookies: a public page is cached for a browser that carries only analytics, consent and preference cookies', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret }, route: { ignoreCookies: ANALYTICS } })
  let calls = 0
  app.get('/catalog', { config: { cache: { level: 'app' } } }, async () => ({ n: ++calls }))
  app.post('/cart', async (request) => { await request.sessionCache.set('cart', [1]); return 'ok' })
  const browser = '_ga=GA1.1.123.456; _ga_ABC=GS1.1; _gid=GA1.2.3; cookieconsent_status=allow; theme=dark'
  const first = await overHttp(app, '/catalog', { headers: { cookie: browser } })
  const second = await overHttp(app, '/catalog', { headers: { cookie: browser } })
  t.equal(first.headers['x-cache'], 'MISS')
  t.equal(second.headers['x-cache'], 'HIT-APP')
  t.equal(calls, 1, 'one handler run for two browsers with analytics cookies')
  t.equal((await overHttp(app, '/catalog')).headers['x-cache'], 'HIT-APP', 'and the same copy as a visitor without cookies')

  const login = await overHttp(app, '/catalog', { headers: { cookie: browser + '; remember_me=abc' } })
  t.equal(login.headers['x-cache'], 'BYPASS', 'any other cookie still bypasses')
  t.equal(login.headers['cache-status'], 'fastify-multi-cache; fwd=bypass; detail=credentials-cookie')
  const session = cookieOf((await app.inject({ method: 'POST', url: '/cart' })).headers) as string
  t.equal((await overHttp(app, '/catalog', { headers: { cookie: `${browser}; ${session}` } })).headers['x-cache'], 'BYPASS', "and the session level's own cookie")
  t.equal((await overHttp(app, '/catalog', { headers: { cookie: 'theme=dark', authorization: 'Bearer x' } })).headers['cache-status'], 'fastify-multi-cache; fwd=bypass; detail=authorization')
  t.same(app.multiCache.stats().route?.reasons, { 'credentials-cookie': 2, authorization: 1 })
})

test("ignoreCookies cannot name the session level's cookie away", async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret, cookieName: 'sid' }, route: { ignoreCookies: ['sid', /.*/] } })
  app.get('/catalog', { config: { cache: { level: 'app' } } }, async () => 'catalog')
  app.post('/cart', async (request) => { await request.sessionCache.set('cart', [1]); return 'ok' })
  const session = cookieOf((await app.inject({ method: 'POST', url: '/cart' })).headers) as string
  await app.inject('/catalog')
  t.equal((await app.inject({ url: '/catalog', headers: { cookie: session } })).headers['x-cache'], 'BYPASS')
  t.equal((await app.inject({ url: '/catalog', headers: { cookie: 'anything=1' } })).headers['x-cache'], 'HIT-APP', 'the pattern is honoured for other names')
})

test('ignoreCookies is checked at registration', async (t) => {
  for (const ignoreCookies of ['_ga', [''], [42], [null]]) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(multiCache, { route: { ignoreCookies: ignoreCookies as never } }).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message: /routeCache: option "ignoreCookies" must be an array of cookie names/ })
  }
})

test('Cache-Status (RFC 9211) on every response of a cached route: hit with its ttl, miss stored, and why not', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  app.get('/catalog', { config: { cache: { level: 'app', ttl: '1m' } } }, async () => 'catalog')
  app.get('/private', { config: { cache: { level: 'app' } } }, async (_request, reply) => reply.header('cache-control', 'private').send('mine'))
  app.get('/stale', { config: { cache: { level: 'app', ttl: 50, staleWhileRevalidate: '1m' } } }, async () => 'stale')
  app.route({ method: ['GET', 'POST'], url: '/both', config: { cache: { level: 'app' } }, handler: async () => 'both' })
  app.get('/broken', { config: { cache: { level: 'app' } } }, async () => { throw new Error('no') })
  app.get('/mine', { config: { cache: { level: 'session' } } }, async () => 'mine')

  const miss = await app.inject('/catalog')
  t.equal(miss.headers['cache-status'], 'fastify-multi-cache; fwd=uri-miss; stored')
  const hit = await app.inject('/catalog')
  t.match(hit.headers['cache-status'], /^fastify-multi-cache; hit; ttl=(59|60)$/)
  t.equal((await app.inject('/private')).headers['cache-status'], 'fastify-multi-cache; fwd=uri-miss; detail=private')
  t.equal((await app.inject({ method: 'POST', url: '/both' })).headers['cache-status'], 'fastify-multi-cache; fwd=method; detail=method')
  t.equal((await app.inject('/broken')).headers['cache-status'], 'fastify-multi-cache; fwd=uri-miss; detail=error')
  t.equal((await app.inject('/mine')).headers['cache-status'], 'fastify-multi-cache; fwd=bypass; detail=no-session')
  await app.inject('/stale')
  await new Promise((resolve) => setTimeout(resolve, 80))
  t.equal((await app.inject('/stale')).headers['cache-status'], 'fastify-multi-cache; fwd=stale; stored', 'the request that refreshes a stale response')
  t.equal(hit.headers['x-cache'], 'HIT-APP', 'x-cache stays as it was')
  t.same(app.multiCache.stats().route?.reasons, { private: 1, method: 1, error: 1, 'no-session': 1 })
})

test('either header can be turned off', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret }, route: { cacheStatusHeader: false, xCacheHeader: false } })
  app.get('/catalog', { config: { cache: { level: 'app' } } }, async () => 'catalog')
  const answer = await app.inject('/catalog')
  t.equal(answer.headers['cache-status'], undefined)
  t.equal(answer.headers['x-cache'], undefined)
})

test('@fastify/session at its defaults beside the session level: nothing is stored, the reason is counted, and a warning says what to do', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(fastifyCookie)
  await app.register(fastifySession, { secret, cookie: { secure: false } }) // saveUninitialized: true, its default
  await app.register(multiCache, { session: { secret, cookieName: 'cart' }, route: { ignoreCookies: ['theme'] } })
  let calls = 0
  app.get('/catalog', { config: { cache: { level: 'app', shared: true } } }, async () => ({ n: ++calls }))
  const answers = []
  for (let i = 0; i < 3; i++) answers.push(await overHttp(app, '/catalog'))
  t.same(answers.map((answer) => answer.headers['x-cache']), ['MISS', 'MISS', 'MISS'])
  t.equal(answers[0]?.headers['cache-status'], 'fastify-multi-cache; fwd=uri-miss; detail=set-cookie')
  t.equal(app.multiCache.stats().route?.reasons?.['set-cookie'], 3)
  const warnings = logs.lines.filter((line) => String(line.msg).includes('saveUninitialized: false'))
  t.equal(warnings.length, 1, 'said once')
  t.match(warnings[0]?.msg, /GET \/catalog/)
})

test('a page served from or stored in a session is private to every cache in front', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  app.get('/mine', { config: { cache: { level: 'session' } } }, async (_request, reply) => reply.header('cache-control', 'public, max-age=60').send('mine'))
  app.get('/secret', { config: { cache: { level: 'session' } } }, async (_request, reply) => reply.header('cache-control', 'no-store').send('secret'))
  app.post('/cart', async (request) => { await request.sessionCache.set('cart', [1]); return 'ok' })
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/cart' })).headers) as string
  const miss = await app.inject({ url: '/mine', headers: { cookie } })
  const hit = await app.inject({ url: '/mine', headers: { cookie } })
  t.equal(hit.headers['x-cache'], 'HIT-SESSION')
  t.equal(miss.headers['cache-control'], 'private, max-age=60')
  t.equal(hit.headers['cache-control'], 'private, max-age=60')
  t.equal((await app.inject({ url: '/secret', headers: { cookie } })).headers['cache-control'], 'no-store', 'a stricter one stays')
})

test('a sessionCache cookie that another session plugin writes too is reported', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(fastifyCookie)
  await app.register(fastifySession, { secret, cookieName: 'sid', cookie: { secure: false } })
  await app.register(multiCache, { session: { secret } })
  app.post('/cart', async (request) => { await request.sessionCache.set('cart', [1]); return 'ok' })
  await app.inject({ method: 'POST', url: '/cart' })
  await app.inject({ method: 'POST', url: '/cart' })
  t.equal(logs.lines.filter((line) => String(line.msg).includes('another plugin sets a cookie named "sid"')).length, 1)

  const defaults = captureLogs()
  const other = fresh(t, { logger: { level: 'warn', stream: defaults.stream } })
  await other.register(fastifyCookie)
  await other.register(fastifySession, { secret })
  await other.register(multiCache, { session: { secret, cookieName: 'sessionId' } })
  await other.ready()
  t.ok(defaults.lines.some((line) => String(line.msg).includes('the default of @fastify/session')), 'at registration, a name that is the default of a registered session plugin')
})

test('a cached route declared before routeCache was ready is named in a warning at start-up, once', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  // Three ways to miss routeCache: a route declared before its registration, one declared after a registration that
  // was not awaited, and one in a plugin context loaded before it.
  app.get('/early', { config: { cache: { level: 'app' } } }, async () => 'early')
  app.register(async (routes) => {
    routes.get('/sibling/:id', { config: { cache: { level: 'app', query: 'none' } } }, async () => 'sibling')
  })
  app.register(multiCache, { session: { secret } })
  app.post('/unawaited', { config: { cache: { level: 'app', methods: ['POST'] } } }, async () => 'unawaited')
  app.get('/plain', async () => 'not cached, and not meant to be')
  await app.after()
  app.get('/late', { config: { cache: { level: 'app' } } }, async () => 'late')
  app.register(async (routes) => { routes.get('/inside', { config: { cache: { level: 'app' } } }, async () => 'inside') })
  await app.ready()

  const warned = logs.lines.filter((line) => line.level === 40).map((line) => line.msg)
  t.same(warned.toSorted(), ['GET, HEAD /early', 'GET, HEAD /sibling/:id', 'POST /unawaited'].map((route) =>
    `routeCache: ${route} has config.cache but is not cached: it was declared before routeCache was registered, or in a plugin context routeCache does not reach. Register routeCache (or multiCache) and await it before declaring cached routes`))
  t.equal((await app.inject('/early')).headers['x-cache'], undefined, 'the warning says what happens: it is not cached')
  for (const url of ['/late', '/inside']) {
    await app.inject(url)
    t.equal((await app.inject(url)).headers['x-cache'], 'HIT-APP', `${url}, declared after it, is cached and not named`)
  }
  await app.close()
  t.equal(logs.lines.filter((line) => line.level === 40).length, 3, 'once: nothing more is logged for those routes')
})
