import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { requestCache } from '../../index.js'
import { fresh } from '../helpers/app.js'

test('get, set, has, delete, clear and size within one request', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  app.get('/', async (request) => {
    const c = request.reqCache
    const steps: unknown[] = [c.get('a'), c.has('a'), c.size]
    c.set('a', 1).set('b', { x: 2 }).set('__proto__', 'p').set('constructor', 'c')
    steps.push(c.get('a'), c.get('b'), c.get('__proto__'), c.get('constructor'), c.has('a'), c.size)
    steps.push(c.delete('a'), c.delete('a'), c.has('a'), c.size)
    c.clear()
    steps.push(c.size, c.get('b'))
    return steps
  })
  const res = await app.inject('/')
  t.same(res.json(), [null, false, 0, 1, { x: 2 }, 'p', 'c', true, 4, true, false, false, 3, 0, null])
  t.same(app.multiCache.stats().request, { hits: 4, misses: 2, loads: 0, loadErrors: 0, evictions: 0, storeErrors: 0, oversized: 0, staleServed: 0, graceServed: 0, backgroundLoads: 0, tagInvalidations: 0, tagsUnknown: 0, size: 0 })
})

test('getOrLoad shares one loader call between concurrent calls of one request', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  let calls = 0
  app.get('/', async (request) => {
    const load = async (): Promise<{ id: number }> => { calls++; await sleep(10); return { id: 7 } }
    const [a, b, c] = await Promise.all([1, 2, 3].map(async () => await request.reqCache.getOrLoad('user', load)))
    const later = await request.reqCache.getOrLoad('user', load)
    return { same: a === b && b === c && c === later, value: a }
  })
  t.same((await app.inject('/')).json(), { same: true, value: { id: 7 } })
  t.equal(calls, 1)
  await app.inject('/')
  t.equal(calls, 2, 'the next request loads again: nothing outlives a request')
  const stats = app.multiCache.stats().request
  t.equal(stats?.loads, 2)
})

test('a loader that fails caches nothing and every waiter gets the error', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  app.get('/', async (request) => {
    let calls = 0
    const failing = async (): Promise<number> => { calls++; await sleep(5); throw new Error('db down') }
    const results = await Promise.allSettled([1, 2].map(async () => await request.reqCache.getOrLoad('k', failing)))
    const sync = await request.reqCache.getOrLoad('s', () => { throw new Error('sync') }).catch((error: Error) => error.message)
    const undef = await request.reqCache.getOrLoad('u', () => undefined)
    return {
      errors: results.map((r) => r.status === 'rejected' ? (r.reason as Error).message : 'ok'),
      calls,
      cached: request.reqCache.has('k'),
      sync,
      undefCached: request.reqCache.has('u'),
      undef: undef === undefined,
      retried: await request.reqCache.getOrLoad('k', () => 'fine')
    }
  })
  t.same((await app.inject('/')).json(), { errors: ['db down', 'db down'], calls: 1, cached: false, sync: 'sync', undefCached: false, undef: true, retried: 'fine' })
  t.equal(app.multiCache.stats().request?.loadErrors, 2)
})

test('maxEntries drops the oldest entry and counts it', async (t) => {
  const app = fresh(t)
  await app.register(requestCache, { maxEntries: 2 })
  app.get('/', async (request) => {
    const c = request.reqCache
    c.set('a', 1).set('b', 2).set('a', 3).set('c', 4)
    return { a: c.get('a'), b: c.has('b'), c: c.get('c'), size: c.size }
  })
  t.same((await app.inject('/')).json(), { a: 3, b: false, c: 4, size: 2 })
  t.equal(app.multiCache.stats().request?.evictions, 1)
})

test('nothing is visible to another request, however requests interleave', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  app.get('/:id', async (request) => {
    const { id } = request.params as { id: string }
    const seenBefore = request.reqCache.get('mine')
    request.reqCache.set('mine', id)
    await sleep(Math.random() * 10)
    const loaded = await request.reqCache.getOrLoad('loaded', async () => { await sleep(Math.random() * 5); return id })
    return { seenBefore: seenBefore ?? null, mine: request.reqCache.get('mine'), loaded }
  })
  const ids = Array.from({ length: 200 }, (_, i) => String(i))
  const responses = await Promise.all(ids.map(async (id) => (await app.inject(`/${id}`)).json()))
  responses.forEach((body, i) => { t.same(body, { seenBefore: null, mine: ids[i], loaded: ids[i] }) })
  t.equal(app.multiCache.stats().request?.size, 0, 'every entry was dropped once its response was sent')
})

test('a request that never touches its cache allocates none', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  let slotValues: unknown[] = []
  app.get('/', async (request) => {
    slotValues = Object.getOwnPropertySymbols(request).map((s) => (request as unknown as Record<symbol, unknown>)[s])
    return 'ok'
  })
  await app.inject('/')
  t.ok(slotValues.includes(null), 'the slot is part of the request shape')
  t.notOk(slotValues.some((v) => (v as object | null)?.constructor?.name === 'RequestCache'), 'and stays empty')
})

test('keys must be non-empty strings and values cannot be undefined', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  app.get('/', async (request) => {
    const errors: string[] = []
    for (const key of ['', 42, null, undefined, {}, Symbol('s')]) {
      try { request.reqCache.get(key as string) } catch (error) { errors.push(`${String(error instanceof TypeError)}:${(error as { code: string }).code}`) }
    }
    try { request.reqCache.set('k', undefined as unknown) } catch (error) { errors.push((error as { code: string }).code) }
    return errors
  })
  const errors = (await app.inject('/')).json() as string[]
  t.same(errors.slice(0, 6), Array(6).fill('true:FST_MULTICACHE_INVALID_KEY'))
  t.equal(errors[6], 'FST_MULTICACHE_INVALID_VALUE')
})

test('invalid options fail registration and name the option', async (t) => {
  for (const [options, pattern] of [
    [{ maxEntries: 0 }, /requestCache: option "maxEntries" must be a positive integer, got 0/],
    [{ maxEntries: '10' }, /option "maxEntries"/],
    [{ maxEntry: 10 }, /option "maxEntry" is not an option/],
    ['big', /option "options" must be an object/]
  ] as const) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(requestCache, options as never).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message: pattern })
  }
})

test('registering a level twice is refused clearly', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  await t.rejects(async () => { await app.register(requestCache).ready() }, {
    code: 'FST_MULTICACHE_ALREADY_REGISTERED', message: /^requestCache is already registered on this instance: register each level once/
  })
})
