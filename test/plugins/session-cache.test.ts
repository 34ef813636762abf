import { setTimeout as sleep } from 'node:timers/promises'
import fastifyCookie from '@fastify/cookie'
import { signerFactory } from '@fastify/cookie'
import fastifySession from '@fastify/session'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import multiCache, { sessionCache, type SessionCacheOptions } from '../../index.js'
import { captureLogs, cookieOf, fresh, secret } from '../helpers/app.js'
import { millisecondTimers } from '../helpers/timers.js'

/** An app with routes over every session method. */
async function shop (t: Test, options: SessionCacheOptions = { secret }): Promise<FastifyInstance> {
  const app = fresh(t)
  await app.register(sessionCache, options)
  app.get('/read', async (request) => ({ cart: await request.sessionCache.get('cart') ?? null, id: request.sessionCache.id ?? null }))
  app.post('/add/:item', async (request) => {
    const { item } = request.params as { item: string }
    const cart = await request.sessionCache.get<string[]>('cart') ?? []
    await request.sessionCache.set('cart', [...cart, item])
    return { id: request.sessionCache.id }
  })
  app.post('/login', async (request) => { await request.sessionCache.regenerate(); return { id: request.sessionCache.id } })
  app.post('/logout', async (request) => { await request.sessionCache.destroy(); return 'bye' })
  app.post('/clear', async (request) => { await request.sessionCache.clear(); return { id: request.sessionCache.id } })
  app.post('/delete', async (request) => ({ deleted: await request.sessionCache.delete('cart'), has: await request.sessionCache.has('cart') }))
  return app
}

test('a session is created on the first write only; a read-only request gets no cookie', async (t) => {
  const app = await shop(t)
  const read = await app.inject('/read')
  t.equal(read.headers['set-cookie'], undefined)
  t.same(read.json(), { cart: null, id: null })
  const write = await app.inject({ method: 'POST', url: '/add/apple' })
  const header = String(write.headers['set-cookie'])
  t.match(header, /^sid=[\w-]{43}\.[\w+/-]+; Path=\/; HttpOnly; SameSite=Lax$/, 'HttpOnly, SameSite=Lax, Path=/, not Secure outside production')
  const cookie = cookieOf(write.headers) as string
  const again = await app.inject({ url: '/read', headers: { cookie } })
  t.same(again.json(), { cart: ['apple'], id: write.json().id })
  t.equal(again.headers['set-cookie'], undefined, 'an existing session is not re-sent')
  const more = await app.inject({ method: 'POST', url: '/add/pear', headers: { cookie } })
  t.equal(more.headers['set-cookie'], undefined)
  t.same((await app.inject({ url: '/read', headers: { cookie } })).json().cart, ['apple', 'pear'])
})

test('ids carry at least 128 random bits and are stored only as a hash', async (t) => {
  const app = await shop(t)
  const ids = new Set<string>()
  for (let i = 0; i < 50; i++) ids.add((await app.inject({ method: 'POST', url: '/add/x' })).json().id)
  t.equal(ids.size, 50)
  for (const id of ids) t.ok(Buffer.from(id, 'base64url').length * 8 >= 128)
})

test('tampered, unsigned, unknown and garbage cookies read as a fresh empty session', async (t) => {
  const app = await shop(t)
  const victim = cookieOf((await app.inject({ method: 'POST', url: '/add/secret-item' })).headers) as string
  const [name, value] = victim.split('=') as [string, string]
  const [id] = value.split('.') as [string]
  const forged = signerFactory('another-secret-of-at-least-32-chars!!').sign(id)
  for (const cookie of [`${name}=${id}`, `${name}=${id}.AAAA`, `${name}=${forged}`, `${name}=`, `${name}=%%%`, `${name}=${'x'.repeat(4000)}`, 'other=1']) {
    const read = await app.inject({ url: '/read', headers: { cookie } })
    t.same(read.json(), { cart: null, id: null }, `no data for ${cookie.slice(0, 40)}`)
    const write = await app.inject({ method: 'POST', url: '/add/mine', headers: { cookie } })
    t.not(write.json().id, id, 'a write gets a new id, never the presented one')
  }
  const unknown = signerFactory(secret).sign('unknown-id-that-was-never-issued-by-us-000')
  const write = await app.inject({ method: 'POST', url: '/add/x', headers: { cookie: `sid=${unknown}` } })
  t.not(write.json().id, 'unknown-id-that-was-never-issued-by-us-000', 'a signed but unknown id is not adopted')
  t.same((await app.inject({ url: '/read', headers: { cookie: victim } })).json().cart, ['secret-item'], "the victim's data is intact")
})

test('regenerate keeps the data under a new id; the old id stops working', async (t) => {
  const app = await shop(t)
  const before = await app.inject({ method: 'POST', url: '/add/apple' })
  const oldCookie = cookieOf(before.headers) as string
  const login = await app.inject({ method: 'POST', url: '/login', headers: { cookie: oldCookie } })
  const newCookie = cookieOf(login.headers) as string
  t.not(newCookie, oldCookie)
  t.not(login.json().id, before.json().id)
  t.same((await app.inject({ url: '/read', headers: { cookie: newCookie } })).json().cart, ['apple'])
  t.same((await app.inject({ url: '/read', headers: { cookie: oldCookie } })).json(), { cart: null, id: null })
  const fresh = await app.inject({ method: 'POST', url: '/login' })
  t.ok(cookieOf(fresh.headers), 'regenerate without a session starts one')
})

test('destroy drops the data and clears the cookie; clear and delete keep the session', async (t) => {
  const app = await shop(t)
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/add/apple' })).headers) as string
  t.same((await app.inject({ method: 'POST', url: '/delete', headers: { cookie } })).json(), { deleted: true, has: false })
  t.same((await app.inject({ method: 'POST', url: '/delete', headers: { cookie } })).json(), { deleted: false, has: false })
  await app.inject({ method: 'POST', url: '/add/pear', headers: { cookie } })
  const cleared = await app.inject({ method: 'POST', url: '/clear', headers: { cookie } })
  t.equal(cleared.headers['set-cookie'], undefined)
  t.same((await app.inject({ url: '/read', headers: { cookie } })).json().cart, null)
  t.equal((await app.inject({ url: '/read', headers: { cookie } })).json().id, cleared.json().id, 'the emptied session keeps its id')
  await app.inject({ method: 'POST', url: '/add/plum', headers: { cookie } })
  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
  t.match(String(logout.headers['set-cookie']), /^sid=; Max-Age=0; Path=\/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax$/)
  t.same((await app.inject({ url: '/read', headers: { cookie } })).json(), { cart: null, id: null })
  const anonymous = await app.inject({ method: 'POST', url: '/logout' })
  t.equal(anonymous.headers['set-cookie'], undefined, 'nothing to clear without a cookie')
})

test('secret rotation: a cookie signed with an older secret works and is re-issued', async (t) => {
  const oldSecret = 'the-old-secret-that-is-32-chars-long!'
  const first = await shop(t, { secret: oldSecret })
  const oldCookie = cookieOf((await first.inject({ method: 'POST', url: '/add/apple' })).headers) as string
  t.ok(oldCookie)
  // The same store must serve both apps for the session to survive: share it through a custom store.
  const shared = await shopSharing(t, oldSecret)
  const cookieFromOld = cookieOf((await shared.old.inject({ method: 'POST', url: '/add/apple' })).headers) as string
  const read = await shared.rotated.inject({ url: '/read', headers: { cookie: cookieFromOld } })
  t.same(read.json().cart, ['apple'])
  const reissued = cookieOf(read.headers) as string
  t.ok(reissued, 're-issued')
  t.equal(reissued.split('.')[0], cookieFromOld.split('.')[0], 'same id')
  t.equal(reissued, `sid=${signerFactory(secret).sign((cookieFromOld.split('=')[1] as string).split('.')[0] as string)}`, 'signed with the new secret')
  t.equal((await shared.rotated.inject({ url: '/read', headers: { cookie: reissued } })).headers['set-cookie'], undefined)
})

async function shopSharing (t: Test, oldSecret: string): Promise<{ old: FastifyInstance, rotated: FastifyInstance }> {
  const data = new Map<string, unknown>()
  const store = {
    get: (key: string) => data.get(key),
    set: (key: string, value: unknown) => { data.set(key, value) },
    delete: (key: string) => { data.delete(key) },
    clear: () => { data.clear() }
  }
  return { old: await shop(t, { secret: oldSecret, store }), rotated: await shop(t, { secret: [secret, oldSecret], store }) }
}

test('in production: Secure cookies, and a secret is required', async (t) => {
  const previous = process.env.NODE_ENV
  process.env.NODE_ENV = 'production'
  t.teardown(() => { process.env.NODE_ENV = previous })
  const app = await shop(t)
  t.match(String((await app.inject({ method: 'POST', url: '/add/x' })).headers['set-cookie']), /; Secure; SameSite=Lax$/)
  const bare = fresh(t)
  await t.rejects(async () => { await bare.register(sessionCache).ready() }, { message: /sessionCache: option "secret" is required when NODE_ENV=production/ })
})

test('without a secret outside production a random one is used, with a warning', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'warn', stream: logs.stream } })
  await app.register(sessionCache)
  await app.ready()
  t.ok(logs.lines.some((line) => String(line.msg).includes('no "secret" given')))
})

test('cookie attributes and name are overridable', async (t) => {
  const app = await shop(t, { secret, cookieName: '__Host-cart', cookie: { sameSite: 'strict', secure: true, domain: undefined, maxAge: 3600 } })
  const header = String((await app.inject({ method: 'POST', url: '/add/x' })).headers['set-cookie'])
  t.match(header, /^__Host-cart=.+; Max-Age=3600; Path=\/; HttpOnly; Secure; SameSite=Strict$/)
})

/** Routes that use the app's own cookie through @fastify/cookie next to the session's. */
function themed (app: FastifyInstance): void {
  app.post('/w', async (request, reply) => { reply.setCookie('theme', 'dark'); await request.sessionCache.set('a', 1); return 'ok' })
  app.get('/r', async (request) => ({ a: await request.sessionCache.get('a') ?? null, theme: request.cookies.theme }))
}

async function bothCookies (t: Test, app: FastifyInstance): Promise<void> {
  const write = await app.inject({ method: 'POST', url: '/w' })
  const cookies = ([] as string[]).concat(write.headers['set-cookie'] as string[])
  t.equal(cookies.length, 2, 'both cookies are sent')
  const header = cookies.map((c) => c.split(';')[0]).join('; ')
  t.same((await app.inject({ url: '/r', headers: { cookie: header } })).json(), { a: 1, theme: 'dark' })
}

test('an app that registered @fastify/cookie itself keeps it, and parsed cookies are used', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'debug', stream: logs.stream } })
  await app.register(fastifyCookie)
  await app.register(sessionCache, { secret })
  themed(app)
  await bothCookies(t, app)
  t.ok(logs.lines.some((line) => String(line.msg).includes('@fastify/cookie is registered, so request.cookies is the app\'s')), 'the start-up debug log says whose cookies these are')
})

test('@fastify/cookie registered after the session level works as if registered first', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'debug', stream: logs.stream } })
  await app.register(multiCache, { session: { secret } })
  await app.register(fastifyCookie)
  themed(app)
  await bothCookies(t, app)
  t.ok(logs.lines.some((line) => String(line.msg).includes('@fastify/cookie is registered, so request.cookies is the app\'s')))
})

test('without @fastify/cookie the app stays without it: nothing half-registered, and the start-up debug log says so', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'debug', stream: logs.stream } })
  await app.register(multiCache, { session: { secret } })
  app.post('/w', async (request) => { await request.sessionCache.set('a', 1); return { cookies: typeof request.cookies } })
  app.get('/r', async (request) => ({ a: await request.sessionCache.get('a') ?? null }))
  const write = await app.inject({ method: 'POST', url: '/w' })
  t.same(write.json(), { cookies: 'undefined' })
  t.same((await app.inject({ url: '/r', headers: { cookie: cookieOf(write.headers) as string } })).json(), { a: 1 }, 'the session cookie is parsed all the same')
  t.notOk(app.hasPlugin('@fastify/cookie'), 'a plugin that depends on @fastify/cookie is not told it is there')
  t.notOk(app.hasReplyDecorator('setCookie'))
  t.ok(logs.lines.some((line) => line.level === 20 && String(line.msg).includes('request.cookies is not set: register @fastify/cookie')))

  const withSession = fresh(t)
  await withSession.register(multiCache, { session: { secret } })
  await t.rejects(async () => { await withSession.register(fastifySession, { secret }).ready() }, /dependency '@fastify\/cookie' of plugin '@fastify\/session' is not registered/)
})

test('cookie attributes are checked at registration, so that none can fail a session write later', async (t) => {
  for (const [cookie, pattern] of [
    [{ maxAge: 'x' }, /sessionCache \(cookie\): option "maxAge" must be a positive whole number of seconds, got "x"/],
    [{ maxAge: 1.5 }, /option "maxAge"/],
    [{ sameSite: 'none' }, /option "sameSite" must come with secure: true \(browsers drop a SameSite=None cookie without Secure\), got "none"/],
    [{ sameSite: 'none', secure: false }, /option "sameSite" must come with secure: true/],
    [{ partitioned: true }, /option "partitioned" must come with secure: true/],
    [{ sameSite: 'sometimes' }, /option "sameSite" must be 'lax', 'strict', 'none', true or false/],
    [{ priority: 'urgent' }, /option "priority" must be 'low', 'medium' or 'high'/],
    [{ expires: 'tomorrow' }, /option "expires" must be a valid Date/],
    [{ expires: new Date(NaN) }, /option "expires"/],
    [{ httpOnly: 'yes' }, /option "httpOnly" must be true or false/],
    [{ secure: 1 }, /option "secure" must be true or false/],
    [{ path: 'cart' }, /option "path" must be a string starting with '\/'/],
    [{ domain: '' }, /option "domain" must be a non-empty string/],
    [{ domain: 'exa mple.com' }, /sessionCache: option "cookie" must be attributes the cookie serializer accepts \(cookie domain is invalid/],
    [{ maxage: 60 }, /option "maxage" is not an option \(expected one of domain, path, maxAge, expires, httpOnly, secure, sameSite, priority, partitioned\)/],
    [{ signed: true }, /option "signed" is not an option/],
    [[], /sessionCache: option "cookie" must be an object of cookie attributes/]
  ] as const) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(sessionCache, { secret, cookie } as never).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message: pattern })
  }
  const app = await shop(t, { secret, cookie: { sameSite: 'none', secure: true, partitioned: true, priority: 'high', expires: new Date(Date.UTC(2100, 0, 1)) } })
  const header = String((await app.inject({ method: 'POST', url: '/add/x' })).headers['set-cookie'])
  t.match(header, /^sid=.+; Path=\/; Expires=Fri, 01 Jan 2100 00:00:00 GMT; HttpOnly; Secure; Partitioned; Priority=High; SameSite=None$/)
})

test('getSessionId: the app identifies users, no cookie is issued, regenerate is refused', async (t) => {
  const app = fresh(t)
  await app.register(sessionCache, { getSessionId: async (request) => request.headers['x-user'] as string | undefined })
  app.post('/w', async (request) => { await request.sessionCache.set('n', Number(request.headers['x-n'])); return { id: request.sessionCache.id } })
  app.get('/r', async (request) => ({ n: await request.sessionCache.get('n') ?? null }))
  app.post('/regen', async (request) => await request.sessionCache.regenerate().then(() => 'ok', (error: Error) => error.message))
  const write = await app.inject({ method: 'POST', url: '/w', headers: { 'x-user': 'alice', 'x-n': '1' } })
  t.equal(write.headers['set-cookie'], undefined)
  t.same(write.json(), { id: 'alice' })
  await app.inject({ method: 'POST', url: '/w', headers: { 'x-user': 'bob', 'x-n': '2' } })
  t.same((await app.inject({ url: '/r', headers: { 'x-user': 'alice' } })).json(), { n: 1 })
  t.same((await app.inject({ url: '/r', headers: { 'x-user': 'bob' } })).json(), { n: 2 })
  t.same((await app.inject('/r')).json(), { n: null })
  t.match((await app.inject({ method: 'POST', url: '/regen', headers: { 'x-user': 'alice' } })).body, /not available with getSessionId/)
  const anonymous = await app.inject({ method: 'POST', url: '/w', headers: { 'x-n': '3' } })
  t.equal(anonymous.headers['set-cookie'], undefined, 'an anonymous write gets an id of ours but still no cookie')
})

test('inactivity expiry rolls with use; entries have their own ttl', async (t) => {
  const app = await shop(t, { secret, ttl: 120 })
  app.post('/temp', async (request) => { await request.sessionCache.set('temp', 1, { ttl: 30 }); return 'ok' })
  app.get('/temp', async (request) => ({ temp: await request.sessionCache.get('temp') ?? null, has: await request.sessionCache.has('temp') }))
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/add/apple' })).headers) as string
  for (let i = 0; i < 4; i++) {
    await sleep(60)
    t.same((await app.inject({ url: '/read', headers: { cookie } })).json().cart, ['apple'], 'alive while used')
  }
  await app.inject({ method: 'POST', url: '/temp', headers: { cookie } })
  t.same((await app.inject({ url: '/temp', headers: { cookie } })).json(), { temp: 1, has: true })
  await sleep(50)
  t.same((await app.inject({ url: '/temp', headers: { cookie } })).json(), { temp: null, has: false }, 'the entry expired alone')
  await sleep(180)
  t.same((await app.inject({ url: '/read', headers: { cookie } })).json(), { cart: null, id: null }, 'the session expired after inactivity')
})

test('maxSessions and maxEntriesPerSession bound memory', async (t) => {
  const app = await shop(t, { secret, maxSessions: 3, maxEntriesPerSession: 2 })
  app.post('/fill', async (request) => {
    for (const key of ['a', 'b', 'c']) await request.sessionCache.set(key, key)
    return { a: await request.sessionCache.has('a'), c: await request.sessionCache.get('c') }
  })
  t.same((await app.inject({ method: 'POST', url: '/fill' })).json(), { a: false, c: 'c' })
  const cookies: string[] = []
  for (let i = 0; i < 5; i++) cookies.push(cookieOf((await app.inject({ method: 'POST', url: '/add/x' })).headers) as string)
  const stats = app.multiCache.stats().session
  t.equal(stats?.size, 3)
  t.equal(stats?.evictions, 1 + 3)
  t.same((await app.inject({ url: '/read', headers: { cookie: cookies[0] as string } })).json().cart, null, 'the least recently used session went first')
  t.same((await app.inject({ url: '/read', headers: { cookie: cookies[4] as string } })).json().cart, ['x'])
})

test("memory store: a user's index lives as long as the user's session, however many other users log in", async (t) => {
  const app = await shop(t, { secret, maxSessions: 50 })
  app.post('/login-as/:user', async (request) => {
    await request.sessionCache.set('cart', ['x'])
    await request.sessionCache.regenerate({ user: (request.params as { user: string }).user })
    return 'ok'
  })
  app.post('/everywhere/:user', async (request) => ({ ended: await request.server.multiCache.session?.destroyAllOf((request.params as { user: string }).user) }))
  const login = async (user: string): Promise<string> => cookieOf((await app.inject({ method: 'POST', url: `/login-as/${user}` })).headers) as string
  const victim = await login('victim')
  // maxSessions + 1 users: 50 others log in while the victim keeps using the session.
  for (let i = 0; i < 50; i++) {
    await login(`user${i}`)
    if (i % 10 === 9) t.same((await app.inject({ url: '/read', headers: { cookie: victim } })).json().cart, ['x'], `the victim's session lives (${i + 1} others)`)
  }
  t.same((await app.inject({ method: 'POST', url: '/everywhere/victim' })).json(), { ended: 1 }, 'log out everywhere still finds it')
  t.same((await app.inject({ url: '/read', headers: { cookie: victim } })).json().cart, null)
  t.same((await app.inject({ method: 'POST', url: '/everywhere/user0' })).json(), { ended: 0 }, 'the earliest other user\'s session was pushed out, and its index with it')
})

test('getOrLoad is de-duplicated per session and key across concurrent requests', async (t) => {
  const app = await shop(t)
  let calls = 0
  app.get('/profile', async (request) => await request.sessionCache.getOrLoad('profile', async () => { calls++; await sleep(20); return { n: calls } }, { ttl: '1m' }))
  app.get('/nothing', async (request) => ({ v: await request.sessionCache.getOrLoad('none', () => undefined) ?? null }))
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/add/x' })).headers) as string
  const bodies = await Promise.all(Array.from({ length: 20 }, async () => (await app.inject({ url: '/profile', headers: { cookie } })).body))
  t.ok(bodies.every((b) => b === '{"n":1}'))
  t.equal(calls, 1)
  const other = await app.inject('/profile')
  t.equal(other.body, '{"n":2}', 'another session loads its own')
  t.ok(cookieOf(other.headers), 'a loaded value creates the session that keeps it')
  const none = await app.inject('/nothing')
  t.equal(none.headers['set-cookie'], undefined, 'a loader with nothing to keep creates no session')
  const failing = await app.inject({ url: '/add/x' })
  t.equal(failing.statusCode, 404)
})

test('many concurrent sessions never see each other', async (t) => {
  const app = await shop(t)
  const users = Array.from({ length: 60 }, (_, i) => `user${i}`)
  app.post('/put/:key', async (request) => {
    const { key } = request.params as { key: string }
    await sleep(Math.random() * 5)
    await request.sessionCache.set(key, key)
    return 'ok'
  })
  app.get('/keys', async (request) => {
    const found: string[] = []
    for (const user of users) for (const n of [1, 2, 3]) if (await request.sessionCache.has(`${user}-${n}`)) found.push(`${user}-${n}`)
    return { cart: await request.sessionCache.get('cart'), found }
  })
  const cookies = await Promise.all(users.map(async (user) => cookieOf((await app.inject({ method: 'POST', url: `/add/${user}` })).headers) as string))
  // Concurrent writes of different keys to one session all survive, and land in that session only.
  await Promise.all(users.flatMap((user, i) => [1, 2, 3].map(async (n) => await app.inject({ method: 'POST', url: `/put/${user}-${n}`, headers: { cookie: cookies[i] as string } }))))
  const views = await Promise.all(cookies.map(async (cookie) => (await app.inject({ url: '/keys', headers: { cookie } })).json() as { cart: string[], found: string[] }))
  views.forEach((view, i) => {
    const user = users[i] as string
    t.same(view, { cart: [user], found: [1, 2, 3].map((n) => `${user}-${n}`) }, `${user} sees exactly its own data`)
  })
})

test('cookies travel between requests over a real socket', async (t) => {
  const app = await shop(t)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  const base = `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
  const first = await fetch(`${base}/add/apple`, { method: 'POST' })
  const setCookie = first.headers.get('set-cookie') as string
  t.match(setCookie, /HttpOnly/)
  const cookie = setCookie.split(';')[0] as string
  await fetch(`${base}/add/pear`, { method: 'POST', headers: { cookie } })
  const read = await fetch(`${base}/read`, { headers: { cookie } })
  t.same((await read.json() as { cart: string[] }).cart, ['apple', 'pear'])
  const stranger = await fetch(`${base}/read`)
  t.same(await stranger.json(), { cart: null, id: null })
})

test('invalid options fail registration and name the option', async (t) => {
  for (const [options, pattern] of [
    [{ secret: 'short' }, /option "secret" must be a string of at least 32 characters/],
    [{ secret: [] }, /option "secret"/],
    [{ secret: [secret, 42] }, /option "secret"/],
    [{ secret, ttl: 0 }, /option "ttl" must be greater than 0/],
    [{ secret, ttl: 'a while' }, /option "ttl"/],
    [{ secret, cookieName: 'bad name' }, /option "cookieName"/],
    [{ secret, cookie: 'secure' }, /option "cookie" must be an object/],
    [{ secret, maxSessions: 1.5 }, /option "maxSessions" must be a positive integer/],
    [{ secret, maxEntriesPerSession: 0 }, /option "maxEntriesPerSession"/],
    [{ secret, maxSessionsPerUser: 0 }, /option "maxSessionsPerUser" must be a positive integer/],
    [{ secret, coherence: 'eventual' }, /option "coherence" must be one of 'strict', 'bus', got "eventual"/],
    [{ secret, getSessionId: 'jwt' }, /option "getSessionId" must be a function/],
    [{ secret, store: {} }, /option "store"/],
    [{ secret, rolling: true }, /option "rolling" is not an option/]
  ] as const) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(sessionCache, options as never).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message: pattern })
  }
})

test('keys are validated; __proto__ is an ordinary key', async (t) => {
  const app = await shop(t)
  app.post('/proto', async (request) => {
    await request.sessionCache.set('__proto__', { polluted: true })
    await request.sessionCache.set('constructor', 'c')
    return { proto: await request.sessionCache.get('__proto__'), ctor: await request.sessionCache.get('constructor'), clean: ({} as Record<string, unknown>).polluted === undefined }
  })
  app.get('/bad', async (request) => await request.sessionCache.get('').then(() => 'no', (error: { code: string }) => error.code))
  app.get('/undef', async (request) => await request.sessionCache.set('k', undefined as unknown).then(() => 'no', (error: { code: string }) => error.code))
  t.same((await app.inject({ method: 'POST', url: '/proto' })).json(), { proto: { polluted: true }, ctor: 'c', clean: true })
  t.equal((await app.inject('/bad')).body, 'FST_MULTICACHE_INVALID_KEY')
  t.equal((await app.inject('/undef')).body, 'FST_MULTICACHE_INVALID_VALUE')
})

test('a quiet server sets no timer per request to read the clock: sessions in memory, and on Redis with the memory tier', async (t) => {
  for (const store of ['memory', 'redis://127.0.0.1:6379'] as const) {
    const app = fresh(t)
    await app.register(sessionCache, store === 'memory' ? { secret } : { secret, store, prefix: `fmc-test:clock:${process.pid}:` })
    app.post('/logout', async (request) => { await request.sessionCache.destroy(); return 'bye' })
    app.post('/cart', async (request) => {
      const cart = await request.sessionCache.get<number>('cart') ?? 0
      await request.sessionCache.set('cart', cart + 1)
      return { cart: cart + 1 }
    })
    const cookie = cookieOf((await app.inject({ method: 'POST', url: '/cart' })).headers) as string
    // lru-cache's default keeps the clock it read for a millisecond, and sets a timer to forget it.
    const timers = await millisecondTimers(async () => {
      for (let i = 0; i < 5; i++) {
        await sleep(3)
        const response = await app.inject({ method: 'POST', url: '/cart', headers: { cookie } })
        t.same(response.json(), { cart: i + 2 }, store)
      }
    })
    t.equal(timers, 0, store)
    await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
    await app.close()
  }
})
