import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { test } from 'tap'
import { RedisLock } from '../../lib/lock.js'
import { RedisStore, type RedisClient } from '../../lib/stores/redis.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

test('RedisLock: one holder at a time, released only by its own token, expiring if the holder dies', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const lock = new RedisLock({ client: client as unknown as RedisClient, prefix: prefix + 'lock:', leasePrefix: prefix + 'lease:', timeout: 100, ttl: 60, wait: 1000 })
  const first = await lock.acquire('k')
  t.type(first, 'string')
  t.equal(await lock.acquire('k'), undefined, 'a second caller does not get it')
  t.ok(await client.pttl(prefix + 'lock:k') <= 60, 'the lock expires by itself')
  await sleep(80)
  const second = await lock.acquire('k')
  t.type(second, 'string', 'a holder that died frees the lock after its ttl')
  await lock.release('k', first as string)
  t.equal(await client.get(prefix + 'lock:k'), second, 'the late release of the first holder leaves the second holder\'s lock')
  await lock.release('k', second as string)
  t.equal(await client.exists(prefix + 'lock:k'), 0, 'its own token releases it')

  t.equal(await lock.lease('r', 1000), true)
  t.equal(await lock.lease('r', 1000), false, 'one lease per interval')
  t.equal(await lock.lease('s', 1000), true, 'each key has its own')
  t.equal(await client.exists(prefix + 'lease:r'), 1)
  t.equal(await client.exists(prefix + 'lock:r'), 0, 'leases live apart from locks')
})

test('RedisLock.waitFor: the value once it lands, nothing as soon as the lock is free without one', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const prefix = uniquePrefix(t)
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix: prefix + 'data:' })
  const lock = new RedisLock({ client: client as unknown as RedisClient, prefix: prefix + 'lock:', leasePrefix: prefix + 'lease:', timeout: 100, ttl: 10_000, wait: 60_000, poll: 5 })
  const token = await lock.acquire('k') as string
  const waiting = lock.waitFor(store, 'k')
  await store.set('k', 'landed')
  t.equal(await waiting, 'landed')
  const token2 = await lock.acquire('empty') as string
  const empty = lock.waitFor(store, 'empty')
  await lock.release('empty', token2)
  t.equal(await empty, undefined, 'the holder let go without a value: the wait ends long before `wait`')
  await lock.release('k', token)
  const closing = lock.waitFor(store, 'never')
  await client.set(prefix + 'lock:never', 'someone')
  lock.close()
  await t.rejects(closing, { code: 'FST_MULTICACHE_STORE', message: /closing/ })
})

test('RedisLock: a failing command rejects with the lock operation it was', async (t) => {
  const client = new Redis(REDIS_URL, { lazyConnect: true }) // never connected
  t.teardown(() => { client.disconnect() })
  const lock = new RedisLock({ client: client as unknown as RedisClient, prefix: 'lock:', leasePrefix: 'lease:', timeout: 100, ttl: 60, wait: 1000, poll: 5 })
  await t.rejects(lock.acquire('k'), { code: 'FST_MULTICACHE_STORE', message: /^store lock failed: Redis is not connected/ })
  await t.rejects(lock.release('k', 'token'), { code: 'FST_MULTICACHE_STORE', message: /^store unlock failed/ })
  await t.rejects(lock.lease('k', 1000), { code: 'FST_MULTICACHE_STORE', message: /^store lease failed/ })
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix: 'data:' })
  await t.rejects(lock.waitFor(store, 'k'), { code: 'FST_MULTICACHE_STORE', message: /^store lock failed: Redis is not connected/ })
  lock.close()
  await t.rejects(lock.waitFor(store, 'k'), { message: /^store lock failed: the app is closing/ })
})
