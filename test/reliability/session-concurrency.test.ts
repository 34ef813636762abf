import Keyv from 'keyv'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import { sessionCache, type SessionCacheOptions } from '../../index.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'
import { Gates } from '../helpers/gate.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

// Requests of one session that overlap, over HTTP, on each kind of store. A gate holds a request at a chosen point
// (`?hold=name`) until the test opens it, so the order is the test's, with no sleeps.

type Backing = (t: Test) => Promise<SessionCacheOptions | undefined>

const BACKINGS: Array<[string, Backing]> = [
  ['memory', async () => ({})],
  ['redis', async (t) => await redisFor(t) === undefined ? undefined : { store: REDIS_URL, prefix: uniquePrefix(t) }],
  ['keyv', async () => ({ store: new Keyv() })]
]

async function shop (t: Test, backing: SessionCacheOptions, extra: SessionCacheOptions = {}): Promise<{ app: FastifyInstance, gates: Gates }> {
  const gates = new Gates()
  const app = fresh(t)
  await app.register(sessionCache, { secret, ...backing, ...extra })
  const hold = async (query: unknown): Promise<void> => {
    const name = (query as { hold?: string }).hold
    if (name !== undefined) await gates.get(name).pass()
  }
  app.get('/cart', async (request) => {
    const cart = await request.sessionCache.get<string[]>('cart') ?? null
    await hold(request.query)
    return { cart, user: await request.sessionCache.get('user') ?? null }
  })
  app.post('/cart/:item', async (request) => {
    const cart = await request.sessionCache.get<string[]>('cart') ?? []
    await hold(request.query)
    await request.sessionCache.set('cart', [...cart, (request.params as { item: string }).item])
    return 'ok'
  })
  app.post('/set/:key/:value', async (request) => {
    const { key, value } = request.params as { key: string, value: string }
    await request.sessionCache.get(key)
    await hold(request.query)
    await request.sessionCache.set(key, value)
    return 'ok'
  })
  app.post('/login', async (request) => {
    await request.sessionCache.get('user')
    await hold(request.query)
    await request.sessionCache.set('user', 'alice')
    await request.sessionCache.regenerate()
    return 'ok'
  })
  app.post('/logout', async (request) => { await request.sessionCache.destroy(); return 'bye' })
  app.get('/all', async (request) => await Promise.all(['a', 'b', 'c', 'cart'].map(async (key) => await request.sessionCache.get(key))))
  return { app, gates }
}

for (const [name, backing] of BACKINGS) {
  test(`${name}: a request in flight cannot undo a logout`, async (t) => {
    const options = await backing(t)
    if (options === undefined) return
    const { app, gates } = await shop(t, options)
    const cookie = cookieOf((await app.inject({ method: 'POST', url: '/set/user/alice' })).headers) as string
    const slow = app.inject({ method: 'POST', url: '/cart/apple?hold=slow', headers: { cookie } })
    await gates.get('slow').reached
    const logout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
    t.match(logout.headers['set-cookie'], /sid=;/, 'the logout clears the cookie')
    gates.get('slow').release()
    t.equal((await slow).statusCode, 200)
    t.same((await app.inject({ url: '/cart', headers: { cookie } })).json(), { cart: null, user: null }, 'the old cookie stays logged out')
  })

  test(`${name}: a request in flight cannot write into the session a login made, nor keep the old one`, async (t) => {
    const options = await backing(t)
    if (options === undefined) return
    const { app, gates } = await shop(t, options)
    const cookie = cookieOf((await app.inject({ method: 'POST', url: '/cart/apple' })).headers) as string
    const slow = app.inject({ method: 'POST', url: '/set/user/mallory?hold=slow', headers: { cookie } })
    await gates.get('slow').reached
    const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie } })
    const renewed = cookieOf(login.headers) as string
    t.not(renewed, cookie)
    gates.get('slow').release()
    await slow
    t.same((await app.inject({ url: '/cart', headers: { cookie: renewed } })).json(), { cart: ['apple'], user: 'alice' })
    t.same((await app.inject({ url: '/cart', headers: { cookie } })).json(), { cart: null, user: null }, 'the pre-login id is worth nothing')
  })

  test(`${name}: a read-only request that overlaps a write never reverts it`, async (t) => {
    const options = await backing(t)
    if (options === undefined) return
    const { app, gates } = await shop(t, options)
    const cookie = cookieOf((await app.inject({ method: 'POST', url: '/cart/apple' })).headers) as string
    const reader = app.inject({ url: '/cart?hold=read', headers: { cookie } })
    await gates.get('read').reached
    t.equal((await app.inject({ method: 'POST', url: '/cart/pear', headers: { cookie } })).statusCode, 200, 'the POST is acknowledged')
    gates.get('read').release()
    t.same((await reader).json().cart, ['apple'], 'the GET answers what it read')
    t.same((await app.inject({ url: '/cart', headers: { cookie } })).json().cart, ['apple', 'pear'], 'and did not put back the cart from before the POST')
  })

  test(`${name}: concurrent writes of different keys of one session never overwrite each other`, async (t) => {
    const options = await backing(t)
    if (options === undefined) return
    const { app, gates } = await shop(t, options)
    const cookie = cookieOf((await app.inject({ method: 'POST', url: '/cart/apple' })).headers) as string
    const writes = ['a', 'b', 'c'].map((key) => app.inject({ method: 'POST', url: `/set/${key}/${key}1?hold=${key}`, headers: { cookie } }))
    await Promise.all(['a', 'b', 'c'].map(async (key) => { await gates.get(key).reached }))
    for (const key of ['c', 'a', 'b']) gates.get(key).release()
    await Promise.all(writes)
    t.same((await app.inject({ url: '/all', headers: { cookie } })).json(), ['a1', 'b1', 'c1', ['apple']])
  })
}

// Keyv has no compare-and-set: there the bound holds for writes one after another only (see the README).
for (const [name, backing] of BACKINGS.filter(([kind]) => kind !== 'keyv')) {
  test(`${name}: maxEntriesPerSession holds however many requests write new keys at once`, async (t) => {
    const options = await backing(t)
    if (options === undefined) return
    const { app } = await shop(t, options, { maxEntriesPerSession: 10 })
    app.get('/count', async (request) => {
      let held = 0
      for (let burst = 0; burst < 3; burst++) {
        for (let i = 0; i < 40; i++) if (await request.sessionCache.has(`b${burst}k${i}`)) held++
      }
      return { held: held + (await request.sessionCache.has('k0') ? 1 : 0) }
    })
    const cookie = cookieOf((await app.inject({ method: 'POST', url: '/set/k0/v' })).headers) as string
    for (let burst = 0; burst < 3; burst++) {
      await Promise.all(Array.from({ length: 40 }, async (_, i) => await app.inject({ method: 'POST', url: `/set/b${burst}k${i}/v`, headers: { cookie } })))
    }
    const { held } = (await app.inject({ url: '/count', headers: { cookie } })).json() as { held: number }
    t.ok(held <= 10, `the session holds ${held} entries, at most 10`)
    t.ok(held >= 9, 'and about that many: the bound dropped the surplus, not everything')
  })
}

for (const [name, backing] of BACKINGS) {
  test(`${name}: getSessionId: two first writes of one user at once both stay`, async (t) => {
    const options = await backing(t)
    if (options === undefined) return
    const app = fresh(t)
    await app.register(sessionCache, { ...options, getSessionId: (request) => request.headers['x-user'] as string | undefined })
    app.post('/set/:key', async (request) => { await request.sessionCache.set((request.params as { key: string }).key, 1); return 'ok' })
    app.get('/both', async (request) => [await request.sessionCache.get('a') ?? null, await request.sessionCache.get('b') ?? null])
    for (let user = 0; user < 20; user++) {
      const headers = { 'x-user': `user${user}` }
      await Promise.all(['a', 'b'].map(async (key) => await app.inject({ method: 'POST', url: `/set/${key}`, headers })))
      t.same((await app.inject({ url: '/both', headers })).json(), [1, 1], `user${user}`)
    }
  })
}

test('getSessionId with no id: writes fail with NO_SESSION, nothing is stored, and a hook before auth does not fix "no id"', async (t) => {
  const app = fresh(t)
  await app.register(sessionCache, { getSessionId: (request) => (request as { user?: string }).user })
  app.decorateRequest('user', undefined)
  // A hook that touches the session before authentication ran.
  app.addHook('onRequest', async (request) => { await request.sessionCache.get('seen') })
  app.addHook('preHandler', async (request) => {
    const user = request.headers['x-user']
    if (typeof user === 'string') (request as { user?: string }).user = user
  })
  app.post('/w', async (request, reply) => {
    try {
      await request.sessionCache.set('n', 1)
      return { id: request.sessionCache.id }
    } catch (error) {
      return await reply.code(401).send({ code: (error as { code: string }).code })
    }
  })
  app.get('/r', async (request) => ({ n: await request.sessionCache.get('n') ?? null }))
  for (let i = 0; i < 20; i++) t.same((await app.inject({ method: 'POST', url: '/w' })).json(), { code: 'FST_MULTICACHE_NO_SESSION' })
  t.equal(app.multiCache.stats().session?.size, 0, 'twenty anonymous writes stored nothing')
  t.same((await app.inject({ method: 'POST', url: '/w', headers: { 'x-user': 'alice' } })).json(), { id: 'alice' }, 'the id given after auth is used')
  t.same((await app.inject({ url: '/r', headers: { 'x-user': 'alice' } })).json(), { n: 1 })
})

test('anonymous sessions cannot push logged-in ones out of memory; evictions are counted per kind', async (t) => {
  const { app } = await shop(t, {}, { maxSessions: 5, maxAnonymousSessions: 5 })
  const login = await app.inject({ method: 'POST', url: '/login' })
  const alice = cookieOf(login.headers) as string
  for (let i = 0; i < 50; i++) await app.inject({ method: 'POST', url: `/cart/item${i}` })
  t.same((await app.inject({ url: '/cart', headers: { cookie: alice } })).json().user, 'alice', 'alice is still logged in')
  const stats = app.multiCache.stats().session
  t.same(stats?.evictionsByKind, { anonymous: 45, authenticated: 0 })
  t.equal(stats?.evictions, 45)
})
