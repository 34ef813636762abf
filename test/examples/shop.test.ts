import { randomUUID } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import pg from 'pg'
import tap, { test, type Test } from 'tap'
import { buildShop } from '../../examples/shop/app.js'
import { Database, type DatabaseOptions } from '../../examples/shop/db.js'
import { captureLogs, cookieOf } from '../helpers/app.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

// One in-process database for the tests that only read it: each boot of PGlite takes seconds.
const shared = Database.open({ products: 200 })
tap.teardown(async () => { await (await shared).close() })

async function shop (t: Test, options?: DatabaseOptions): Promise<{ app: FastifyInstance, db: Database }> {
  const db = options === undefined ? await shared : await Database.open(options)
  if (options !== undefined) t.teardown(() => db.close())
  const app = await buildShop({ db })
  t.teardown(() => app.close())
  await app.ready()
  return { app, db }
}

async function login (app: FastifyInstance, username: string, cookie?: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { username }, headers: cookie === undefined ? {} : { cookie } })
  return cookieOf(res.headers) as string
}

test('the catalog and products are served from the application level', async (t) => {
  const { app, db } = await shop(t)
  const afterPreload = db.queries
  for (let i = 0; i < 5; i++) t.equal((await app.inject('/products')).json().length, 200)
  t.equal(db.queries, afterPreload, 'the preloaded catalog costs no query')
  t.same((await app.inject('/products/7')).json(), { id: 7, name: 'Product 7', category: 'kitchen', priceCents: 458 })
  await app.inject('/products/7')
  t.equal(db.queries, afterPreload + 1, 'one query per product')
  t.equal((await app.inject('/products/99999')).statusCode, 404)
  t.equal((await app.inject('/products/99999')).statusCode, 404)
  t.equal(db.queries, afterPreload + 2, 'absence is cached too')
  t.equal((await app.inject('/products/abc')).statusCode, 400)
  t.equal((await app.inject('/products/0')).statusCode, 400)
})

test('carts live in the session; login regenerates the id and keeps the cart', async (t) => {
  const { app } = await shop(t)
  const anonymous = await app.inject({ method: 'POST', url: '/cart', payload: { productId: 3, quantity: 2 } })
  const cookie = cookieOf(anonymous.headers) as string
  t.ok(cookie)
  const loggedIn = await login(app, 'alice', cookie)
  t.ok(loggedIn)
  t.not(loggedIn, cookie, 'a new id after login')
  const cart = (await app.inject({ url: '/cart', headers: { cookie: loggedIn } })).json()
  t.same(cart.lines.map((l: { productId: number, quantity: number }) => [l.productId, l.quantity]), [[3, 2]])
  t.equal(cart.totalCents, 2 * 310)
  t.same((await app.inject({ url: '/cart', headers: { cookie } })).json().lines, [], 'the pre-login id no longer works')

  const bob = await login(app, 'bob')
  t.same((await app.inject({ url: '/cart', headers: { cookie: bob } })).json().lines, [], "bob does not see alice's cart")
  t.equal((await app.inject({ method: 'POST', url: '/cart', payload: { productId: 99999, quantity: 1 }, headers: { cookie: bob } })).statusCode, 404)
  t.equal((await app.inject({ method: 'POST', url: '/cart', payload: { productId: 1, quantity: 1000 }, headers: { cookie: bob } })).statusCode, 400)
  await app.inject({ method: 'DELETE', url: '/cart', headers: { cookie: loggedIn } })
  t.same((await app.inject({ url: '/cart', headers: { cookie: loggedIn } })).json().lines, [])
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: { username: 'mallory' } })).statusCode, 401)
  t.equal((await app.inject({ method: 'POST', url: '/login', payload: {} })).statusCode, 400)
})

test('orders load the profile once per request, and need a login', async (t) => {
  const { app, db } = await shop(t)
  t.equal((await app.inject('/orders')).statusCode, 401)
  const cookie = await login(app, 'alice')
  const before = db.queries
  const res = await app.inject({ url: '/orders', headers: { cookie } })
  t.equal(res.statusCode, 200)
  t.match(res.json().greeting, /^Hello Alice Liddell \(gold member\)$/)
  t.ok(res.json().orders.length > 0)
  t.equal(db.queries - before, 2, 'one profile query (used twice) and one orders query')
  await app.inject({ url: '/orders', headers: { cookie } })
  t.equal(db.queries - before, 4, 'the next request loads its own profile')
  const logout = await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })
  t.match(String(logout.headers['set-cookie']), /Max-Age=0/)
  t.equal((await app.inject({ url: '/orders', headers: { cookie } })).statusCode, 401)
})

test('the stats page reports every level and the database', async (t) => {
  const { app } = await shop(t)
  await app.inject('/products')
  const stats = (await app.inject('/cache/stats')).json()
  t.same(Object.keys(stats.cache), ['request', 'session', 'app', 'route'])
  t.ok(stats.cache.app.hits >= 1)
  t.ok(stats.db.queries >= 1)
})

test('GET /metrics: the cache series in the Prometheus text format', async (t) => {
  const { app } = await shop(t)
  await app.inject('/products')
  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0.0.4/)
  t.match(res.body, /^multicache_requests_total\{level="app",result="hit"\} [1-9]\d*$/m)
  t.match(res.body, /^# TYPE multicache_load_duration_seconds histogram$/m)
})

test('the cache admin at /_cache: behind HTTP Basic with ADMIN_TOKEN, absent without it, and the log says which', async (t) => {
  const db = await shared
  const quiet = captureLogs()
  const closed = await buildShop({ db, logger: { level: 'info', stream: quiet.stream } })
  t.teardown(() => closed.close())
  t.equal((await closed.inject('/_cache/stats')).statusCode, 404)
  t.ok(quiet.lines.some((line) => /not mounted: set ADMIN_TOKEN/.test(String(line.msg))), 'the start-up log says why')

  const app = await buildShop({ db, adminToken: 'open-sesame' })
  t.teardown(() => app.close())
  const prompted = await app.inject('/_cache/')
  t.equal(prompted.statusCode, 401)
  t.equal(prompted.headers['www-authenticate'], 'Basic realm="cache admin", charset="UTF-8"', 'a browser prompts')
  const basic = (password: string): Record<string, string> => ({ authorization: 'Basic ' + Buffer.from(`ops:${password}`).toString('base64') })
  t.equal((await app.inject({ url: '/_cache/stats', headers: basic('wrong') })).statusCode, 401)
  const page = await app.inject({ url: '/_cache/', headers: basic('open-sesame') })
  t.equal(page.statusCode, 200)
  t.match(page.body, '/_cache/dashboard.js')
  t.match((await app.inject({ url: '/_cache/defined', headers: basic('open-sesame') })).json(), { keys: [{ key: 'catalog' }] })
})

test('the advisor is on: the banner copied into every session is found, the shop\'s own use draws nothing', async (t) => {
  const { app } = await shop(t)
  t.equal(app.multiCache.advisor?.sampleRate, 1)
  const alice = await login(app, 'alice')
  for (let i = 0; i < 5; i++) {
    await app.inject('/products')
    await app.inject(`/products/${i + 1}`)
    await app.inject({ method: 'POST', url: '/cart', payload: { productId: i + 1, quantity: 1 }, headers: { cookie: alice } })
    await app.inject({ url: '/orders', headers: { cookie: alice } })
  }
  t.same(app.multiCache.advice(), [], 'catalog, products, cart and profile: nothing to say')
  for (let i = 0; i < 25; i++) await app.inject('/banner')
  t.same(app.multiCache.advice().map(({ level, key, kind }) => `${level} ${key} ${kind}`), ['session banner same-in-every-session'])
})

test('the same shop on a real PostgreSQL server', async (t) => {
  const schema = `shop_test_${randomUUID().replaceAll('-', '').slice(0, 12)}`
  const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test'
  t.teardown(async () => {
    const client = new pg.Client({ connectionString: url })
    await client.connect()
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`)
    await client.end()
  })
  const { app, db } = await shop(t, { url, schema, products: 50 })
  t.equal((await app.inject('/products')).json().length, 50)
  const cookie = await login(app, 'carol')
  await app.inject({ method: 'POST', url: '/cart', payload: { productId: 5, quantity: 1 }, headers: { cookie } })
  t.equal((await app.inject({ url: '/cart', headers: { cookie } })).json().lines.length, 1)
  t.ok(db.queries > 0)
})

test('two shop instances on one Redis share carts and logins over real sockets', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const db = await shared
  const redisPrefix = uniquePrefix(t)
  const urls: string[] = []
  for (let i = 0; i < 2; i++) {
    const app = await buildShop({ db, redisUrl: REDIS_URL, redisPrefix })
    t.teardown(() => app.close())
    urls.push(await app.listen({ host: '127.0.0.1', port: 0 }))
  }
  const [a, b] = urls as [string, string]
  const json = { 'content-type': 'application/json' }
  const added = await fetch(`${a}/cart`, { method: 'POST', headers: json, body: JSON.stringify({ productId: 3, quantity: 2 }) })
  const cookie = (added.headers.get('set-cookie') ?? '').split(';')[0] as string
  t.match(cookie, /^sid=/)
  const cartOnB = await (await fetch(`${b}/cart`, { headers: { cookie } })).json() as { lines: Array<{ productId: number, quantity: number }> }
  t.same(cartOnB.lines.map((line) => [line.productId, line.quantity]), [[3, 2]], 'the cart made on A is read on B')

  const login = await fetch(`${b}/login`, { method: 'POST', headers: { ...json, cookie }, body: JSON.stringify({ username: 'alice' }) })
  const renewed = (login.headers.get('set-cookie') ?? '').split(';')[0] as string
  t.not(renewed, cookie, 'login on B gives a new id')
  const orders = await fetch(`${a}/orders`, { headers: { cookie: renewed } })
  t.equal(orders.status, 200, 'A knows the login made on B')
  t.equal((await fetch(`${a}/orders`, { headers: { cookie } })).status, 401, 'the id from before login is worth nothing on A')
  t.ok((await redis.keys(redisPrefix + '*')).length > 0, 'the data lives in Redis under the shop prefix')
})
