import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { test, type Test } from 'tap'
import multiCache from '../../index.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'

// Route response caching must never serve one user's, host's or language's page to another, nor grow without bound.
// Each test here failed on the first implementation (lookup in onRequest, key = method + URL, stored at the
// application level without expiry).

/** Lets requests with the right X-Api-Key through; refuses the others. */
async function apiKey (request: FastifyRequest, reply: FastifyReply): Promise<void> {
  if (request.headers['x-api-key'] !== 'k-1' && request.headers['x-api-key'] !== 'k-2') await reply.code(401).send({ error: 'no key' })
}

test('the lookup runs after the route\'s auth preHandler: a cached page is never served to a request it refuses', async (t) => {
  for (const shared of [false, true]) {
    const app = fresh(t)
    await app.register(multiCache, { session: { secret } })
    app.get('/report', { preHandler: apiKey, config: { cache: { level: 'app', shared } } }, async () => ({ secret: 'revenue' }))
    const allowed = await app.inject({ url: '/report', headers: { 'x-api-key': 'k-1' } })
    t.equal(allowed.statusCode, 200)
    const anonymous = await app.inject('/report')
    t.equal(anonymous.statusCode, 401, `shared: ${String(shared)}: refused, not served the stored page`)
    t.notMatch(anonymous.body, /revenue/)
    t.equal((await app.inject({ url: '/report', headers: { 'x-api-key': 'k-2' } })).headers['x-cache'], 'HIT-APP', 'after auth, the page is shared')
  }
})

test('a page that differs per API key says so with Vary, and each key gets its own', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  app.get('/account', { preHandler: apiKey, config: { cache: { level: 'app' } } }, async (request, reply) => {
    reply.header('vary', 'X-Api-Key')
    return { account: request.headers['x-api-key'] }
  })
  await app.inject({ url: '/account', headers: { 'x-api-key': 'k-1' } })
  t.same((await app.inject({ url: '/account', headers: { 'x-api-key': 'k-2' } })).json(), { account: 'k-2' })
  t.equal((await app.inject({ url: '/account', headers: { 'x-api-key': 'k-1' } })).headers['x-cache'], 'HIT-APP')
})

test('any cookie, not only the session cookie, keeps a request out of the shared cache', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  app.get('/dashboard', { config: { cache: { level: 'app' } } }, async (request) => ({ user: request.headers.cookie ?? 'anonymous' }))
  const logged = await app.inject({ url: '/dashboard', headers: { cookie: 'auth_token=alice' } })
  t.equal(logged.headers['x-cache'], 'BYPASS')
  const anonymous = await app.inject('/dashboard')
  t.same(anonymous.json(), { user: 'anonymous' }, "not alice's page")
  t.same((await app.inject({ url: '/dashboard', headers: { cookie: 'auth_token=bob' } })).json(), { user: 'auth_token=bob' }, 'nor the anonymous one')
})

/** A page with a canonical link built from the request's host, as multi-tenant and SEO code does. */
async function canonical (t: Test, trustProxy: boolean): Promise<FastifyInstance> {
  const app = fresh(t, { trustProxy })
  await app.register(multiCache, { session: false })
  app.get('/home', { config: { cache: { level: 'app' } } }, async (request) => `<link rel="canonical" href="${request.protocol}://${request.host}/home">`)
  return app
}

test('a page stored for one Host is never served to another (cache poisoning)', async (t) => {
  const app = await canonical(t, false)
  await app.inject({ url: '/home', headers: { host: 'evil.example' } })
  const victim = await app.inject({ url: '/home', headers: { host: 'shop.example' } })
  t.equal(victim.headers['x-cache'], 'MISS')
  t.match(victim.body, /shop\.example/)
  t.notMatch(victim.body, /evil/)
  t.equal((await app.inject({ url: '/home', headers: { host: 'SHOP.example' } })).headers['x-cache'], 'MISS', 'the host as the handler sees it, case included: a handler may tell the spellings apart')
  const forwarded = await app.inject({ url: '/home', headers: { host: 'shop.example', 'x-forwarded-host': 'evil.example' } })
  t.notMatch(forwarded.body, /evil/, 'without trustProxy the handler does not see X-Forwarded-Host, and neither does the key')

  const proxied = await canonical(t, true)
  await proxied.inject({ url: '/home', headers: { host: 'shop.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'https' } })
  const clean = await proxied.inject({ url: '/home', headers: { host: 'shop.example' } })
  t.equal(clean.headers['x-cache'], 'MISS', 'behind a trusted proxy, the forwarded host and protocol are keyed')
  t.notMatch(clean.body, /evil/)
  t.equal((await proxied.inject({ url: '/home', headers: { host: 'shop.example', 'x-forwarded-proto': 'https' } })).headers['x-cache'], 'MISS')
})

test('Vary set by the handler is honoured: each language gets its own page', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  let runs = 0
  app.get('/welcome', { config: { cache: { level: 'app' } } }, async (request, reply) => {
    runs++
    reply.header('vary', 'Accept-Language')
    return request.headers['accept-language'] === 'fr' ? 'Bienvenue' : 'Welcome'
  })
  const en = await app.inject({ url: '/welcome', headers: { 'accept-language': 'en' } })
  const fr = await app.inject({ url: '/welcome', headers: { 'accept-language': 'fr' } })
  t.equal(fr.body, 'Bienvenue')
  t.equal(fr.headers['x-cache'], 'MISS')
  t.equal(fr.headers.vary, 'Accept-Language', 'Vary is replayed')
  t.equal((await app.inject({ url: '/welcome', headers: { 'accept-language': 'en' } })).body, en.body)
  t.equal((await app.inject({ url: '/welcome', headers: { 'accept-language': 'fr' } })).headers['x-cache'], 'HIT-APP')
  t.equal(runs, 2)
  for (const language of ['de', 'it', 'es', 'nl', 'pt', 'pl', 'sv', 'da']) await app.inject({ url: '/welcome', headers: { 'accept-language': language } })
  t.equal((await app.inject({ url: '/welcome', headers: { 'accept-language': 'en' } })).headers['x-cache'], 'MISS', 'at most maxVariants (8) per URL')
  t.equal(app.multiCache.stats().route?.size, 1, 'all variants under one entry')
})

test('private, no-store, Set-Cookie and Vary: * responses are not stored', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  const runs: Record<string, number> = {}
  const headers: Record<string, [string, string]> = {
    private: ['cache-control', 'private, max-age=60'],
    'no-store': ['cache-control', 'no-store'],
    cookie: ['set-cookie', 'seen=1'],
    star: ['vary', '*']
  }
  for (const [name, [header, value]] of Object.entries(headers)) {
    app.get(`/${name}`, { config: { cache: { level: 'app' } } }, async (_request, reply) => {
      runs[name] = (runs[name] ?? 0) + 1
      reply.header(header, value)
      return { name }
    })
  }
  app.get('/mine', { config: { cache: { level: 'session' } } }, async (request, reply) => {
    runs.mine = (runs.mine ?? 0) + 1
    reply.header('cache-control', 'private')
    return { user: await request.sessionCache.get('user') }
  })
  app.post('/login', async (request) => { await request.sessionCache.set('user', 'alice'); return 'ok' })
  for (const name of Object.keys(headers)) {
    await app.inject(`/${name}`)
    t.equal((await app.inject(`/${name}`)).headers['x-cache'], 'MISS', name)
    t.equal(runs[name], 2, `${name}: the handler ran each time`)
  }
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/login' })).headers) as string
  await app.inject({ url: '/mine', headers: { cookie } })
  t.equal((await app.inject({ url: '/mine', headers: { cookie } })).headers['x-cache'], 'HIT-SESSION', 'private is for one user: a session may keep it')
})

test('invented query strings never push out the application level\'s defined data', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false, app: { max: 10 } })
  let loads = 0
  app.appCache.define('catalog', () => { loads++; return ['apple', 'pear'] })
  app.get('/page', { config: { cache: { level: 'app' } } }, async () => 'a page')
  app.get('/catalog', async () => await app.appCache.get('catalog'))
  await app.ready()
  for (let i = 0; i < 50; i++) await app.inject(`/page?nonce=${i}`)
  t.same((await app.inject('/catalog')).json(), ['apple', 'pear'])
  t.equal(loads, 1, 'the defined key was never evicted, so never reloaded')
  t.equal(app.multiCache.stats().app?.size, 1, "no page in the application level's store")
})

test('invented query strings cannot grow memory past its bound, in bytes or in count', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false, route: { maxSize: 4 * 1024 * 1024 } })
  const page = '€'.repeat(100_000) // 300,000 bytes in UTF-8
  app.get('/page', { config: { cache: { level: 'app' } } }, async () => page)
  for (let i = 0; i < 20; i++) await app.inject(`/page?nonce=${i}`)
  t.equal(app.multiCache.stats().route?.size, Math.floor((4 * 1024 * 1024) / 300_000), 'bodies count as the bytes held, once each')
  t.equal((await app.inject('/page?nonce=19')).headers['x-cache'], 'HIT-APP', 'the newest are kept')

  const long = fresh(t)
  await long.register(multiCache, { session: false, route: { maxSize: 64 * 1024 } })
  long.get('/ok', { config: { cache: { level: 'app' } } }, async () => 'ok')
  const pad = 'a'.repeat(15_000)
  for (let i = 0; i < 10; i++) await long.inject(`/ok?${i}=${pad}`)
  t.equal(long.multiCache.stats().route?.size, 2, 'keys count too: two 15,000-character URLs fill 64 KiB')

  const counted = fresh(t)
  await counted.register(multiCache, { session: false, route: { max: 50 } })
  counted.get('/small', { config: { cache: { level: 'app' } } }, async () => 'small')
  for (let i = 0; i < 200; i++) await counted.inject(`/small?nonce=${i}`)
  t.equal(counted.multiCache.stats().route?.size, 50, 'and at most max entries')
  t.equal(counted.multiCache.stats().route?.evictions, 150)
})

test('session pages have a bound of their own and never push out the data written with set', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret, maxEntriesPerSession: 2 } })
  app.post('/cart', async (request) => {
    await request.sessionCache.set('cart', ['apple'])
    await request.sessionCache.set('address', 'home')
    return 'ok'
  })
  app.get('/cart', async (request) => ({ cart: await request.sessionCache.get('cart'), address: await request.sessionCache.get('address') }))
  app.get('/page/:n', { config: { cache: { level: 'session' } } }, async (request) => ({ page: (request.params as { n: string }).n }))
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/cart' })).headers) as string
  for (let n = 0; n < 11; n++) await app.inject({ url: `/page/${n}`, headers: { cookie } })
  t.same((await app.inject({ url: '/cart', headers: { cookie } })).json(), { cart: ['apple'], address: 'home' })
  t.equal((await app.inject({ url: '/page/10', headers: { cookie } })).headers['x-cache'], 'HIT-SESSION')
  t.equal((await app.inject({ url: '/page/0', headers: { cookie } })).headers['x-cache'], 'MISS', 'past maxPagesPerSession (10), the oldest page went')
})

test('after regenerate() (a new user logs in on the same browser), the previous user\'s cached page is gone', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  app.post('/login/:user', async (request) => {
    await request.sessionCache.regenerate()
    await request.sessionCache.set('user', (request.params as { user: string }).user)
    return 'ok'
  })
  app.get('/me', { config: { cache: { level: 'session' } } }, async (request) => ({ user: await request.sessionCache.get('user') }))
  const alice = cookieOf((await app.inject({ method: 'POST', url: '/login/alice' })).headers) as string
  await app.inject({ url: '/me', headers: { cookie: alice } })
  t.equal((await app.inject({ url: '/me', headers: { cookie: alice } })).headers['x-cache'], 'HIT-SESSION')
  const bob = cookieOf((await app.inject({ method: 'POST', url: '/login/bob', headers: { cookie: alice } })).headers) as string
  const page = await app.inject({ url: '/me', headers: { cookie: bob } })
  t.same(page.json(), { user: 'bob' })
  t.equal(page.headers['x-cache'], 'MISS')
})

test("a route's own onSend hooks decide too: what they make private, uncacheable or language-specific is honoured", async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret } })
  // Registered after the route cache, a plugin adds its onSend hook to every route after the cache's own.
  await app.register(fp(async (scope: FastifyInstance) => {
    scope.addHook('onRoute', (route) => {
      if (route.url === '/late') route.onSend = [...[route.onSend ?? []].flat(), async (_request: FastifyRequest, reply: FastifyReply) => { reply.header('cache-control', 'no-store') }]
    })
  }))
  const runs: Record<string, number> = {}
  const hooks: Record<string, (request: FastifyRequest, reply: FastifyReply) => void> = {
    private: (_request, reply) => { reply.header('cache-control', 'private, no-store') },
    cookie: (_request, reply) => { reply.header('set-cookie', 'seen=1') },
    late: () => {}
  }
  for (const [name, hook] of Object.entries(hooks)) {
    app.get(`/${name}`, { onSend: async (request, reply) => { hook(request, reply) }, config: { cache: { level: 'app' } } }, async () => {
      runs[name] = (runs[name] ?? 0) + 1
      return { name }
    })
  }
  app.get('/welcome', {
    onSend: async (_request, reply) => { reply.header('vary', 'Accept-Language') },
    config: { cache: { level: 'app' } }
  }, async (request) => request.headers['accept-language'] === 'fr' ? 'Bienvenue' : 'Welcome')
  for (const name of Object.keys(hooks)) {
    await app.inject(`/${name}`)
    t.equal((await app.inject(`/${name}`)).headers['x-cache'], 'MISS', name)
    t.equal(runs[name], 2, `${name}: the handler ran each time`)
  }
  await app.inject({ url: '/welcome', headers: { 'accept-language': 'fr' } })
  const en = await app.inject({ url: '/welcome', headers: { 'accept-language': 'en' } })
  t.equal(en.body, 'Welcome', 'not the French page')
  t.equal((await app.inject({ url: '/welcome', headers: { 'accept-language': 'fr' } })).headers['x-cache'], 'HIT-APP')
})

test("with hook 'onRequest', only the handler's response is stored: not a hook's, nor the error handler's", async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  app.addHook('preHandler', async (request, reply) => {
    if (request.headers['user-agent'] === 'OldBrowser') return await reply.send('Please upgrade your browser')
  })
  let down = true
  app.setErrorHandler(async (error: Error, _request, reply) => await reply.code(200).send({ ok: false, error: error.message }))
  app.get('/home', { config: { cache: { level: 'app', hook: 'onRequest' } } }, async () => 'Home')
  app.get('/data', { config: { cache: { level: 'app' } } }, async () => {
    if (down) throw new Error('db timeout')
    return { ok: true }
  })
  t.equal((await app.inject({ url: '/home', headers: { 'user-agent': 'OldBrowser' } })).body, 'Please upgrade your browser')
  const modern = await app.inject({ url: '/home', headers: { 'user-agent': 'Firefox' } })
  t.equal(modern.body, 'Home', "the preHandler's answer was not stored for everyone")
  t.equal(modern.headers['x-cache'], 'MISS')
  t.equal((await app.inject({ url: '/home', headers: { 'user-agent': 'Firefox' } })).headers['x-cache'], 'HIT-APP')

  t.same((await app.inject('/data')).json(), { ok: false, error: 'db timeout' })
  down = false
  const back = await app.inject('/data')
  t.same(back.json(), { ok: true }, 'an error answered with 200 is not stored')
  t.equal(back.headers['x-cache'], 'MISS')
})

test('a custom query string parser cannot let a parameter left out of `query` set one that is in it', async (t) => {
  // A qs-style parser: `q[]=x` sets `q`.
  const brackets = (text: string): Record<string, unknown> => {
    const query: Record<string, unknown> = {}
    for (const [name, value] of new URLSearchParams(text)) {
      if (name.endsWith('[]')) query[name.slice(0, -2)] = [...[query[name.slice(0, -2)] ?? []].flat(), value]
      else query[name] = value
    }
    return query
  }
  const app = fresh(t, { routerOptions: { querystringParser: brackets } })
  await app.register(multiCache, { session: false })
  app.get('/search', { config: { cache: { level: 'app', query: ['q'] } } }, async (request) => ({ q: (request.query as { q?: unknown }).q ?? null }))
  await app.inject('/search?q[]=%3Cscript%3E')
  const victim = await app.inject('/search?utm=x')
  t.same(victim.json(), { q: null }, 'not the poisoned page')
  t.equal((await app.inject('/search?q[]=%3Cscript%3E&utm=y')).headers['x-cache'], 'HIT-APP', 'other parameters still do not count')
  t.same((await app.inject('/search?q=a')).json(), { q: 'a' })
  t.same((await app.inject('/search?q[]=a')).json(), { q: ['a'] }, 'a list is not its value')
})
