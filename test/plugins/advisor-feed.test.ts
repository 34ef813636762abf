import { get } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import multiCache, { appCache, requestCache, type AdviceFinding, type MultiCacheOptions } from '../../index.js'
import cacheAdmin from '../../plugins/admin.js'
import { Advisor, countSampleRate } from '../../lib/advisor.js'
import { advisorRunLength, feedAdvisor } from '../../lib/advisor-feed.js'
import { subscribeCacheOperations, usageOf, type CacheOperationContext } from '../../lib/events.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'
import { redisFor, REDIS_URL, uniquePrefix } from '../helpers/redis.js'

// Each kind built over HTTP and read back from advice() and GET /_cache/advice: the levels publish on the one stream
// of operations, the advisor takes what it needs from it. Every key is watched here (sampleRate: 1); the sampled feed
// has a test of its own with fixed seeds.

/** mulberry32: a seeded source in [0, 1). */
function seeded (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

async function advised (t: Test, options: MultiCacheOptions = {}): Promise<FastifyInstance> {
  const app = fresh(t)
  await app.register(multiCache, { session: { secret }, advisor: { sampleRate: 1 }, ...options })
  await app.register(cacheAdmin, { authorize: () => true })
  return app
}

/** The kinds found, as `level key kind`, from the decorator; and the same from the admin API. */
async function found (t: Test, app: FastifyInstance): Promise<string[]> {
  const findings = app.multiCache.advice()
  const served = (await app.inject('/_cache/advice')).json<{ findings: AdviceFinding[] }>().findings
  t.same(served, findings, 'GET /_cache/advice serves what advice() answers')
  return findings.map(({ level, key, kind }) => `${level} ${key} ${kind}`)
}

async function times (n: number, run: (i: number) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < n; i++) await run(i)
}

test('no-reuse: a request-level key read once per request; read three times, nothing', async (t) => {
  const app = await advised(t)
  app.get('/once', async (request) => await request.reqCache.getOrLoad('viewer', () => ({ id: 1 })))
  app.get('/thrice', async (request) => {
    for (let i = 0; i < 3; i++) await request.reqCache.getOrLoad('user', () => ({ id: 2 }))
    return request.reqCache.get('user')
  })
  await times(25, async () => await app.inject('/once'))
  await times(25, async () => await app.inject('/thrice'))
  const kinds = await found(t, app)
  t.same(kinds, ['request viewer no-reuse'])
  t.match(app.multiCache.advice()[0]?.evidence, { requests: 25, reads: 25, readsPerRequest: 1, sampleRate: 1 })
})

test('no-reuse and request.cache: its memo of a broader level is the lookup\'s, not counted; a key it loads into the request level is', async (t) => {
  const app = await advised(t)
  app.get('/settings', async (request) => await request.cache.getOrLoad('settings', () => ({ theme: 'dark' }), { level: 'app' }))
  let visitors = 0
  app.get('/profile', async (request) => await request.cache.getOrLoad('profile', () => ({ id: ++visitors }), { level: 'session' }))
  app.get('/flag', async (request) => (await request.cache.get('flag')) ?? null)
  app.get('/viewer', async (request) => await request.cache.getOrLoad('viewer', () => ({ id: 2 }), { level: 'request' }))
  const statuses = new Set<number>()
  await times(25, async () => {
    for (const url of ['/settings', '/profile', '/flag', '/viewer']) statuses.add((await app.inject(url)).statusCode)
  })
  t.same([...statuses], [200])
  t.same(await found(t, app), ['request viewer no-reuse'], 'the app chose the request level for viewer only')
})

test('no-reuse and clients that go away: a request whose client aborted is not counted, its handler reading on', async (t) => {
  const app = await advised(t, { session: false })
  let readsAfterAbort = 0
  let finished = 0
  let started: (() => void) | undefined
  let allFinished: () => void = () => {}
  const done = new Promise<void>((resolve) => { allFinished = resolve })
  app.get('/user', async (request) => {
    request.reqCache.set('user', { id: 7 })
    request.reqCache.get('user')
    if ((request.query as { abort?: string }).abort !== undefined) {
      // The client goes away once the handler has started (no race with a timer on a loaded machine); the handler runs
      // on past it, and reads the key twice more.
      started?.()
      for (let i = 0; i < 1000 && request.raw.aborted !== true; i++) await sleep(2)
      if (request.raw.aborted) readsAfterAbort++
      if (++finished === 50) allFinished()
    }
    request.reqCache.get('user')
    return request.reqCache.get('user')
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as AddressInfo
  await times(50, async () => {
    let sent: ReturnType<typeof get> | undefined
    await new Promise<void>((resolve) => {
      started = resolve
      sent = get({ host: '127.0.0.1', port, path: '/user?abort' }, (response) => { response.resume() })
      sent.on('error', () => {})
    })
    sent?.destroy()
  })
  await done
  t.equal(readsAfterAbort, 50, 'every handler read on after its client went away')
  t.same(await found(t, app), [], 'no no-reuse from requests cut short')
  await times(25, async () => await app.inject('/user'))
  t.same(await found(t, app), [], 'requests that ran whole: three reads each')
  t.equal(app.multiCache.request?.live, 0, 'the aborted requests\' entries no longer count')
})

test('no-reuse and hijacked replies: a request whose reply the handler took over is not counted', async (t) => {
  const app = await advised(t, { session: false })
  app.get('/raw', async (request, reply) => {
    request.reqCache.set('viewer', { id: 1 })
    request.reqCache.get('viewer')
    reply.hijack()
    reply.raw.end('ok')
  })
  await times(25, async () => { t.equal((await app.inject('/raw')).body, 'ok') })
  t.same(await found(t, app), [], 'its response never goes out through onSend: nothing told')
})

test('same-in-every-session: the same settings loaded into every session; a per-user cart, nothing', async (t) => {
  const app = await advised(t)
  app.get('/settings', async (request) => await request.sessionCache.getOrLoad('settings', () => ({ theme: 'dark', currency: 'EUR' })))
  app.get('/cart/:user', async (request) => await request.sessionCache.getOrLoad('cart', () => ({ owner: (request.params as { user: string }).user, items: [] })))
  await times(25, async () => await app.inject('/settings'))
  await times(25, async (i) => await app.inject(`/cart/${i}`))
  t.same(await found(t, app), ['session settings same-in-every-session'])
  t.match(app.multiCache.advice()[0], { evidence: { sessions: 25, values: 25 }, message: /saving about/ })
})

test('volatile: an application key written as often as it is read, in Redis; a catalog read often, nothing', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const app = await advised(t, { app: { store: REDIS_URL, prefix: uniquePrefix(t), l1: false } })
  let stock = 0
  app.post('/stock', async () => { await app.appCache.set('stock:7', ++stock); return null })
  app.get('/stock', async () => await app.appCache.get('stock:7'))
  app.get('/catalog', async () => await app.appCache.getOrLoad('catalog', () => ['tea', 'cake']))
  await times(50, async () => {
    await app.inject({ method: 'POST', url: '/stock' })
    await app.inject('/stock')
  })
  await times(120, async () => await app.inject('/catalog'))
  t.same(await found(t, app), ['app stock:* volatile'])
  t.match(app.multiCache.advice()[0]?.evidence, { reads: 50, writes: 50 })
})

test('ttl-too-short: the same value loaded again right after it expired; a value that changes each time, nothing', async (t) => {
  const app = await advised(t, { app: { ttl: 5 } })
  let version = 0
  app.get('/rates', async () => await app.appCache.getOrLoad('rates', () => ({ eur: 1.1 })))
  app.get('/news', async () => await app.appCache.getOrLoad('news', () => ({ version: ++version })))
  await times(14, async () => {
    await app.inject('/rates')
    await app.inject('/news')
    await sleep(15)
  })
  t.same(await found(t, app), ['app rates ttl-too-short'])
  t.match(app.multiCache.advice()[0]?.evidence, { reloadsAfterExpiry: 13, unchanged: 13 })
})

test('too-small: entries evicted for room and loaded again; the same keys with room for them, nothing', async (t) => {
  const small = await advised(t, { app: { max: 5 } })
  const roomy = await advised(t, { app: { max: 50 } })
  for (const app of [small, roomy]) app.get('/item/:id', async (request) => await app.appCache.getOrLoad(`item:${(request.params as { id: string }).id}`, () => ({ name: 'thing' })))
  for (const app of [small, roomy]) await times(3, async () => { await times(10, async (i) => await app.inject(`/item/${i}`)) })
  t.same(await found(t, small), ['app item:* too-small'])
  t.match(small.multiCache.advice()[0]?.evidence, { evictions: 25, reloadsAfterEviction: 20 })
  t.same(await found(t, roomy), [])
})

test('batches count per key: getOrLoadMany over more keys than fit is too-small, per key loaded again', async (t) => {
  const app = await advised(t, { app: { max: 5 } })
  app.get('/items', async () => await app.appCache.getOrLoadMany(Array.from({ length: 10 }, (_, i) => `item:${i}`), (keys) => keys.map(() => 'thing')))
  // Each batch finds the 5 it left and loads the other 5 again, which push those 5 out.
  await times(3, async () => await app.inject('/items'))
  t.same(await found(t, app), ['app item:* too-small'])
  t.match(app.multiCache.advice()[0]?.evidence, { evictions: 15, reloadsAfterEviction: 10 })
})

test('never-read: entries set and evicted without a read; set, read three times and evicted, nothing', async (t) => {
  const unread = await advised(t, { app: { max: 5 } })
  const read = await advised(t, { app: { max: 5 } })
  for (const app of [unread, read]) {
    app.put('/report/:id', async (request) => { await app.appCache.set(`report:${(request.params as { id: string }).id}`, { rows: 3 }); return null })
    app.get('/report/:id', async (request) => await app.appCache.get(`report:${(request.params as { id: string }).id}`))
  }
  await times(30, async (i) => await unread.inject({ method: 'PUT', url: `/report/${i}` }))
  await times(30, async (i) => {
    await read.inject({ method: 'PUT', url: `/report/${i}` })
    // Read once per write would be `volatile`: as many changes as reads.
    await times(3, async () => await read.inject(`/report/${i}`))
  })
  t.same(await found(t, unread), ['app report:* never-read'])
  t.match(unread.multiCache.advice()[0]?.evidence, { writtenAndDropped: 25, neverRead: 25 })
  t.same(await found(t, read), [])
})

test('volatile in sessions: a key deleted about as often as read; the per-user cart each request reads and sets, nothing', async (t) => {
  const app = await advised(t)
  // The README's cart: a session's set is where the user's data lives, not a copy of a source changing under it.
  app.post('/cart', async (request) => {
    const cart = await request.sessionCache.get<unknown[]>('cart') ?? []
    await request.sessionCache.set('cart', [...cart, request.body])
    return { lines: cart.length + 1 }
  })
  let codes = 0
  app.get('/offer', async (request) => {
    const offer = await request.sessionCache.getOrLoad('offer', () => ({ percent: 10, code: ++codes }))
    await request.sessionCache.delete('offer')
    return offer
  })
  await times(50, async (user) => {
    let cookie: string | undefined
    for (let add = 0; add < 3; add++) {
      const response = await app.inject({ method: 'POST', url: '/cart', payload: { sku: `sku-${user}-${add}` }, ...(cookie === undefined ? {} : { headers: { cookie } }) })
      cookie ??= cookieOf(response.headers)
    }
    await app.inject({ url: '/offer', headers: { cookie: cookie as string } })
  })
  t.same(await found(t, app), ['session offer volatile'])
  t.match(app.multiCache.advice()[0]?.evidence, { reads: 50, invalidations: 50 })
})

test('a flood of one-off queries through getOrLoad, evicted as it goes, leaves the patterns in use tracked; sent twice, a query is in use', async (t) => {
  const app = await advised(t, { app: { max: 300 } })
  let count = 0
  app.post('/counter', async () => { await app.appCache.set('counter', ++count); return await app.appCache.get('counter') })
  app.get('/search', async (request) => await app.appCache.getOrLoad(`search:${(request.query as { q: string }).q}`, () => ({ hits: [] })))
  await times(60, async () => await app.inject({ method: 'POST', url: '/counter' }))
  t.same(await found(t, app), ['app counter volatile'])
  // Each query's miss, its load and, past 300 entries, its eviction: one use, not a pattern in use.
  const word = (i: number): string => i.toString(26).replace(/./g, (c) => String.fromCharCode(97 + parseInt(c, 26)))
  await times(1100, async (i) => await app.inject(`/search?q=q${word(i)}`))
  t.same(await found(t, app), ['app counter volatile'], 'the finding in use is still found')
  t.match(app.multiCache.advisor?.footprint(), { patterns: 1 }, 'no one-off query left probation')
  // A query asked again is a pattern in use, as any key read twice (the last one: the first went off probation's end).
  await app.inject(`/search?q=q${word(1099)}`)
  t.match(app.multiCache.advisor?.footprint(), { patterns: 2 })
})

test('volatile routes: a cached route invalidated after every view; one invalidated once in a while, nothing', async (t) => {
  const app = await advised(t)
  app.get('/scores/:id', { config: { cache: { level: 'app', ttl: '1m' } } }, async () => ({ score: Math.random() }))
  app.get('/pages/:id', { config: { cache: { level: 'app', ttl: '1m' } } }, async () => ({ page: 'about' }))
  await times(50, async (i) => {
    await app.inject(`/scores/${i % 3}`)
    await app.routeCache.invalidate('/scores/:id', `/scores/${i % 3}`)
    await app.inject(`/pages/${i % 3}`)
    await app.inject(`/pages/${i % 3}`)
  })
  await app.routeCache.invalidate('/pages/:id')
  t.same(await found(t, app), ['route /scores/* volatile'])
  t.match(app.multiCache.advice()[0]?.evidence, { reads: 50, invalidations: 50 })
})

test('volatile routes keyed by a word: reads and invalidations meet under the declared route, not a path per name', async (t) => {
  const app = await advised(t)
  app.get('/users/:name', { config: { cache: { level: 'app', ttl: '1m' } } }, async (request) => ({ name: (request.params as { name: string }).name }))
  const names = ['alice', 'bob', 'carol']
  await times(50, async (i) => {
    const name = names[i % 3] as string
    await app.inject(`/users/${name}`)
    await app.routeCache.invalidate('/users/:name', `/users/${name}`)
  })
  t.same(await found(t, app), ['route /users/* volatile'])
  t.match(app.multiCache.advice()[0]?.evidence, { reads: 50, invalidations: 50 })
  t.match(app.multiCache.advisor?.footprint(), { patterns: 1 }, 'one pattern, not one per name')
})

test('never-read in sessions: drafts set with a short ttl and never read; read before they expire, nothing', async (t) => {
  const app = await advised(t)
  app.put('/draft/:id', async (request) => {
    await request.sessionCache.set(`draft:${(request.params as { id: string }).id}`, { text: 'hello' }, { ttl: 5 })
    return null
  })
  app.get('/draft/:id', async (request) => await request.sessionCache.get(`draft:${(request.params as { id: string }).id}`))
  app.put('/note/:id', async (request) => {
    await request.sessionCache.set(`note:${(request.params as { id: string }).id}`, { text: 'hi' }, { ttl: 5 })
    return null
  })
  app.get('/note/:id', async (request) => await request.sessionCache.get(`note:${(request.params as { id: string }).id}`))
  let cookie: string | undefined
  const send = async (method: 'GET' | 'PUT', url: string): Promise<void> => {
    const reply = await app.inject({ method, url, headers: cookie === undefined ? {} : { cookie } })
    cookie ??= cookieOf(reply.headers)
  }
  // Each write finds the entries expired before it and drops them.
  await times(25, async (i) => {
    await send('PUT', `/draft/${i}`)
    await send('PUT', `/note/${i}`)
    for (let read = 0; read < 3; read++) await send('GET', `/note/${i}`)
    await sleep(10)
  })
  t.same(await found(t, app), ['session draft:* never-read'])
  t.match(app.multiCache.advice()[0]?.evidence, { writtenAndDropped: 24, neverRead: 24, hits: 0 })
})

test('the session level: entries evicted by maxEntriesPerSession and loaded again are too-small, per session', async (t) => {
  const app = await advised(t, { session: { secret, maxEntriesPerSession: 2 } })
  app.get('/step/:n', async (request) => await request.sessionCache.getOrLoad(`step:${(request.params as { n: string }).n}`, () => ({ done: false })))
  let cookie: string | undefined
  await times(4, async () => {
    await times(4, async (n) => {
      const reply = await app.inject({ url: `/step/${n}`, headers: cookie === undefined ? {} : { cookie } })
      cookie ??= cookieOf(reply.headers)
    })
  })
  t.same(await found(t, app), ['session step:* too-small'])
})

test('sampled: at 0.4 the stream gives hits one in ten (a quarter), the advisor follows four entries in ten; same seeds, same evidence, same findings', async (t) => {
  async function run (): Promise<AdviceFinding[]> {
    const app = fresh(t)
    await app.register(appCache, { max: 10_000 })
    const advisor = new Advisor({ sampleRate: 0.4, random: seeded(42) })
    const stop = feedAdvisor(advisor, { random: seeded(7) })
    t.teardown(stop)
    app.post('/stock/:id', async (request) => { await app.appCache.set(`stock:${(request.params as { id: string }).id}`, 1); return null })
    app.get('/stock/:id', async (request) => await app.appCache.get(`stock:${(request.params as { id: string }).id}`))
    app.get('/catalog/:id', async (request) => await app.appCache.getOrLoad(`catalog:${(request.params as { id: string }).id}`, () => 'tea'))
    await times(2000, async (i) => {
      await app.inject({ method: 'POST', url: `/stock/${i % 50}` })
      await app.inject(`/stock/${i % 50}`)
      await app.inject(`/catalog/${i % 50}`)
      await app.inject(`/catalog/${(i + 7) % 50}`)
    })
    stop()
    await app.close()
    return advisor.advice()
  }
  const first = await run()
  t.same(first.map(({ key, kind }) => `${key} ${kind}`), ['stock:* volatile'], 'the volatile pattern, and not the catalog read four times per load')
  const { reads, writes } = first[0]?.evidence ?? {}
  t.ok(reads !== undefined && reads > 120 && reads < 280, `about 1 read in 10 counted: ${reads}`)
  t.ok(writes !== undefined && writes > 150 && writes < 250, `about 1 write in 10 counted: ${writes}`)
  t.same(await run(), first, 'the same seeds draw the same sample')
})

test('the advisor\'s runs: 16 in a row at 1 in 400, shorter at higher rates, none from 1 in 3 on; lookups and requests at a quarter of its rate', async (t) => {
  t.same([0.001, 0.0025, 0.01, 0.05, 0.1, 0.2, 1 / 3, 0.5, 1].map(advisorRunLength), [16, 16, 16, 3, 2, 1, 1, 1, 1])
  t.same([0.004, 0.01, 0.1, 0.5, 0.99, 1].map(countSampleRate), [0.001, 0.0025, 0.025, 0.125, 0.2475, 1], 'counted: a quarter of sampleRate, everything at 1')
})

test('sampled: a tag invalidated with every write leaves keys read three times per write neither volatile nor never-read', async (t) => {
  const app = fresh(t)
  await app.register(appCache, { max: 10_000 })
  const advisor = new Advisor({ sampleRate: 0.4, random: seeded(42) })
  const stop = feedAdvisor(advisor, { random: seeded(7) })
  t.teardown(stop)
  app.post('/item/:id', async (request) => {
    await app.appCache.set(`item:${(request.params as { id: string }).id}`, { n: 1 })
    // Not counted by the advisor, but drawn from the same countdown as the lookups: it must not eat theirs.
    await app.appCache.invalidateTag('lists')
    return null
  })
  app.get('/item/:id', async (request) => await app.appCache.get(`item:${(request.params as { id: string }).id}`))
  await times(1500, async (i) => {
    await app.inject({ method: 'POST', url: `/item/${i % 50}` })
    for (let read = 0; read < 3; read++) await app.inject(`/item/${i % 50}`)
  })
  stop()
  const findings = advisor.advice()
  t.same(findings.map(({ key, kind }) => `${key} ${kind}`), [], JSON.stringify(findings.map(({ kind, evidence }) => ({ kind, evidence }))))
})

/**
 * `rounds` times over HTTP, a request reading `viewer` once and one reading `user` four times, with an advisor at
 * `sampleRate` fed on seeded draws: what it finds.
 */
async function readOnceAndFourTimes (t: Test, sampleRate: number, rounds: number): Promise<AdviceFinding[]> {
  const app = fresh(t)
  await app.register(requestCache)
  const advisor = new Advisor({ sampleRate, random: seeded(42) })
  const stop = feedAdvisor(advisor, { random: seeded(7) })
  t.teardown(stop)
  app.get('/once', async (request) => await request.reqCache.getOrLoad('viewer', () => ({ id: 1 })))
  app.get('/thrice', async (request) => {
    for (let i = 0; i < 3; i++) await request.reqCache.getOrLoad('user', () => ({ id: 2 }))
    return request.reqCache.get('user')
  })
  await times(rounds, async () => {
    await app.inject('/once')
    await app.inject('/thrice')
  })
  stop()
  await app.close()
  return advisor.advice()
}

test('sampled: the request level read whole, one request in ten drawn as it opens (a quarter of sampleRate 0.4); same seeds, same evidence', async (t) => {
  const first = await readOnceAndFourTimes(t, 0.4, 1000)
  t.same(first.map(({ key, kind }) => `${key} ${kind}`), ['viewer no-reuse'], 'the key read once per request, not the one read four times')
  const { requests, reads, readsPerRequest } = first[0]?.evidence ?? {}
  t.ok(requests !== undefined && requests > 50 && requests < 150, `about 1 request in 10 counted: ${requests}`)
  t.equal(reads, requests, 'each counted whole: one read per request')
  t.equal(readsPerRequest, 1)
  t.equal(first[0]?.evidence.sampleRate, 0.1, 'the evidence names the share of requests read, not sampleRate')
  t.same(await readOnceAndFourTimes(t, 0.4, 1000), first, 'the same seeds draw the same sample')
})

test('sampled at advisor: true\'s rate: 1 request in 400 read whole still finds no-reuse over HTTP, and only it', async (t) => {
  const findings = await readOnceAndFourTimes(t, 0.01, 20_000)
  t.same(findings.map(({ key, kind }) => `${key} ${kind}`), ['viewer no-reuse'], JSON.stringify(findings.map(({ evidence }) => evidence)))
  const { requests, reads, sampleRate } = findings[0]?.evidence ?? {}
  t.ok(requests !== undefined && requests >= 20 && requests < 200, `about 1 request in 400 of 20,000 counted: ${requests}`)
  t.equal(reads, requests, 'each counted whole: one read per request')
  t.equal(sampleRate, 0.0025, 'the share of requests read')
})

test('hostile: no operation handed to a subscriber, nothing the advisor reads and no finding carries a session id or a cookie', async (t) => {
  const seen: string[] = []
  const stop = subscribeCacheOperations((op: CacheOperationContext) => {
    seen.push(JSON.stringify({ ...op, usage: usageOf(op) }))
  }, { every: { request: ['drop'], session: ['drop'], app: ['drop'] } })
  t.teardown(stop)
  const app = await advised(t, { session: { secret, maxEntriesPerSession: 1 }, app: { max: 2 } })
  const ids: string[] = []
  app.get('/visit/:n', async (request) => {
    const n = (request.params as { n: string }).n
    await request.sessionCache.set(`page:${n}`, { n })
    await request.sessionCache.getOrLoad(`step:${n}`, () => ({ n }))
    await request.sessionCache.get(`page:${n}`)
    await request.sessionCache.delete('nothing')
    await app.appCache.getOrLoad(`item:${n}`, () => n)
    request.reqCache.set('me', n)
    ids.push(request.sessionCache.id as string)
    return n
  })
  const cookies: string[] = []
  await times(30, async (n) => {
    const reply = await app.inject({ url: `/visit/${n}`, headers: cookies[0] === undefined ? {} : { cookie: cookies[0] } })
    const cookie = cookieOf(reply.headers)
    if (cookie !== undefined) cookies.push(cookie)
  })
  t.ok(seen.some((line) => line.includes('"drop"')), 'drops were seen')
  t.ok(seen.some((line) => /"scope":\d+/.test(line)), 'session operations carry a token')
  const secrets = [...new Set(ids), ...cookies.map((cookie) => decodeURIComponent(cookie.split('=')[1] as string))]
  t.ok(secrets.length >= 2)
  const everything = [...seen, JSON.stringify(app.multiCache.advice()), (await app.inject('/_cache/advice')).body].join('\n')
  for (const value of secrets) {
    for (const piece of [value, ...value.split('.')].filter((part) => part.length >= 16)) t.notOk(everything.includes(piece), 'no session id or cookie value')
  }
})
