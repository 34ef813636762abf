// Two app processes on a Redis Cluster of three masters (the test's own): what they share through it, level by level
// (issue 21).
import fastifyRedis from '@fastify/redis'
import Fastify from 'fastify'
import t from 'tap'
import { appCache, sessionCache } from '../../index.js'
import type { RedisClient } from '../../lib/stores/redis.js'
import { secret } from '../helpers/app.js'
import { privateCluster } from '../helpers/cluster.js'
import { Browser, forkInstance } from '../helpers/instances.js'

const cluster = await privateCluster(t)

if (cluster !== undefined) {
  // One instance opens the cluster from a redis+cluster:// URL, the other from a list of node URLs.
  const [a, b] = await Promise.all([
    forkInstance(t, 'cluster.ts', 'clustered', { store: cluster.url, secret, loadMs: 150 }),
    forkInstance(t, 'cluster.ts', 'clustered', { store: cluster.nodes.map(({ url }) => url), secret, loadMs: 150 })
  ])
  const json = async (url: string): Promise<Record<string, unknown>> => (await new Browser().request(url)).json()
  const post = async (url: string): Promise<string> => (await new Browser().request(url, { method: 'POST' })).body
  const loads = async (url: string): Promise<number> => (await json(`${url}/loads`)).loads as number

  t.test('sessions: a login on one instance is seen on the other, and a logout there ends it here', async (t) => {
    const browser = new Browser()
    await browser.request(`${a.url}/login`, { method: 'POST', body: { user: 'ada' } })
    t.same((await browser.request(`${b.url}/me`)).json(), { user: 'ada', cart: ['ada'] })
    await browser.request(`${b.url}/logout`, { method: 'POST' })
    t.same((await browser.clone().request(`${a.url}/me`)).json(), { user: null, cart: null })
  })

  t.test('many sessions land on every master, and each browser reads only its own on either instance', async (t) => {
    const browsers = Array.from({ length: 60 }, () => new Browser())
    await Promise.all(browsers.map(async (browser, i) => { await browser.request(`${(i % 2 === 0 ? a : b).url}/login`, { method: 'POST', body: { user: `u${i}` } }) }))
    const held = await cluster.keysByMaster('fmc:session:*')
    t.ok([...held.values()].every((keys) => keys.length >= 5), `sessions on every master: ${[...held.values()].map((keys) => keys.length).join(', ')}`)
    const seen = await Promise.all(browsers.map(async (browser, i) => (await browser.request(`${(i % 2 === 0 ? b : a).url}/me`)).json()))
    t.same(seen, browsers.map((_, i) => ({ user: `u${i}`, cart: [`u${i}`] })))
  })

  t.test("application values: one instance's load and changes reach the other's memory tier within 200 ms", async (t) => {
    const first = await json(`${a.url}/value/price`)
    t.same(await json(`${b.url}/value/price`), first, "the other instance serves A's load from the cluster")
    t.same(await json(`${b.url}/value/price`), first, 'then from its memory tier')
    await new Browser().request(`${a.url}/value/price`, { method: 'PUT', body: { key: 'price', load: 'set' } })
    const started = performance.now()
    while ((await json(`${b.url}/value/price`)).load !== 'set') {
      if (performance.now() - started > 200) break
    }
    const elapsed = performance.now() - started
    t.ok(elapsed < 200, `B serves the new value ${elapsed.toFixed(0)} ms after set() returned on A`)
    await post(`${a.url}/invalidate/price?wait`)
    const before = await loads(b.url)
    t.not((await json(`${b.url}/value/price`)).load, 'set', 'once invalidate({ wait }) resolved on A, B serves no old value')
    t.equal(await loads(b.url), before + 1, 'B loaded it again')
  })

  t.test('invalidateTag on one instance drops the tagged entries on the other, whatever their slot', async (t) => {
    const names = Array.from({ length: 12 }, (_, i) => `tagged:${i}`)
    const read = async (): Promise<unknown[]> => await Promise.all(names.map(async (name) => (await json(`${b.url}/value/${name}`)).load))
    const first = await read()
    const cached = await loads(b.url)
    t.same(await read(), first, 'served from the cache')
    t.equal(await loads(b.url), cached)
    await post(`${a.url}/invalidate-tag`)
    const again = await read()
    t.equal(await loads(b.url), cached + names.length, 'B loads every entry again')
    t.ok(again.every((load, i) => load !== first[i]), 'and serves none of the old values')
  })

  t.test('lock: one load per cold key across the two instances', async (t) => {
    const before = await loads(a.url) + await loads(b.url)
    const names = Array.from({ length: 8 }, (_, i) => `cold:${i}`)
    const answers = await Promise.all(names.flatMap((name) => [a, b, a, b].map(async (instance) => await json(`${instance.url}/value/${name}`))))
    t.equal(await loads(a.url) + await loads(b.url) - before, names.length, `${names.length} loads for ${answers.length} requests`)
    for (const [i, name] of names.entries()) t.equal(new Set(answers.slice(i * 4, i * 4 + 4).map((answer) => answer.load)).size, 1, `one value of ${name}`)
  })

  t.test("clear() leaves no key of the application level's prefix on any master; the sessions' keys survive", async (t) => {
    const browser = new Browser()
    await browser.request(`${a.url}/login`, { method: 'POST', body: { user: 'kept' } })
    await Promise.all(Array.from({ length: 30 }, async (_, i) => await json(`${a.url}/value/c${i}`)))
    t.ok([...(await cluster.keysByMaster('fmc:app:*')).values()].every((keys) => keys.length > 0), 'application keys on every master')
    const sessions = [...(await cluster.keysByMaster('fmc:session:*')).values()].flat().length
    await post(`${b.url}/clear`)
    t.same([...(await cluster.keysByMaster('fmc:app:*')).values()].flat(), [], 'none left')
    t.equal([...(await cluster.keysByMaster('fmc:session:*')).values()].flat().length, sessions, 'every session key is still there')
    t.same((await browser.request(`${b.url}/me`)).json(), { user: 'kept', cart: ['kept'] })
    const before = await loads(a.url)
    await json(`${a.url}/value/c0`)
    t.equal(await loads(a.url), before + 1, "A's memory tier heard of the clear: it loads again")
  })

  t.test("store: 'redis' with @fastify/redis registered with a Cluster client: the cluster is used, and left open", async (t) => {
    const apps = await Promise.all([0, 1].map(async () => {
      const client = cluster.client({ enableOfflineQueue: false })
      const app = Fastify()
      await app.register(fastifyRedis, { client })
      await app.register(sessionCache, { secret, store: 'redis', prefix: 'fmc:fr:session:', timeout: '2s' })
      await app.register(appCache, { store: 'redis', prefix: 'fmc:fr:app:', timeout: '2s' })
      app.get('/login', async (request) => { await request.sessionCache.set('cart', ['x']); return { id: request.sessionCache.id } })
      await app.ready()
      return { app, client }
    }))
    const [one, two] = apps as [typeof apps[0], typeof apps[0]]
    await one.app.appCache.set('shared', { n: 1 })
    t.same(await two.app.appCache.get('shared'), { n: 1 }, "one app's value read by the other")
    t.equal(one.app.redis as unknown as RedisClient, one.client as unknown as RedisClient, 'fastify.redis is the cluster')
    await one.app.appCache.set('shared', { n: 2 })
    await new Promise((resolve) => setTimeout(resolve, 100))
    t.same(await two.app.appCache.get('shared'), { n: 2 }, "and the other's memory tier hears of the change")
    const held = await cluster.keysByMaster('fmc:fr:app:*')
    t.same([...held.values()].flat(), ['fmc:fr:app:shared'])
    for (const { app } of apps) await app.close()
    t.equal(one.client.status, 'ready', 'a client the app passed in stays open')
  })
}
