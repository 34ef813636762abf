// Scripts by SHA-1 (lib/stores/scripts.ts), on a Redis of the test's own: SCRIPT FLUSH and a restart must not reach the
// shared Redis other tests use at the same time.
import { Redis, type RedisOptions } from 'ioredis'
import { test, type Test } from 'tap'
import { Breaker, guardStore } from '../../../lib/breaker.js'
import { RedisStore, type RedisClient } from '../../../lib/stores/redis.js'
import type { Group } from '../../../lib/store.js'
import { commandCalls, privateRedis, type PrivateRedis } from '../../helpers/redis.js'
import { until } from '../../helpers/until.js'

/** The calls of the script commands since the last `CONFIG RESETSTAT`, then resets them. */
async function scriptCalls (admin: Redis): Promise<{ eval: number, evalsha: number, load: number }> {
  const calls = await commandCalls(admin)
  // A subcommand's line (`cmdstat_script|load`) is not among `commandCalls`'.
  const loads = /cmdstat_script\|load:calls=(\d+)/.exec(await admin.call('INFO', 'commandstats') as string)?.[1]
  await admin.call('CONFIG', 'RESETSTAT')
  return { eval: calls.eval ?? 0, evalsha: calls.evalsha ?? 0, load: Number(loads ?? 0) }
}

/** A Redis of the test's own, an admin client of it, and a store on a connection of its own that has written a group. */
async function setUp (t: Test, options: SetUpOptions = {}): Promise<{ redis: PrivateRedis, admin: Redis, client: Redis, store: RedisStore } | undefined> {
  const redis = await privateRedis(t)
  if (redis === undefined) return undefined
  const admin = new Redis(redis.url)
  t.teardown(() => { admin.disconnect() })
  const user = options.deny === undefined ? {} : { username: 'limited', password: 'unused' }
  if (options.deny !== undefined) await admin.call('ACL', 'SETUSER', 'limited', 'on', 'nopass', '~*', '&*', '+@all', `-${options.deny}`)
  const client = new Redis(redis.url, { maxRetriesPerRequest: 0, ...user, ...options.client })
  client.on('error', () => {})
  t.teardown(() => { client.disconnect() })
  await until(() => client.status === 'ready')
  const store = new RedisStore({ client: client as unknown as RedisClient, prefix: 'scripts:' })
  t.equal(await store.groups.create('g', { fence: 'f', fields: { n: 0 } }, 60_000), true)
  return { redis, admin, client, store }
}

interface SetUpOptions {
  /** The store's connection's options. */
  client?: RedisOptions
  /** A command the ACL refuses the store's connection (its user has every other). */
  deny?: string
}

/** Sets `n` in the group, under its fence `fence`. */
const setN = (store: RedisStore, n: number, fence = 'f'): Promise<boolean | Group> => Promise.resolve(store.groups.update('g', fence, { set: { n } }, 60_000))

test('a script goes by its text until Redis has loaded it for the connection, then by its SHA-1', async (t) => {
  const set = await setUp(t)
  if (set === undefined) return
  const { admin, store } = set
  await scriptCalls(admin)
  t.equal(await setN(store, 1), true)
  t.same(await scriptCalls(admin), { eval: 1, evalsha: 0, load: 1 }, 'first use: by its text, and loaded beside it')
  for (let n = 2; n <= 5; n++) t.equal(await setN(store, n), true)
  t.same(await scriptCalls(admin), { eval: 0, evalsha: 4, load: 0 }, 'then by its SHA-1 alone')
  t.match(await store.groups.read('g', 60_000), { fields: { n: 5 } })
})

test('after SCRIPT FLUSH the command sent by SHA-1 fails, unapplied; the connection then sends text until it is made again', async (t) => {
  const set = await setUp(t)
  if (set === undefined) return
  const { admin, client, store } = set
  t.equal(await setN(store, 1), true)
  t.equal(await setN(store, 2), true)
  await admin.call('SCRIPT', 'FLUSH')
  await scriptCalls(admin)
  await t.rejects(setN(store, 3), /NOSCRIPT/, 'refused by Redis, not run later in another order')
  t.equal(await admin.hget('scripts:g', 'n'), '2', 'the refused change did not land')
  t.equal(await setN(store, 4), true, 'the next change lands')
  t.equal(await setN(store, 5), true)
  t.match(await store.groups.read('g', 60_000), { fields: { n: 5 } }, 'a script not used before goes by its text too')
  t.same(await scriptCalls(admin), { eval: 3, evalsha: 1, load: 0 }, 'the refused one by SHA-1, the next by their text, nothing loaded')
  const ready = new Promise((resolve) => client.once('ready', resolve))
  client.disconnect(true)
  await ready
  t.equal(await setN(store, 6), true)
  t.equal(await setN(store, 7), true)
  t.same(await scriptCalls(admin), { eval: 1, evalsha: 1, load: 1 }, 'a new connection loads it again')
  t.equal(await admin.hget('scripts:g', 'n'), '7')
})

test('a Redis restarted empty gets the script by its text first: no command fails for want of it', async (t) => {
  const set = await setUp(t, { client: { retryStrategy: () => 20 } })
  if (set === undefined) return
  const { redis, admin, client, store } = set
  t.equal(await setN(store, 1), true)
  t.equal(await setN(store, 2), true)
  await redis.restart()
  await until(() => client.status === 'ready' && admin.status === 'ready')
  t.equal(await store.groups.create('g', { fence: 'f2', fields: { n: 0 } }, 60_000), true, 'the group is gone with the restart, and made again')
  await scriptCalls(admin)
  t.equal(await setN(store, 1, 'f2'), true, 'the first change after the restart lands')
  t.same(await scriptCalls(admin), { eval: 1, evalsha: 0, load: 1 })
})

test('a connection whose ACL refuses SCRIPT LOAD keeps sending the script by its text, and every change lands', async (t) => {
  const set = await setUp(t, { deny: 'script' })
  if (set === undefined) return
  const { admin, store } = set
  await scriptCalls(admin)
  for (let n = 1; n <= 4; n++) t.equal(await setN(store, n), true)
  const calls = await scriptCalls(admin)
  t.same({ eval: calls.eval, evalsha: calls.evalsha }, { eval: 4, evalsha: 0 }, 'by its text each time')
  t.equal(await admin.hget('scripts:g', 'n'), '4')
})

test('every command in flight when Redis drops its scripts fails once, unapplied; the circuit breaker does not count them', async (t) => {
  const set = await setUp(t)
  if (set === undefined) return
  const { admin, store } = set
  const breaker = new Breaker({ failures: 3, coolDown: 1000, name: 'redis' })
  const guarded = guardStore(store, breaker)
  const setGuarded = (n: number): Promise<unknown> => Promise.resolve(guarded.groups?.update('g', 'f', { set: { n } }, 60_000))
  t.equal(await setGuarded(1), true)
  t.equal(await setGuarded(2), true)
  await admin.call('SCRIPT', 'FLUSH')
  const inFlight = await Promise.allSettled([3, 4, 5, 6, 7, 8].map(setGuarded))
  t.same(inFlight.map(({ status }) => status), Array(6).fill('rejected'), 'each sent by SHA-1 before the first answer')
  t.equal(await admin.hget('scripts:g', 'n'), '2', 'none of them landed')
  t.equal(breaker.state, 'closed', 'Redis is as healthy as before: the breaker stays closed')
  t.equal(await setGuarded(9), true, 'the next write lands, by its text')
  t.equal(await admin.hget('scripts:g', 'n'), '9')
})

test('a user the ACL refuses EVALSHA (but not SCRIPT) fails one command, then sends text', async (t) => {
  const set = await setUp(t, { deny: 'evalsha' })
  if (set === undefined) return
  const { admin, store } = set
  const outcomes: string[] = []
  for (let n = 1; n <= 6; n++) outcomes.push(await setN(store, n).then(() => 'landed', (error: Error) => error.message))
  t.equal(outcomes.filter((outcome) => outcome !== 'landed').length, 1, 'one command refused')
  t.match(outcomes.find((outcome) => outcome !== 'landed'), /NOPERM/)
  t.equal(await admin.hget('scripts:g', 'n'), '6', 'every other change landed')
})
