import type { FastifyInstance } from 'fastify'
import Keyv from 'keyv'
import { test, type Test } from 'tap'
import { appCache, type AppCacheOptions } from '../../index.js'
import { fresh } from '../helpers/app.js'
import { Gates } from '../helpers/gate.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'
import { setTimeout as sleep } from 'node:timers/promises'

// A load that started before an invalidation must never write its older value, and callers after the invalidation
// must not get it. Loads are held at a gate, so the order is the test's.

/** An app whose `/load/:key` loads `version` (read when the load starts) through getOrLoad; `?hold=` stops it first. */
async function app (t: Test, options: AppCacheOptions, gates: Gates, state: { version: number, calls: number }): Promise<FastifyInstance> {
  const server = fresh(t)
  await server.register(appCache, options)
  server.get('/load/:key', async (request) => {
    const { key } = request.params as { key: string }
    const hold = (request.query as { hold?: string }).hold
    return await server.appCache.getOrLoad(key, async () => {
      state.calls++
      const version = state.version
      if (hold !== undefined) await gates.get(hold).pass()
      return { version }
    })
  })
  server.post('/invalidate/:key', async (request) => { await server.appCache.invalidate((request.params as { key: string }).key); return 'ok' })
  server.post('/set/:key', async (request) => { await server.appCache.set((request.params as { key: string }).key, { version: state.version, set: true }); return 'ok' })
  server.post('/clear', async () => { await server.appCache.clear(); return 'ok' })
  await server.ready()
  return server
}

type Backing = (t: Test) => Promise<AppCacheOptions | undefined>

const BACKINGS: Array<[string, Backing]> = [
  ['memory', async () => ({})],
  ['redis with memory tiers', async (t) => await redisFor(t) === undefined ? undefined : { store: REDIS_URL, prefix: uniquePrefix(t) }],
  ['keyv', async () => ({ store: new Keyv() })]
]

for (const [name, backing] of BACKINGS) {
  for (const change of ['invalidate', 'set', 'clear'] as const) {
    test(`${name}: a load from before ${change}() answers its own callers and writes nothing; callers after it load anew`, async (t) => {
      const options = await backing(t)
      if (options === undefined) return
      const gates = new Gates()
      const state = { version: 1, calls: 0 }
      const server = await app(t, options, gates, state)
      const old = server.inject('/load/catalog?hold=old')
      await gates.get('old').reached
      state.version = 2
      await server.inject({ method: 'POST', url: change === 'clear' ? '/clear' : `/${change}/catalog` })
      const after = (await server.inject('/load/catalog')).json()
      t.same(after, change === 'set' ? { version: 2, set: true } : { version: 2 }, 'a caller after the change does not join the old load')
      gates.get('old').release()
      t.same((await old).json(), { version: 1 }, 'the old load answers the caller that started it')
      t.same(await server.appCache.get('catalog'), after, 'its older value was not written over the newer one')
    })
  }

  test(`${name}: refresh() fences a load from before it`, async (t) => {
    const options = await backing(t)
    if (options === undefined) return
    const server = fresh(t)
    await server.register(appCache, options)
    const gates = new Gates()
    let version = 0
    let hold = false
    server.appCache.define('rates', async () => {
      const mine = ++version
      if (hold) await gates.get(`load${mine}`).pass()
      return mine
    })
    await server.ready()
    await server.appCache.invalidate('rates')
    hold = true
    const missing = server.appCache.get('rates')
    await gates.get('load2').reached
    hold = false
    t.equal(await server.appCache.refresh('rates'), 3, 'refresh does not join the load in flight')
    gates.get('load2').release()
    t.equal(await missing, 2)
    t.equal(await server.appCache.get('rates'), 3, 'the older load did not overwrite the refresh')
  })
}

test('two instances sharing Redis with the lock: an invalidation on one fences the load of the other', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const gates = new Gates()
  const state = { version: 1, calls: 0 }
  const a = await app(t, { store: REDIS_URL, prefix, lock: true }, gates, state)
  const b = await app(t, { store: REDIS_URL, prefix, lock: true }, gates, state)
  const old = a.inject('/load/catalog?hold=old')
  await gates.get('old').reached
  t.equal((await redis.keys('fmc-lock:' + prefix + 'catalog@*')).length, 1, 'A holds the lock of the key and its fence')
  state.version = 2
  await b.inject({ method: 'POST', url: '/invalidate/catalog' })
  gates.get('old').release()
  t.same((await old).json(), { version: 1 })
  t.equal(await redis.exists(prefix + 'catalog'), 0, 'the value A loaded before the invalidation never reached Redis')
  t.same((await b.inject('/load/catalog')).json(), { version: 2 }, 'B loads the new value')
  t.same((await a.inject('/load/catalog')).json(), { version: 2 }, 'and A serves it')
  t.same(JSON.parse(await redis.get(prefix + 'catalog') as string), { v: { version: 2 } })
})

test('two instances with memory tiers: a caller after a change on the other instance does not join an older load', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const gates = new Gates()
  const state = { version: 1, calls: 0 }
  const a = await app(t, { store: REDIS_URL, prefix }, gates, state)
  const b = await app(t, { store: REDIS_URL, prefix }, gates, state)
  for (const change of ['invalidate', 'set', 'clear'] as const) {
    const hold = `old-${change}`
    const old = a.inject(`/load/k-${change}?hold=${hold}`)
    await gates.get(hold).reached
    state.version++
    await b.inject({ method: 'POST', url: change === 'clear' ? '/clear' : `/${change}/k-${change}` })
    // B's bus message reaches A within a few ms (measured in the tiers tests); nothing of A's can be awaited for it.
    await sleep(50)
    const after = (await a.inject(`/load/k-${change}`)).json() as { version: number }
    t.equal(after.version, state.version, `${change}: a new load (or B's value) answers`)
    gates.get(hold).release()
    t.equal(((await old).json() as { version: number }).version, state.version - 1, 'the older load answers its own caller')
  }
})

test('a lock holder whose loader fails or gives nothing frees the waiters at once; close() ends every wait', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const gates = new Gates()
  // A wait far longer than the test's own timeout: a waiter that waited it out would fail the test.
  const options: AppCacheOptions = { store: REDIS_URL, prefix, lock: { wait: '10m' } }
  const servers = await Promise.all([0, 1].map(async () => {
    const server = fresh(t)
    await server.register(appCache, options)
    await server.ready()
    return server
  }))
  const [a, b] = servers as [FastifyInstance, FastifyInstance]
  const order: string[] = []
  for (const outcome of ['fails', 'gives nothing'] as const) {
    const key = outcome === 'fails' ? 'failing' : 'empty'
    const holding = a.appCache.getOrLoad(key, async () => {
      await gates.get(key).pass()
      order.push(`A ${outcome}`)
      if (outcome === 'fails') throw new Error('db down')
      return undefined
    })
    await gates.get(key).reached
    const waiting = b.appCache.getOrLoad(key, () => { order.push('B loads'); return 'from B' })
    gates.get(key).release()
    await t.rejects(outcome === 'fails' ? holding : Promise.reject(new Error(String(await holding))), outcome === 'fails' ? /db down/ : /undefined/)
    t.equal(await waiting, 'from B', `the waiter loads as soon as the holder ${outcome}`)
  }
  t.same(order, ['A fails', 'B loads', 'A gives nothing', 'B loads'])

  const held = a.appCache.getOrLoad('closing', async () => { await gates.get('closing').pass(); return 'A' })
  await gates.get('closing').reached
  let loadedAfterClose = false
  const waiter = b.appCache.getOrLoad('closing', () => { loadedAfterClose = true; return 'B' })
  // B reads the key, its fence and the lock before it waits; nothing of B's tells when it is waiting, so give it time.
  await sleep(200)
  // Watched before close(): the wait may end while close() is still running.
  const ended = t.rejects(waiter, { code: 'FST_MULTICACHE_STORE', message: /closing/ }, 'the wait ends with the app')
  await b.close()
  await ended
  t.equal(loadedAfterClose, false, 'and no loader runs after close()')
  gates.get('closing').release()
  t.equal(await held, 'A')
})

test('a refresh fenced by a later change returns only once the later load has landed', async (t) => {
  const server = fresh(t)
  await server.register(appCache)
  const gates = new Gates()
  let version = 0
  server.appCache.define('rates', async () => {
    const mine = ++version
    if (mine > 1) await gates.get(`load${mine}`).pass()
    return mine
  })
  await server.ready()
  const first = server.appCache.refresh('rates')
  await gates.get('load2').reached
  const second = server.appCache.refresh('rates')
  await gates.get('load3').reached
  gates.get('load2').release()
  let firstDone = false
  const settled = first.then((value) => { firstDone = true; return value })
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(firstDone, false, 'the first refresh, fenced, waits for the second load')
  t.equal(await server.appCache.get('rates'), 1, 'meanwhile the last good value is served')
  gates.get('load3').release()
  t.equal(await settled, 3, 'and returns its value')
  t.equal(await second, 3)
  t.equal(await server.appCache.get('rates'), 3)
})
