import FakeTimers from '@sinonjs/fake-timers'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { test, type Test } from 'tap'
import multiCache, { appCache, routeCache, sessionCache, type MultiCacheOptions } from '../../index.js'
import { HEADER_SETS } from '../../lib/http/response.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'
import { overHttp } from '../helpers/http.js'

/** An app with every level and a few cached routes; `calls` counts each handler's runs. */
async function build (t: Test, options: MultiCacheOptions = {}): Promise<{ app: FastifyInstance, calls: Record<string, number> }> {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret }, ...options })
  const calls: Record<string, number> = {}
  const count = (name: string): number => { calls[name] = (calls[name] ?? 0) + 1; return calls[name] }
  app.get('/catalog', { config: { cache: { level: 'app', ttl: '1m' } } }, async () => ({ n: count('catalog'), items: [1, 2, 3] }))
  app.get('/default', { config: { cache: { level: 'app' } } }, async () => ({ n: count('default') }))
  app.get('/shared', { config: { cache: { level: 'app', shared: true } } }, async () => ({ n: count('shared') }))
  app.get('/missing', { config: { cache: { level: 'app' } } }, async (_request, reply) => reply.code(404).send({ n: count('missing') }))
  app.route({ method: ['GET', 'POST'], url: '/both', config: { cache: { level: 'app' } }, handler: async () => ({ n: count('both') }) })
  app.get('/bytes', { config: { cache: { level: 'app' } } }, async (_request, reply) => {
    count('bytes')
    return await reply.type('application/octet-stream').send(Buffer.from([0, 1, 2, 255]))
  })
  app.get('/headers', { config: { cache: { level: 'app' } } }, async (_request, reply) => {
    count('headers')
    reply.header('cache-control', 'public, max-age=30').header('vary', 'Accept-Language').header('expires', 'Thu, 01 Jan 2099 00:00:00 GMT')
    reply.header('last-modified', 'Wed, 01 Jan 2025 00:00:00 GMT').header('x-custom', 'kept')
    return { n: calls.headers }
  })
  if (options.session !== false) {
    app.get('/mine', { config: { cache: { level: 'session' } } }, async (request) => ({ n: count('mine'), user: await request.sessionCache.get('user') ?? null }))
    app.post('/login/:user', async (request) => {
      await request.sessionCache.set('user', (request.params as { user: string }).user)
      return 'ok'
    })
  }
  return { app, calls }
}

async function login (app: FastifyInstance, user: string): Promise<string> {
  return cookieOf((await app.inject({ method: 'POST', url: `/login/${user}` })).headers) as string
}

test('an application-level route is answered from the cache without running the handler', async (t) => {
  const { app, calls } = await build(t)
  const first = await app.inject('/catalog')
  t.equal(first.headers['x-cache'], 'MISS')
  t.match(first.headers.etag, /^W\/"[\w-]+"$/, 'a weak validator, also on the miss')
  const second = await app.inject('/catalog')
  t.equal(second.statusCode, 200)
  t.equal(second.headers['x-cache'], 'HIT-APP')
  t.equal(second.body, first.body, 'the same bytes')
  t.equal(second.headers['content-type'], first.headers['content-type'])
  t.equal(second.headers.etag, first.headers.etag)
  t.equal(second.headers.age, '0')
  t.equal(calls.catalog, 1, 'the handler ran once')
  t.same(app.multiCache.stats().route, { hits: 1, misses: 1, loads: 0, loadErrors: 0, evictions: 0, storeErrors: 0, oversized: 0, staleServed: 0, graceServed: 0, backgroundLoads: 0, tagInvalidations: 0, tagsUnknown: 0, size: 1, reasons: {} })
})

test('responses stored with one set of headers share it, and each URL still replays exactly its own headers', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false, route: { max: 10_000 } })
  let runs = 0
  app.get('/item/:id', { config: { cache: { level: 'app', ttl: '1m' } } }, async (request, reply) => {
    runs++
    const { id } = request.params as { id: string }
    // Every response carries a header of its own: more sets than are ever held apart from the responses.
    return await reply.header('cache-control', 'public, max-age=60').header('x-item', id).send({ id })
  })
  const ids = Array.from({ length: HEADER_SETS + 200 }, (_, i) => String(i))
  for (const id of ids) await app.inject(`/item/${id}`)
  const wrong: string[] = []
  for (const id of [...ids].reverse()) {
    const hit = await app.inject(`/item/${id}`)
    if (hit.headers['x-cache'] !== 'HIT-APP' || hit.headers['x-item'] !== id || hit.body !== JSON.stringify({ id }) || hit.headers['cache-control'] !== 'public, max-age=60') {
      wrong.push(`/item/${id}: ${String(hit.headers['x-cache'])} x-item ${String(hit.headers['x-item'])} ${hit.body}`)
    }
  }
  t.same(wrong.slice(0, 3), [], 'every hit replays its own headers and body')
  t.equal(runs, ids.length, 'every second request was a hit')
})

test('a hook that changes a header array in place changes no stored response: each client gets what was stored and its own change', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  const preload = ['</a.css>; rel=preload', '</b.js>; rel=preload']
  // One client's hint added to the array the reply holds.
  const hint = (request: FastifyRequest, reply: FastifyReply): void => {
    const link = reply.getHeader('link')
    if (Array.isArray(link)) link.push(`</${String(request.headers['x-client'])}>; rel=preload`)
  }
  // An app-wide hook runs before the response is captured, so it changes hits only here; the route's own runs after.
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.url === '/app-hook' && reply.getHeader('x-cache') === 'HIT-APP') hint(request, reply)
    return payload
  })
  const page = async (_request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => await reply.header('link', [...preload]).send('page')
  app.get('/app-hook', { config: { cache: { level: 'app', ttl: '1m' } } }, page)
  app.get('/route-hook', { config: { cache: { level: 'app', ttl: '1m' } }, onSend: async (request, reply, payload) => { hint(request, reply); return payload } }, page)
  for (const url of ['/app-hook', '/route-hook']) {
    const linkOf = async (client: string): Promise<unknown> => {
      const response = await app.inject({ url, headers: { 'x-client': client } })
      return [response.headers['x-cache'], response.headers.link]
    }
    t.same(await linkOf('alice'), ['MISS', url === '/app-hook' ? preload : [...preload, '</alice>; rel=preload']], `${url}: the miss`)
    const wrong: unknown[] = []
    for (const client of ['bob', 'carol', ...Array.from({ length: 20 }, (_, i) => `c${i}`)]) {
      const got = await linkOf(client)
      if (JSON.stringify(got) !== JSON.stringify(['HIT-APP', [...preload, `</${client}>; rel=preload`]])) wrong.push([client, got])
    }
    t.same(wrong.slice(0, 2), [], `${url}: each hit carries the stored links and its own client's only, and they do not grow`)
  }
})

test('a session page: a hook that adds to a header array in place changes that reply only, however many hits', async (t) => {
  const { app } = await build(t)
  const preload = ['</a.css>; rel=preload']
  let n = 0
  app.get('/my-page', {
    config: { cache: { level: 'session' } },
    onSend: async (_request, reply, payload) => {
      const link = reply.getHeader('link')
      if (Array.isArray(link)) link.push(`</n/${++n}>; rel=preload`)
      return payload
    }
  }, async (_request, reply) => await reply.header('link', [...preload]).send('mine'))
  const cookie = await login(app, 'alice')
  const answers = []
  for (let i = 0; i < 5; i++) {
    const response = await app.inject({ url: '/my-page', headers: { cookie } })
    answers.push([response.headers['x-cache'], response.headers.link])
  }
  t.same(answers, [1, 2, 3, 4, 5].map((i) => [i === 1 ? 'MISS' : 'HIT-SESSION', [...preload, `</n/${i}>; rel=preload`]]))
})

test('Age counts the seconds since the response was stored; without a ttl it is kept 1 minute, never forever', async (t) => {
  const clock = FakeTimers.install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const { app, calls } = await build(t)
  await app.inject('/default')
  clock.tick(5400)
  const hit = await app.inject('/default')
  t.equal(hit.headers['x-cache'], 'HIT-APP')
  t.equal(hit.headers.age, '5')
  clock.tick(60_000 - 5400 - 1)
  t.equal((await app.inject('/default')).headers.age, '59')
  clock.tick(1)
  t.equal((await app.inject('/default')).headers['x-cache'], 'MISS', 'the default ttl is 1 minute')
  t.equal(calls.default, 2)
})

test("a handler's Cache-Control max-age shortens the route's ttl", async (t) => {
  const clock = FakeTimers.install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const { app, calls } = await build(t)
  await app.inject('/headers')
  clock.tick(29_999)
  t.equal((await app.inject('/headers')).headers['x-cache'], 'HIT-APP')
  clock.tick(1)
  t.equal((await app.inject('/headers')).headers['x-cache'], 'MISS', 'max-age=30 under a ttl of 1 minute')
  t.equal(calls.headers, 2)
})

test('HEAD is answered from the GET entry, without a body', async (t) => {
  const { app, calls } = await build(t)
  const headMiss = await overHttp(app, '/catalog', { method: 'HEAD' })
  t.equal(headMiss.headers['x-cache'], 'MISS')
  t.equal((await overHttp(app, '/catalog', { method: 'HEAD' })).headers['x-cache'], 'MISS', 'a HEAD request does not fill the entry')
  const get = await overHttp(app, '/catalog')
  t.equal(get.headers['x-cache'], 'MISS')
  const head = await overHttp(app, '/catalog', { method: 'HEAD' })
  t.equal(head.status, 200)
  t.equal(head.headers['x-cache'], 'HIT-APP')
  t.equal(head.body.length, 0, 'no body')
  t.equal(head.headers['content-length'], String(get.body.length), 'the length of the body a GET gets')
  t.equal(head.headers['content-type'], get.headers['content-type'])
  t.equal(head.headers.etag, get.headers.etag)
  t.equal(calls.catalog, 3)
})

test('a 304 carries the headers the 200 would carry, and no body', async (t) => {
  const { app } = await build(t)
  const full = await overHttp(app, '/headers', { headers: { 'accept-language': 'en' } })
  const etag = String(full.headers.etag)
  const revalidated = await overHttp(app, '/headers', { headers: { 'accept-language': 'en', 'if-none-match': `"other", ${etag}` } })
  t.equal(revalidated.status, 304)
  t.equal(revalidated.body.length, 0)
  t.equal(revalidated.headers.etag, etag)
  t.equal(revalidated.headers['cache-control'], 'public, max-age=30')
  t.equal(revalidated.headers.vary, 'Accept-Language')
  t.equal(revalidated.headers.expires, 'Thu, 01 Jan 2099 00:00:00 GMT')
  t.equal(revalidated.headers.age, '0')
  t.equal(revalidated.headers['x-cache'], 'HIT-APP')
  t.equal(revalidated.headers['x-custom'], undefined, 'only the fields that guide caches')
  t.equal((await overHttp(app, '/headers', { headers: { 'accept-language': 'en', 'if-none-match': '"other"' } })).status, 200)
  const since = await overHttp(app, '/headers', { headers: { 'accept-language': 'en', 'if-modified-since': 'Thu, 02 Jan 2025 00:00:00 GMT' } })
  t.equal(since.status, 304, 'If-Modified-Since against the stored Last-Modified')
  const hit = await overHttp(app, '/headers', { headers: { 'accept-language': 'en' } })
  t.equal(hit.headers['x-custom'], 'kept', 'a 200 hit replays every header the handler set')
  t.equal(hit.headers['last-modified'], 'Wed, 01 Jan 2025 00:00:00 GMT')
})

test('headers set by the hooks before the lookup are fresh on a hit, never replayed from the stored response', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  let request = 0
  app.addHook('onRequest', async (_request, reply) => { reply.header('x-request-id', String(++request)) })
  app.get('/page', {
    preHandler: async (_request, reply) => { reply.header('x-ratelimit-remaining', String(100 - request)) },
    config: { cache: { level: 'app' } }
  }, async (_request, reply) => { reply.header('x-handler', 'page'); return 'page' })
  await app.inject('/page')
  const hit = await app.inject('/page')
  t.equal(hit.headers['x-cache'], 'HIT-APP')
  t.equal(hit.headers['x-request-id'], '2')
  t.equal(hit.headers['x-ratelimit-remaining'], '98')
  t.equal(hit.headers['x-handler'], 'page', "the handler's own headers are replayed")
})

test('only the configured methods and status codes are stored; other methods bypass', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/missing')
  const again = await app.inject('/missing')
  t.equal(again.statusCode, 404)
  t.equal(again.headers['x-cache'], 'MISS')
  t.equal(calls.missing, 2)
  const post = await app.inject({ method: 'POST', url: '/both' })
  t.equal(post.headers['x-cache'], 'BYPASS')
  await app.inject({ method: 'POST', url: '/both' })
  t.equal(calls.both, 2)
  await app.inject('/both')
  t.equal((await app.inject('/both')).headers['x-cache'], 'HIT-APP')
})

test('requests with credentials bypass the application level, unless the route is shared', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/catalog')
  const credentials: Array<Record<string, string>> = [{ authorization: 'Bearer x' }, { cookie: 'theme=dark' }, { cookie: await login(app, 'alice') }]
  for (const headers of credentials) {
    const personal = await app.inject({ url: '/catalog', headers })
    t.equal(personal.headers['x-cache'], 'BYPASS', `${Object.keys(headers)[0]}: neither answered from nor stored`)
  }
  t.equal(calls.catalog, 4)
  t.equal((await app.inject('/catalog')).headers['x-cache'], 'HIT-APP', 'the anonymous entry is intact')

  await app.inject({ url: '/shared', headers: { authorization: 'Bearer x' } })
  const shared = await app.inject({ url: '/shared', headers: { cookie: 'sid=whatever' } })
  t.equal(shared.headers['x-cache'], 'HIT-APP')
  t.equal(calls.shared, 1)
})

test('a session-level route is cached per session; a visitor without a session bypasses it and gets none', async (t) => {
  const { app, calls } = await build(t)
  const anonymous = await app.inject('/mine')
  t.equal(anonymous.headers['x-cache'], 'BYPASS')
  t.equal(anonymous.headers['set-cookie'], undefined, 'no session is created for caching')
  t.equal((await app.inject({ url: '/mine', headers: { cookie: 'sid=forged' } })).headers['x-cache'], 'BYPASS')

  const alice = await login(app, 'alice')
  const bob = await login(app, 'bob')
  const a1 = await app.inject({ url: '/mine', headers: { cookie: alice } })
  const a2 = await app.inject({ url: '/mine', headers: { cookie: alice } })
  t.equal(a1.headers['x-cache'], 'MISS')
  t.equal(a2.headers['x-cache'], 'HIT-SESSION')
  t.equal(a2.body, a1.body)
  const b1 = await app.inject({ url: '/mine', headers: { cookie: bob } })
  t.equal(b1.headers['x-cache'], 'MISS', "another session never sees alice's page")
  t.equal(b1.json().user, 'bob')
  t.equal(calls.mine, 4)
})

test('the host is keyed as the handler sees it: a request in capitals cannot poison the page of the host as browsers send it', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  const shops: Record<string, string> = { 'shop-a.example': 'Shop A' }
  app.get('/', { config: { cache: { level: 'app' } } }, async (request) => ({ title: shops[request.host] ?? 'Unknown shop' }))
  t.same((await app.inject({ url: '/', headers: { host: 'SHOP-A.example' } })).json(), { title: 'Unknown shop' }, 'a case-sensitive handler misses')
  const visitor = await app.inject({ url: '/', headers: { host: 'shop-a.example' } })
  t.equal(visitor.headers['x-cache'], 'MISS', 'the host as sent is another entry')
  t.same(visitor.json(), { title: 'Shop A' })
})

test("a session's pages are bounded however many variants a client's headers make", async (t) => {
  const { app } = await build(t, { session: { secret, maxPagesPerSession: 3 } })
  app.get('/theme', { config: { cache: { level: 'session' } } }, async (request, reply) => reply.header('vary', 'x-theme').send({ theme: request.headers['x-theme'] }))
  const alice = await login(app, 'alice')
  const themes = Array.from({ length: 12 }, (_, i) => `t${i}`)
  const fetchAll = async (order: string[]): Promise<string[]> => {
    const answers: string[] = []
    for (const theme of order) answers.push((await app.inject({ url: '/theme', headers: { cookie: alice, 'x-theme': theme } })).headers['x-cache'] as string)
    return answers
  }
  t.same(await fetchAll(themes), themes.map(() => 'MISS'))
  // Newest first, so that no miss of this pass pushes out a variant before it is asked for.
  const again = await fetchAll([...themes].reverse())
  t.same(again.slice(0, 3), ['HIT-SESSION', 'HIT-SESSION', 'HIT-SESSION'], 'the three latest variants are kept')
  t.equal(again.filter((answer) => answer === 'HIT-SESSION').length, 3, 'and no more: maxPagesPerSession counts each variant')
})

test('binary bodies replay byte for byte', async (t) => {
  const { app, calls } = await build(t)
  await app.inject('/bytes')
  const bytes = await app.inject('/bytes')
  t.same([...bytes.rawPayload], [0, 1, 2, 255])
  t.equal(bytes.headers['x-cache'], 'HIT-APP')
  t.equal(calls.bytes, 1)
})

test('the query in the key: all of it, none of it, or the parameters named', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  let n = 0
  const handler = async (): Promise<{ n: number }> => ({ n: ++n })
  app.get('/all', { config: { cache: { level: 'app' } } }, handler)
  app.get('/none', { config: { cache: { level: 'app', query: 'none' } } }, handler)
  app.get('/named', { config: { cache: { level: 'app', query: ['page', 'sort'] } } }, handler)
  const cache = async (url: string): Promise<unknown> => (await app.inject(url)).headers['x-cache']
  await cache('/all?a=1')
  t.equal(await cache('/all?a=2'), 'MISS')
  t.equal(await cache('/all?a=1'), 'HIT-APP')
  await cache('/none?a=1')
  t.equal(await cache('/none?b=2'), 'HIT-APP')
  await cache('/named?sort=asc&page=2&utm_source=x')
  t.equal(await cache('/named?page=2&sort=asc&fbclid=y'), 'HIT-APP', 'order and unnamed parameters do not count')
  t.equal(await cache('/named?page=3&sort=asc'), 'MISS')
})

test('a custom key replaces the path and query, within its route; the host still counts', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  const key = (): string => 'same'
  app.get('/a/:id', { config: { cache: { level: 'app', key } } }, async (request) => ({ route: 'a', id: (request.params as { id: string }).id }))
  app.get('/b', { config: { cache: { level: 'app', key } } }, async () => ({ route: 'b' }))
  app.get('/bad', { config: { cache: { level: 'app', key: () => '' } } }, async () => 'x')
  await app.inject('/a/1')
  t.same((await app.inject('/a/2')).json(), { route: 'a', id: '1' }, 'the key says both are one page')
  t.same((await app.inject('/b')).json(), { route: 'b' }, 'another route with the same key is another entry')
  t.equal((await app.inject({ url: '/a/3', headers: { host: 'other.example' } })).headers['x-cache'], 'MISS')
  const bad = await app.inject('/bad')
  t.equal(bad.statusCode, 200, 'a key that is not a non-empty string leaves the request uncached (it may come from the client)')
  t.equal(bad.headers['cache-status'], 'fastify-multi-cache; fwd=bypass; detail=invalid-key')
})

test('invalidate() drops a route\'s responses, or one path\'s for every host, query and variant', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  app.get('/products/:id', { config: { cache: { level: 'app', query: ['v'] } } }, async (request, reply) => {
    reply.header('vary', 'accept-language')
    return { id: (request.params as { id: string }).id, lang: request.headers['accept-language'] }
  })
  const state = async (url: string, headers: Record<string, string> = {}): Promise<unknown> => (await app.inject({ url, headers })).headers['x-cache']
  const fill = async (): Promise<void> => {
    for (const url of ['/products/1?v=1', '/products/2']) {
      for (const headers of [{}, { host: 'b.example' }, { 'accept-language': 'fr' }] as Array<Record<string, string>>) await state(url, headers)
    }
  }
  await fill()
  t.equal(await app.routeCache.invalidate('/products/:id', '/products/1?utm=x&v=1'), 2, 'one path, whatever the query: both hosts')
  t.equal(await state('/products/1?v=1'), 'MISS')
  t.equal(await state('/products/1?v=1', { host: 'b.example' }), 'MISS')
  t.equal(await state('/products/1?v=1', { 'accept-language': 'fr' }), 'MISS', 'and every variant')
  t.equal(await state('/products/2'), 'HIT-APP', 'other URLs stay')
  await fill()
  t.equal(await app.routeCache.invalidate('/products/:id'), 4)
  t.equal(await state('/products/2', { host: 'b.example' }), 'MISS')
  await t.rejects(app.routeCache.invalidate('/product/:id'), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /option "route" must be the URL of a route cached at level 'app'/ })
  await t.rejects(app.routeCache.invalidate('/products/:id', 42 as never), { message: /option "url"/ })
})

test('a response whose handler ran before an invalidation is not stored after it', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  let started: () => void = () => {}
  const running = new Promise<void>((resolve) => { started = resolve })
  let release: () => void = () => {}
  let version = 1
  app.get('/slow', { config: { cache: { level: 'app' } } }, async () => {
    const current = version
    if (current === 1) {
      started()
      await new Promise<void>((resolve) => { release = resolve })
    }
    return { version: current }
  })
  const inFlight = app.inject('/slow')
  await running
  version = 2
  await app.routeCache.invalidate('/slow')
  release()
  t.same((await inFlight).json(), { version: 1 })
  const next = await app.inject('/slow')
  t.equal(next.headers['x-cache'], 'MISS', 'the old version was not put back')
  t.same(next.json(), { version: 2 })
})

test('routes on one URL with different constraints have entries of their own', async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  for (const version of ['1.0.0', '2.0.0']) {
    app.get('/v', { constraints: { version }, config: { cache: { level: 'app' } } }, async () => ({ version }))
  }
  const v = async (version: string): Promise<{ body: unknown, cache: unknown }> => {
    const response = await app.inject({ url: '/v', headers: { 'accept-version': version } })
    return { body: response.json(), cache: response.headers['x-cache'] }
  }
  await v('1.x')
  t.same(await v('2.x'), { body: { version: '2.0.0' }, cache: 'MISS' })
  t.same(await v('1.x'), { body: { version: '1.0.0' }, cache: 'HIT-APP' })
  t.equal(await app.routeCache.invalidate('/v'), 2, 'invalidating the URL drops both')
})

test('x-cache can be switched off', async (t) => {
  const { app } = await build(t, { route: { xCacheHeader: false } })
  await app.inject('/catalog')
  const hit = await app.inject('/catalog')
  t.equal(hit.headers['x-cache'], undefined)
  t.equal(hit.headers.age, '0')
  t.equal((await app.inject({ url: '/catalog', headers: { cookie: 'a=1' } })).headers['x-cache'], undefined)
})

test("hook: 'onRequest' answers before the route's other hooks: for routes public to everyone", async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  let checks = 0
  const check = async (): Promise<void> => { checks++ }
  app.get('/early', { preHandler: check, config: { cache: { level: 'app', hook: 'onRequest' } } }, async () => 'public')
  await app.inject('/early')
  t.equal((await app.inject('/early')).headers['x-cache'], 'HIT-APP')
  t.equal(checks, 1, 'the hit skipped the preHandler')
  t.equal((await app.inject({ url: '/early', headers: { cookie: 'a=1' } })).headers['x-cache'], 'BYPASS', 'eligibility still applies')
})

test('invalid route configurations fail ready() and name the option', async (t) => {
  const cases: Array<[string, unknown, RegExp]> = [
    ['level', { level: 'global' }, /option "level" must be 'app' or 'session'/],
    ['ttl', { level: 'app', ttl: 'soon' }, /option "ttl"/],
    ['ttl 0', { level: 'app', ttl: 0 }, /option "ttl" must be greater than 0/],
    ['unknown', { level: 'app', vary: true }, /option "vary" is not an option/],
    ['shared', { level: 'app', shared: 'yes' }, /option "shared" must be a boolean/],
    ['shared session', { level: 'session', shared: true }, /option "shared" only applies at level 'app'/],
    ['methods', { level: 'app', methods: [] }, /option "methods"/],
    ['statusCodes', { level: 'app', statusCodes: [206] }, /option "statusCodes"/],
    ['query', { level: 'app', query: 'some' }, /option "query"/],
    ['query names', { level: 'app', query: [''] }, /option "query"/],
    ['hook', { level: 'app', hook: 'onSend' }, /option "hook"/],
    ['key', { level: 'app', key: 'k' }, /option "key" must be a function/],
    ['not an object', 'app', /option "options" must be an object/]
  ]
  for (const [name, cache, message] of cases) {
    const app = fresh(t)
    await app.register(multiCache, { session: { secret } })
    app.register(async (scope) => { scope.get('/x', { config: { cache: cache as never } }, async () => 'x') })
    await t.rejects(async () => { await app.ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message }, name)
  }
  const root = fresh(t)
  await root.register(multiCache, { session: { secret } })
  t.throws(() => root.get('/x', { config: { cache: { level: 'app', ttl: -1 } } }, async () => 'x'), { message: /routeCache \(GET \/x\): option "ttl"/ }, 'names the route')
})

test('a session-level route needs the session level; the app level needs nothing but routeCache', async (t) => {
  const app = fresh(t)
  await app.register(routeCache)
  t.throws(() => app.get('/b', { config: { cache: { level: 'session' } } }, async () => 'x'), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /needs the sessionCache plugin/ })
  app.get('/a', { config: { cache: { level: 'app' } } }, async () => 'x')
  await app.inject('/a')
  t.equal((await app.inject('/a')).headers['x-cache'], 'HIT-APP')
})

test('invalid routeCache options fail ready() and name the option', async (t) => {
  const cases: Array<[object, RegExp]> = [
    [{ xCacheHeader: 'yes' }, /option "xCacheHeader"/],
    [{ ttl: 0 }, /option "ttl" must be greater than 0/],
    [{ max: 0 }, /option "max"/],
    [{ maxSize: 1.5 }, /option "maxSize"/],
    [{ maxVariants: -1 }, /option "maxVariants"/],
    [{ store: 'redis' }, /option "store" is not an option/]
  ]
  for (const [options, message] of cases) {
    await t.rejects(async () => { await fresh(t).register(routeCache, options).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message })
  }
})

test('a plugin that adds a preHandler after the lookup fails ready(): a hit would skip it', async (t) => {
  const addsPreHandler = fp(async (scope: FastifyInstance) => {
    scope.addHook('onRoute', (route) => { route.preHandler = [...[route.preHandler ?? []].flat(), async () => {}] })
  })
  const late = fresh(t)
  await late.register(multiCache, { session: false })
  await late.register(addsPreHandler)
  late.get('/x', { config: { cache: { level: 'app' } } }, async () => 'x')
  await t.rejects(async () => { await late.ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message: /routeCache \(GET \/x\): option "hook" is 'preHandler', so the lookup must run last/ })

  const early = fresh(t)
  await early.register(addsPreHandler)
  await early.register(appCache)
  await early.register(sessionCache, { secret })
  await early.register(routeCache)
  early.get('/x', { config: { cache: { level: 'app' } } }, async () => 'x')
  await early.ready()
  t.pass('registered first, its preHandler runs before the lookup')
})

test("hook: 'onRequest' looks up after every onRequest hook, also those a plugin registered later adds", async (t) => {
  const app = fresh(t)
  await app.register(multiCache, { session: false })
  let count = 0
  await app.register(fp(async (scope: FastifyInstance) => {
    scope.addHook('onRoute', (route) => {
      route.onRequest = [...[route.onRequest ?? []].flat(), async (_request: FastifyRequest, reply: FastifyReply) => {
        if (++count > 2) await reply.code(429).send('rate limited')
      }]
    })
  }))
  app.get('/p', { config: { cache: { level: 'app', hook: 'onRequest' } } }, async () => 'page')
  t.equal((await app.inject('/p')).headers['x-cache'], 'MISS')
  t.equal((await app.inject('/p')).headers['x-cache'], 'HIT-APP')
  const limited = await app.inject('/p')
  t.equal(limited.statusCode, 429, 'the late hook ran before the lookup, on a hit too')
  t.equal(limited.body, 'rate limited')
})

test('a stored response other than a 200 is never answered 304', async (t) => {
  const { app } = await build(t)
  app.get('/gone', { config: { cache: { level: 'app', statusCodes: [200, 404] } } }, async (_request, reply) => await reply.code(404).send('not found'))
  await overHttp(app, '/gone')
  const star = await overHttp(app, '/gone', { headers: { 'if-none-match': '*' } })
  t.equal(star.headers['x-cache'], 'HIT-APP')
  t.equal(star.status, 404, 'If-None-Match: * is for a resource that exists')
  t.equal(star.body.toString(), 'not found')
  const tag = await overHttp(app, '/gone', { headers: { 'if-none-match': String(star.headers.etag) } })
  t.equal(tag.status, 404)
})

test('invalidate() of a URL drops every spelling of its path the router accepts, with any query', async (t) => {
  const app = fresh(t, { useSemicolonDelimiter: true, routerOptions: { ignoreTrailingSlash: true, caseSensitive: false } })
  await app.register(multiCache, { session: false })
  let version = 1
  app.get('/p/:id', { config: { cache: { level: 'app' } } }, async (request) => ({ id: (request.params as { id: string }).id, version }))
  const spellings = ['/p/42', '/p/42/', '/P/42', '/p/%34%32', '/p/42?utm=x', '/p/42;x=1']
  for (const url of [...spellings, '/p/43']) await app.inject(url)
  // A fragment as a raw client sends it (inject drops it): the router ignores it, the key keeps it.
  t.equal(JSON.parse((await overHttp(app, '/p/42#f')).body.toString()).version, 1)
  version = 2
  t.equal(await app.routeCache.invalidate('/p/:id', '/p/42'), spellings.length + 1)
  for (const url of spellings) t.same((await app.inject(url)).json(), { id: '42', version: 2 }, url)
  t.equal(JSON.parse((await overHttp(app, '/p/42#f')).body.toString()).version, 2, '/p/42#f')
  t.equal((await app.inject('/p/43')).headers['x-cache'], 'HIT-APP', 'another path stays')
})
