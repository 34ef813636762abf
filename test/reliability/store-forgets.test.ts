import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { test, type Test } from 'tap'
import { appCache, routeCache } from '../../index.js'
import { fresh } from '../helpers/app.js'
import { privateRedis, redisFor } from '../helpers/redis.js'

// What the application level keeps of Redis's state (tag versions, fences) when Redis is late, restarts empty or is
// flushed: each Redis here is the test's own redis-server, killed, restarted and flushed while the apps run.

/** A client that keeps trying, as an app's own ioredis client does, whether or not its Redis answers yet. */
function retrying (t: Test, url: string): Redis {
  const client = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 50 })
  client.on('error', () => {})
  client.connect().catch(() => {})
  t.teardown(() => { client.disconnect() })
  return client
}

/** Polls `check` until it holds, for at most `ms`; false if it never did. */
async function eventually (check: () => Promise<boolean>, ms: number): Promise<boolean> {
  const until = Date.now() + ms
  while (Date.now() < until) {
    if (await check()) return true
    await sleep(25)
  }
  return false
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
