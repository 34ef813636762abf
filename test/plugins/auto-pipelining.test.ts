// A Redis client with ioredis's automatic pipelining (`enableAutoPipelining: true`, a common @fastify/redis option)
// as the store: ioredis sends `callBuffer` without its command's name under it (ioredis#1923), and holds commands back
// until the event loop turns while it sends a transaction at once.
import fastifyRedis from '@fastify/redis'
import { Redis } from 'ioredis'
import { test } from 'tap'
import multiCache, { RedisStore } from '../../index.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

function pipelining (t: Parameters<typeof redisFor>[0]): Redis {
  const client = new Redis(REDIS_URL, { enableAutoPipelining: true })
  t.teardown(() => { client.disconnect() })
  return client
}

test('sessions and the application level on @fastify/redis with enableAutoPipelining: every request is served, a logout is final', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const app = fresh(t)
  await app.register(fastifyRedis, { url: REDIS_URL, enableAutoPipelining: true })
  await app.register(multiCache, {
    session: { secret, store: 'redis', prefix: prefix + 'session:' },
    app: { store: 'redis', prefix: prefix + 'app:' }
  })
  let loads = 0
  app.post('/login', async (request) => { await request.sessionCache.set('cart', []); return 'ok' })
  app.post('/cart/:item', async (request) => {
    const cart = await request.sessionCache.get<string[]>('cart') ?? []
    await request.sessionCache.set('cart', [...cart, (request.params as { item: string }).item])
    return 'ok'
  })
  app.get('/cart', async (request) => ({ cart: await request.sessionCache.get('cart') ?? null }))
  app.post('/logout', async (request) => { await request.sessionCache.destroy(); return 'ok' })
  app.get('/catalog', async () => await app.appCache.getOrLoad('catalog', async () => { loads++; return ['pear', 'plum'] }, { tags: ['catalog'] }))

  const login = await app.inject({ method: 'POST', url: '/login' })
  t.equal(login.statusCode, 200)
  const cookie = cookieOf(login.headers) as string
  for (const item of ['apple', 'pear', 'plum']) t.equal((await app.inject({ method: 'POST', url: `/cart/${item}`, headers: { cookie } })).statusCode, 200)
  t.same((await app.inject({ url: '/cart', headers: { cookie } })).json(), { cart: ['apple', 'pear', 'plum'] })

  const catalogs = await Promise.all(Array.from({ length: 5 }, async () => await app.inject('/catalog')))
  t.same(catalogs.map((response) => response.statusCode), [200, 200, 200, 200, 200])
  t.same(catalogs[0]?.json(), ['pear', 'plum'])
  t.equal(loads, 1, 'one load, then hits')
  await app.appCache.invalidateTag('catalog')
  t.same((await app.inject('/catalog')).json(), ['pear', 'plum'])
  t.equal(loads, 2, 'the tag dropped it')

  t.equal((await app.inject({ method: 'POST', url: '/logout', headers: { cookie } })).statusCode, 200)
  t.same((await app.inject({ url: '/cart', headers: { cookie } })).json(), { cart: null }, 'the session ended')
  t.same((await app.redis.keys(prefix + 'session:*')).filter((key) => !key.includes('fmc-')), [], 'nothing of it left in Redis')
})

test('a store on a client that pipelines automatically reads what it wrote just before, and leaves the application\'s own commands pipelined', async (t) => {
  if (await redisFor(t) === undefined) return
  const prefix = uniquePrefix(t)
  const client = pipelining(t)
  await new Promise((resolve) => client.once('ready', resolve))
  // Unfenced: a write is a plain SET, which the pipeline would hold back, and a timed read a transaction, which it
  // would send at once.
  const store = new RedisStore({ client, prefix })
  for (let i = 0; i < 20; i++) {
    const writing = store.set(`k${i}`, i, 60_000)
    const reading = store.getTimed(`k${i}`)
    await writing
    t.equal((await reading)?.value, i, `read ${i} after its write`)
    const deleting = store.delete(`k${i}`)
    const after = store.get(`k${i}`)
    await deleting
    t.equal(await after, undefined, `gone ${i} after its delete`)
  }
  t.same(await store.getMany(['k0', 'missing']), [undefined, undefined])

  const own = client.get(prefix + 'theirs')
  t.equal(client.autoPipelineQueueSize, 1, "the application's command waits in the pipeline, as it asked")
  t.equal(await own, null)
})

test('a client with a keyPrefix: the store, its scripts and its reads put every key under it, with or without pipelining', async (t) => {
  const admin = await redisFor(t)
  if (admin === undefined) return
  const prefix = uniquePrefix(t)
  for (const enableAutoPipelining of [false, true]) {
    const client = new Redis(REDIS_URL, { keyPrefix: prefix + 'app:', enableAutoPipelining })
    t.teardown(() => { client.disconnect() })
    await new Promise((resolve) => client.once('ready', resolve))
    const store = new RedisStore({ client, prefix: `level${String(enableAutoPipelining)}:`, fenced: true })
    await store.set('a', { n: 1 }, 60_000)
    t.same(await store.get('a'), { n: 1 })
    t.same(await store.getMany(['a', 'b']), [{ n: 1 }, undefined])
    t.equal(await store.groups.create('g', { fence: 'f', fields: { x: 1 } }, 60_000), true)
    t.equal(await store.groups.update('g', 'f', { set: { y: [2] } }, 60_000), true)
    t.same((await store.groups.read('g', 60_000))?.fields, { x: 1, y: [2] })
    const level = `level${String(enableAutoPipelining)}:`
    const held = (await admin.keys(prefix + '*')).filter((key) => key.includes(level))
    t.ok(held.includes(`${prefix}app:${level}a`) && held.includes(`${prefix}app:${level}g`), 'the entry and the group under the keyPrefix')
    t.ok(held.every((key) => key.startsWith(prefix + 'app:')), 'and their fences')
    t.same([...await admin.keys(level + '*'), ...await admin.keys('fmc-fence:' + level + '*')], [], 'nothing outside it')
  }
})
