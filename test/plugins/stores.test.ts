import Keyv from 'keyv'
import { test } from 'tap'
import multiCache, { appCache, sessionCache, type Store } from '../../index.js'
import { cookieOf, fresh, secret } from '../helpers/app.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

test('one Keyv given to both levels: each keeps its prefix, and appCache.clear() leaves the sessions', async (t) => {
  const keyv = new Keyv()
  const app = fresh(t)
  await app.register(multiCache, { session: { secret, store: keyv }, app: { store: keyv } })
  app.post('/cart', async (request) => { await request.sessionCache.set('cart', ['apple']); return 'ok' })
  app.get('/cart', async (request) => ({ cart: await request.sessionCache.get('cart') ?? null }))
  const cookie = cookieOf((await app.inject({ method: 'POST', url: '/cart' })).headers) as string
  await app.appCache.set('catalog', ['pear'])
  await keyv.set('the-apps-own', 'kept')
  const keys = []
  for await (const [key] of keyv.iterator?.(undefined) ?? []) keys.push(key as string)
  const levelOf = (key: string): string => key.startsWith('fmc:app:') ? 'app' : key.startsWith('fmc:session:') ? 'session' : key
  t.same([...new Set(keys.map(levelOf))].sort(), ['app', 'session', 'the-apps-own'], 'every key under its level\'s prefix')

  await app.appCache.clear()
  t.equal(await app.appCache.get('catalog'), undefined)
  t.same((await app.inject({ url: '/cart', headers: { cookie } })).json(), { cart: ['apple'] }, 'the session survived')
  t.equal(await keyv.get('the-apps-own'), 'kept', "and so did the app's own key")
})

test('two levels of one app in one namespace are refused, whatever the store', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const keyv = new Keyv()
  const store: Store = { get: () => undefined, set: () => {}, delete: () => {}, clear: () => {} }
  const cases: Array<[object, object, RegExp]> = [
    [{ store: keyv, prefix: 'shop:' }, { store: keyv, prefix: 'shop:' }, /^appCache: option "prefix" must not overlap the prefix of sessionCache in the same Keyv: two levels in one namespace read each other's keys, and either's clear\(\) deletes both \(give each level a prefix of its own, as the defaults do\), got "shop:"$/],
    [{ store: keyv, prefix: 'shop:' }, { store: keyv, prefix: 'shop:app:' }, /option "prefix" must not overlap the prefix of sessionCache in the same Keyv/],
    [{ store: REDIS_URL, prefix }, { store: client, prefix }, /appCache: option "prefix" must not overlap the prefix of sessionCache in the same Redis/],
    [{ store }, { store }, /appCache: option "store" must not be the store object sessionCache uses: .* \(give each level a store of its own\)/]
  ]
  for (const [session, app, message] of cases) {
    const server = fresh(t)
    await t.rejects(async () => { await server.register(multiCache, { session: { secret, ...session }, app }).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message })
  }

  const apart = fresh(t)
  await apart.register(sessionCache, { secret, store: keyv, prefix: 'shop:session:' })
  await apart.register(appCache, { store: keyv, prefix: 'shop:app:' })
  await apart.ready()
  const twoApps = [fresh(t), fresh(t)]
  for (const server of twoApps) await server.register(appCache, { store: client, prefix })
  await Promise.all(twoApps.map(async (server) => { await server.ready() }))
  t.pass('one Keyv under two prefixes, and two apps (instances) in one Redis namespace, are fine')
})

test('l1 with the memory store is refused; false is accepted', async (t) => {
  for (const options of [{ l1: { max: 10 } }, { store: 'memory', l1: {} }] as const) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(appCache, options).ready() }, {
      code: 'FST_MULTICACHE_INVALID_OPTION', message: /^appCache: option "l1" must be left out with the memory store \(store: 'memory', the default\)/
    })
  }
  const app = fresh(t)
  await app.register(sessionCache, { secret, l1: false })
  await app.ready()
})

test('a store the plugin does not know is refused with every form it accepts', async (t) => {
  for (const store of ['mem', 'Redis', 'http://127.0.0.1:6379', '', true, [], ['http://127.0.0.1:7000']]) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(sessionCache, { secret, store } as never).ready() }, {
      code: 'FST_MULTICACHE_INVALID_OPTION',
      message: /^sessionCache: option "store" must be 'memory', 'redis' \(the @fastify\/redis client\), a redis:\/\/ or rediss:\/\/ URL, a redis\+cluster:\/\/ URL or a list of a cluster's node URLs, an ioredis client or Cluster, a Keyv instance, or an object with the methods get, set, delete and clear, got /
    })
  }
})
