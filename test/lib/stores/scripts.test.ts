// Scripts by SHA-1 (lib/stores/scripts.ts), on a Redis of the test's own: SCRIPT FLUSH and a restart must not reach the
// shared Redis other tests use at the same time.
import { Redis, type RedisOptions } from 'ioredis'
import { test, type Test } from 'tap'
import { RedisStore, type RedisClient } from '../../../lib/stores/redis.js'
import { commandCalls, privateRedis } from '../../helpers/redis.js'
import { until } from '../../helpers/until.js'

/** The calls of the script commands since the last `CONFIG RESETSTAT`, then resets them. */
async function scriptCalls (admin: Redis): Promise<{ eval: number, evalsha: number, load: number }> {
  const calls = await commandCalls(admin)
  // A subcommand's line (`cmdstat_script|load`) is not among `commandCalls`'.
  const loads = /cmdstat_script\|load:calls=(\d+)/.exec(await admin.call('INFO', 'commandstats') as string)?.[1]
  await admin.call('CONFIG', 'RESETSTAT')
  return { eval: calls.eval ?? 0, evalsha: calls.evalsha ?? 0, load: Number(loads ?? 0) }
}

/** A store on its own connection to `url`, and a group it writes. */
async function storeOn (t: Test, url: string, options: RedisOptions = {}): Promise<{ client: Redis, store: RedisStore }> {
  const client = new Redis(url, { maxRetriesPerRequest: 0, ...options })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  await until(() => client.status === 'ready')
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix: 'scripts:' })
  t.equal(await store.groups.create('g', { fence: 'f', fields: { n: 0 } }, 60_000), true)
  return { client, store }
}

test('a script goes by its text until Redis has loaded it for the connection, then by its SHA-1', async (t) => {
  const redis = await privateRedis(t)
  if (redis === undefined) return
  const admin = new Redis(redis.url)
  t.teardown(() => { admin.disconnect() })
  const { store } = await storeOn(t, redis.url)
  await scriptCalls(admin)
  t.equal(await store.groups.update('g', 'f', { set: { n: 1 } }, 60_000), true)
  t.same(await scriptCalls(admin), { eval: 1, evalsha: 0, load: 1 }, 'first use: by its text, and loaded beside it')
  for (let n = 2; n <= 5; n++) t.equal(await store.groups.update('g', 'f', { set: { n } }, 60_000), true)
  t.same(await scriptCalls(admin), { eval: 0, evalsha: 4, load: 0 }, 'then by its SHA-1 alone')
  t.match(await store.groups.read('g', 60_000), { fields: { n: 5 } })
})

test('after SCRIPT FLUSH the command sent by SHA-1 fails, unapplied, and the next goes by its text again', async (t) => {
  const redis = await privateRedis(t)
  if (redis === undefined) return
  const admin = new Redis(redis.url)
  t.teardown(() => { admin.disconnect() })
  const { store } = await storeOn(t, redis.url)
  t.equal(await store.groups.update('g', 'f', { set: { n: 1 } }, 60_000), true)
  t.equal(await store.groups.update('g', 'f', { set: { n: 2 } }, 60_000), true)
  await admin.call('SCRIPT', 'FLUSH')
  await scriptCalls(admin)
  await t.rejects(Promise.resolve(store.groups.update('g', 'f', { set: { n: 3 } }, 60_000)), /NOSCRIPT/, 'refused by Redis, not run later in another order')
  t.equal(await admin.hget('scripts:g', 'n'), '2', 'the refused change did not land')
  t.equal(await store.groups.update('g', 'f', { set: { n: 4 } }, 60_000), true, 'the next change lands')
  t.equal(await store.groups.update('g', 'f', { set: { n: 5 } }, 60_000), true)
  t.same(await scriptCalls(admin), { eval: 1, evalsha: 2, load: 1 }, 'the refused one by SHA-1, the next by its text, loaded again, then by SHA-1')
  t.equal(await admin.hget('scripts:g', 'n'), '5')
})

test('a Redis restarted empty gets the script by its text first: no command fails for want of it', async (t) => {
  const redis = await privateRedis(t)
  if (redis === undefined) return
  const { client, store } = await storeOn(t, redis.url, { retryStrategy: () => 20 })
  t.equal(await store.groups.update('g', 'f', { set: { n: 1 } }, 60_000), true)
  t.equal(await store.groups.update('g', 'f', { set: { n: 2 } }, 60_000), true)
  await redis.restart()
  await until(() => client.status === 'ready')
  t.equal(await store.groups.create('g', { fence: 'f2', fields: { n: 0 } }, 60_000), true, 'the group is gone with the restart, and made again')
  const admin = new Redis(redis.url)
  t.teardown(() => { admin.disconnect() })
  await scriptCalls(admin)
  t.equal(await store.groups.update('g', 'f2', { set: { n: 1 } }, 60_000), true, 'the first change after the restart lands')
  t.same(await scriptCalls(admin), { eval: 1, evalsha: 0, load: 1 })
})

test('a connection whose ACL refuses SCRIPT LOAD keeps sending the script by its text, and every change lands', async (t) => {
  const redis = await privateRedis(t)
  if (redis === undefined) return
  const admin = new Redis(redis.url)
  t.teardown(() => { admin.disconnect() })
  await admin.call('ACL', 'SETUSER', 'noload', 'on', 'nopass', '~*', '&*', '+@all', '-script')
  const { store } = await storeOn(t, redis.url, { username: 'noload', password: 'unused' })
  await scriptCalls(admin)
  for (let n = 1; n <= 4; n++) t.equal(await store.groups.update('g', 'f', { set: { n } }, 60_000), true)
  const calls = await scriptCalls(admin)
  t.same({ eval: calls.eval, evalsha: calls.evalsha }, { eval: 4, evalsha: 0 }, 'by its text each time')
  t.equal(await admin.hget('scripts:g', 'n'), '4')
})
