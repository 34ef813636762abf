import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { test, type Test } from 'tap'
import { appCache, routeCache } from '../../index.js'
import { AppCache } from '../../lib/scopes/application.js'
import { RedisStore, type RedisClient } from '../../lib/stores/redis.js'
import { fresh } from '../helpers/app.js'
import { Gates } from '../helpers/gate.js'
import { forkInstance, type Instance } from '../helpers/instances.js'
import { REDIS_URL, privateRedis, redisFor, uniquePrefix } from '../helpers/redis.js'
import { eventually } from '../helpers/wait.js'

// What the application level keeps of Redis's state (tag versions, fences) when Redis comes up after the app,
// restarts empty, is flushed or fails over to a replica that missed writes: each Redis here is the test's own
// redis-server, killed, restarted and flushed while the apps run.

/** A client that keeps trying, as an app's own ioredis client does, whether or not its Redis answers yet. */
function retrying (t: Test, url: string): Redis {
  const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 })
  client.on('error', () => {})
  client.connect().catch(() => {})
  t.teardown(() => { client.disconnect() })
  return client
}

/** True when two reads in a row answer the same load: the second was served from the cache. */
async function twiceTheSame (read: () => Promise<number>): Promise<boolean> {
  const first = await read()
  return await read() === first
}

test('an app started while its Redis is down caches tagged entries once Redis answers', async (t) => {
  if (await redisFor(t) === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  await server.kill()
  const app: FastifyInstance = fresh(t)
  await app.register(appCache, { store: retrying(t, server.url), prefix: 'late:' })
  await app.register(routeCache)
  let loads = 0
  let runs = 0
  const tagged = async (): Promise<number> => await app.appCache.getOrLoad('catalog', () => ++loads, { tags: ['catalog'] })
  app.get('/catalog', { config: { cache: { level: 'app', tags: ['catalog'] } } }, async () => ({ run: ++runs }))
  const page = async (): Promise<string | undefined> => (await app.inject('/catalog')).headers['x-cache'] as string | undefined
  await app.ready()
  t.equal(await tagged(), 1, 'served from the loader while Redis is down')
  await server.restart()
  t.ok(await eventually(async () => await twiceTheSame(tagged), 3000), 'once Redis answers, a tagged entry is served from the cache')
  await page()
  t.equal(await page(), 'HIT-APP', 'and a tagged route response')
  const cached = await tagged()
  await app.appCache.invalidateTag('catalog')
  const loaded = await tagged()
  t.ok(loaded > cached, 'invalidateTag drops it')
  // The callers of a miss get the value before its write lands: the next read may come first.
  t.ok(await eventually(async () => await twiceTheSame(tagged), 1000), 'and the new value is cached')
})

/** What an instance's tagged answers hold: the product's name, and the load or handler run that produced it. */
interface Answer { name: string, load?: number, run?: number }

async function answer (instance: Instance, path: '/product' | '/catalog'): Promise<Answer> {
  return await (await fetch(instance.url + path)).json() as Answer
}

/** True once two reads in a row of `path` give the same answer: it is cached. */
async function cachedOn (instance: Instance, path: '/product' | '/catalog'): Promise<boolean> {
  return await eventually(async () => {
    const first = await answer(instance, path)
    return JSON.stringify(await answer(instance, path)) === JSON.stringify(first)
  }, 3000)
}

for (const loss of ['restarts empty', 'is flushed', 'fails over to a replica that missed the last moves'] as const) {
  test(`two app processes: after their Redis ${loss}, invalidateTag on one drops the tagged entries and route responses of both`, async (t) => {
    const db = await redisFor(t)
    if (db === undefined) return
    const server = await privateRedis(t)
    if (server === undefined) return
    const name = uniquePrefix(t) + 'product-name'
    await db.set(name, 'old name')
    const params = { cache: server.url, db: REDIS_URL, name, prefix: 'shop:' }
    const [a, b] = await Promise.all([forkInstance(t, 'app-level.ts', 'tagged', params), forkInstance(t, 'app-level.ts', 'tagged', params)]) as [Instance, Instance]
    // Versions well above those a Redis that forgot them counts from.
    for (let i = 0; i < 3; i++) await fetch(a.url + '/invalidate-tag', { method: 'POST' })
    for (const instance of [a, b]) {
      for (const path of ['/product', '/catalog'] as const) t.ok(await cachedOn(instance, path), `${path} is cached before`)
    }

    if (loss === 'restarts empty') {
      await server.restart()
    } else if (loss === 'is flushed') {
      await server.flushAll()
    } else {
      // The replica has the epoch and the entries, but not the last two moves; every connection goes to it anew.
      const admin = new Redis(server.url)
      t.teardown(() => { admin.disconnect() })
      await admin.hset('fmc-fence:shop:#tags', 'catalog', '1')
      for (const type of ['normal', 'pubsub']) await admin.call('CLIENT', 'KILL', 'TYPE', type)
    }
    // Both serve tagged entries from the cache again: they are reconnected, and know where the versions stand.
    for (const instance of [a, b]) t.ok(await cachedOn(instance, '/product'), 'tagged entries are cached again')

    await db.set(name, 'new name')
    t.equal((await fetch(a.url + '/invalidate-tag', { method: 'POST' })).status, 200)
    t.equal((await answer(a, '/product')).name, 'new name', 'the instance that invalidated drops its tagged entries')
    t.equal((await answer(a, '/catalog')).name, 'new name', 'and its tagged route responses')
    for (const path of ['/product', '/catalog'] as const) {
      t.ok(await eventually(async () => (await answer(b, path)).name === 'new name', 2000), `the other instance drops its ${path} too`)
    }
    for (const instance of [a, b]) {
      for (const path of ['/product', '/catalog'] as const) t.ok(await cachedOn(instance, path), `${path} is cached again after`)
    }
  })
}

test('a load that started before a change on another instance writes nothing after Redis forgot its data', async (t) => {
  if (await redisFor(t) === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  const client = retrying(t, server.url)
  const ready = async (): Promise<void> => { if (client.status !== 'ready') await new Promise((resolve) => client.once('ready', resolve)) }
  await ready()
  // No bus: only the fences in Redis can tell A's load of B's change.
  const level = (): AppCache => new AppCache({ store: new RedisStore({ client: client as unknown as RedisClient, prefix: 'p:', fenced: true }), ttl: 0, log: { warn: () => {} } })
  const [a, b] = [level(), level()]
  for (const loss of ['a restart', 'FLUSHALL'] as const) {
    // From an empty Redis: fences counted from nothing would read after the loss as they did when the load began.
    await server.flushAll()
    const gates = new Gates()
    const old = a.getOrLoad('k', async () => { await gates.get('load').pass(); return 'old' })
    await gates.get('load').reached
    await b.invalidate('k')
    if (loss === 'a restart') {
      await server.restart()
      await ready()
    } else {
      await server.flushAll()
    }
    gates.get('load').release()
    t.equal(await old, 'old', 'the load answers its own caller')
    await sleep(50) // its write, had it been let through, goes on behind the caller
    t.equal(await b.get('k'), undefined, `${loss}: its value was not written`)
    t.equal(await a.getOrLoad('k', () => 'new'), 'new')
    await sleep(50)
    t.equal(await b.get('k'), 'new', 'a load that starts after it writes')
  }
})

test('after a flush, an app process that starts draws the epoch and the others count in it too: tagged entries are not loaded over and over', async (t) => {
  const db = await redisFor(t)
  if (db === undefined) return
  const server = await privateRedis(t)
  if (server === undefined) return
  const name = uniquePrefix(t) + 'product-name'
  await db.set(name, 'a name')
  const params = { cache: server.url, db: REDIS_URL, name, prefix: 'shop:' }
  const a = await forkInstance(t, 'app-level.ts', 'tagged', params)
  t.ok(await cachedOn(a, '/product'))
  await server.flushAll()
  const c = await forkInstance(t, 'app-level.ts', 'tagged', params)
  // Each writes the entry the other then reads from Redis: counting in two epochs, each would refuse the other's, and
  // load it again, round after round.
  const rounds: string[] = []
  for (let i = 0; i < 8; i++) {
    rounds.push(JSON.stringify([await answer(a, '/product'), await answer(c, '/product')]))
    await sleep(20) // the write of a miss lands behind its answer
  }
  t.equal(new Set(rounds.slice(2)).size, 1, `both serve one cached entry: ${rounds.join(' ')}`)
})

for (const l1 of [true, false]) {
  test(`an invalidateTag that timed out while Redis was paused, and ran once it answered, drops the tagged entries of every instance (${l1 ? 'memory tier' : 'l1: false'})`, async (t) => {
    if (await redisFor(t) === undefined) return
    const server = await privateRedis(t)
    if (server === undefined) return
    let version = 0
    const instances = await Promise.all(['a', 'b'].map(async () => {
      const app = fresh(t)
      await app.register(appCache, { store: server.url, prefix: 'paused-tag:', ...(l1 ? {} : { l1: false }) })
      await app.ready()
      return app
    }))
    // A key of each instance's own: one that loads its key again after the move writes nothing the other reads.
    const read = async (app: FastifyInstance): Promise<number> => await app.appCache.getOrLoad(`product:${instances.indexOf(app)}`, () => version, { tags: ['catalog'] })
    for (const app of instances) t.equal(await read(app), 0)
    server.pause()
    version = 1
    await t.rejects(instances[1]?.appCache.invalidateTag('catalog') as Promise<void>, 'it runs out of its time budget')
    await sleep(300)
    server.resume()
    t.ok(await eventually(async () => (await Promise.all(instances.map(read))).every((value) => value === 1), 3000), 'neither instance serves the entry of before, the one that called it included')
    await sleep(l1 ? 200 : 0)
    t.same(await Promise.all(instances.map(read)), [1, 1], 'and it stays so')
  })
}
