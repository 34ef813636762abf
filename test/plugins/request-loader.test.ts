import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { test, type Test } from 'tap'
import { requestCache, type RequestCacheOptions } from '../../index.js'
import { fresh } from '../helpers/app.js'

// request.reqCache.loader over HTTP: the loads of one tick in one call of the batch function, each key once per
// request, nothing shared between requests.

interface Product { id: number, brand: number }

/** An app whose routes use batch loaders of products and brands; `calls` records each call of each batch function. */
async function shop (t: Test, options: RequestCacheOptions = {}): Promise<{ app: FastifyInstance, calls: Array<[string, unknown[]]> }> {
  const app = fresh(t)
  await app.register(requestCache, options)
  const calls: Array<[string, unknown[]]> = []
  const products = async (ids: number[]): Promise<Array<Product | Error>> => {
    calls.push(['products', ids])
    await sleep(2)
    return ids.map((id) => id === 13 ? new Error(`product ${id} is unlucky`) : { id, brand: id % 3 })
  }
  const brands = async (ids: number[]): Promise<Map<number, string>> => {
    calls.push(['brands', ids])
    return new Map(ids.map((id) => [id, `brand ${id}`]))
  }
  app.get('/page', async (request) => {
    const ids = String((request.query as { ids: string }).ids).split(',').map(Number)
    const productLoader = request.reqCache.loader('products', products)
    const brandLoader = request.reqCache.loader('brands', brands)
    // Each product's brand after its product: the brands of every product still go in one call.
    return await Promise.all(ids.map(async (id) => {
      const product = await productLoader.load(id).catch((error: Error) => error.message)
      if (typeof product === 'string') return product
      return { ...product, brand: await brandLoader.load(product.brand) }
    }))
  })
  return { app, calls }
}

test('a page of products: one call per batch function however many loads, each key once, nothing shared between requests', async (t) => {
  const { app, calls } = await shop(t)
  const ids = Array.from({ length: 50 }, (_, i) => i + 1)
  const page = (await app.inject(`/page?ids=${[...ids, 1, 2].join(',')}`)).json()
  t.same(calls, [['products', ids], ['brands', [1, 2, 0]]], 'one call for the 50 products (1 and 2 asked twice), one for their 3 brands')
  t.same(page[0], { id: 1, brand: 'brand 1' })
  t.equal(page[12], 'product 13 is unlucky', 'an Error in place of a value fails its key alone')
  t.same(page[50], { id: 1, brand: 'brand 1' })
  calls.length = 0
  const [one, two] = await Promise.all([app.inject('/page?ids=1,2'), app.inject('/page?ids=2,3')])
  t.same(calls.filter(([name]) => name === 'products').map(([, keys]) => keys).sort(), [[1, 2], [2, 3]], 'each request its own loader: concurrent ones batch apart')
  t.same([one.json(), two.json()], [[{ id: 1, brand: 'brand 1' }, { id: 2, brand: 'brand 2' }], [{ id: 2, brand: 'brand 2' }, { id: 3, brand: 'brand 0' }]])
  // Hits: products 1 and 2 asked again, and a brand asked for each of the 49 products past the first of each brand.
  t.match(app.multiCache.stats().request, { misses: 50 + 3 + 2 + 2 + 2 + 2, hits: 2 + 48, loads: 50 + 3 + 2 + 2 + 2 + 2, loadErrors: 0 }, 'a key loaded counts once, as its miss did')
})

test('within a request: the same loader for a name, errors remembered, a failed call not, prime, clear, loadMany, maxBatchSize, cacheKey', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  app.get('/', async (request) => {
    const calls: unknown[][] = []
    let fail = false
    const batchFn = async (ids: number[]): Promise<Array<number | Error>> => {
      calls.push(ids)
      if (fail) throw new Error('database down')
      return ids.map((id) => id === 0 ? new Error('no zero') : id * 10)
    }
    const loader = request.reqCache.loader('numbers', batchFn)
    const same = request.reqCache.loader('numbers', async () => { throw new Error('never called: the first batchFn stays') }) as unknown === loader
    const many = await loader.loadMany([1, 0, 2, 1])
    const again = await loader.load(0).catch((error: Error) => error.message)
    const callsAfterError = calls.length
    fail = true
    const failed = await Promise.allSettled([loader.load(5), loader.load(6)])
    fail = false
    const retried = await loader.load(5)
    loader.prime(7, 700).prime(7, 0).prime(8, new Error('primed failure'))
    const primed = [await loader.load(7), await loader.load(8).catch((error: Error) => error.message)]
    loader.clear(7)
    const cleared = await loader.load(7)

    const sized = request.reqCache.loader('sized', async (ids: number[]) => { calls.push(['sized', ids.length]); return ids }, { maxBatchSize: 10 })
    await Promise.all(Array.from({ length: 25 }, async (_, i) => await sized.load(i)))

    interface Key { id: number, locale: string }
    const asked: Key[][] = []
    const byObject = request.reqCache.loader('objects', async (keys: Key[]) => { asked.push(keys); return new Map(keys.map((key) => [key, `${key.id}/${key.locale}`])) }, { cacheKey: (key) => `${key.id}:${key.locale}` })
    const objects = await Promise.all([byObject.load({ id: 1, locale: 'en' }), byObject.load({ id: 1, locale: 'en' }), byObject.load({ id: 1, locale: 'fr' })])

    request.reqCache.clear()
    const afterClear = request.reqCache.loader('numbers', batchFn) !== loader
    return {
      same,
      many: many.map((value) => value instanceof Error ? value.message : value),
      again,
      callsAfterError,
      failed: failed.map((result) => result.status === 'rejected' ? (result.reason as Error).message : result.value),
      retried,
      primed,
      cleared,
      calls,
      objects,
      asked: asked.map((keys) => keys.length),
      afterClear
    }
  })
  t.same((await app.inject('/')).json(), {
    same: true,
    many: [10, 'no zero', 20, 10],
    again: 'no zero',
    callsAfterError: 1,
    failed: ['database down', 'database down'],
    retried: 50,
    primed: [700, 'primed failure'],
    cleared: 70,
    calls: [[1, 0, 2], [5, 6], [5], [7], ['sized', 10], ['sized', 10], ['sized', 5]],
    objects: ['1/en', '1/en', '1/fr'],
    asked: [2],
    afterClear: true
  }, 'an error per key is remembered for the request (loaded once); a call that failed whole is not (5 is loaded again)')
})

test('hostile input: loadMany of 100,000 keys is refused, a key past maxKeyLength too, and what a loader remembers is bounded', async (t) => {
  const app = fresh(t)
  await app.register(requestCache, { maxEntries: 100, maxKeyLength: 20 })
  let called = 0
  app.post('/', async (request) => {
    const loader = request.reqCache.loader('items', async (keys: string[]) => { called++; return keys })
    const { keys } = request.body as { keys: string[] }
    if (keys.length > 1000) return await loader.loadMany(keys)
    const long = await loader.load('x'.repeat(21)).catch((error: Error & { code: string }) => error.code)
    await loader.loadMany(keys)
    return { long }
  })
  const huge = Array.from({ length: 100_000 }, (_, i) => String(i))
  const refused = await app.inject({ method: 'POST', url: '/', payload: { keys: huge } })
  t.match(refused.json(), { code: 'FST_MULTICACHE_TOO_MANY_KEYS', message: 'reqCache.loader("items").loadMany: 100000 keys in one call, more than maxKeysPerCall (1000): split the list, or raise maxKeysPerCall' })
  t.equal(called, 0)
  const bounded = await app.inject({ method: 'POST', url: '/', payload: { keys: huge.slice(0, 150) } })
  t.same(bounded.json(), { long: 'FST_MULTICACHE_INVALID_KEY' })
  t.equal(app.multiCache.stats().request?.evictions, 50, 'past maxEntries the earliest remembered key goes')
  await t.rejects(async () => {
    const bad = fresh(t)
    await bad.register(requestCache, { maxKeysPerCall: 1.5 })
    await bad.ready()
  }, { code: 'FST_MULTICACHE_INVALID_OPTION', message: /requestCache: option "maxKeysPerCall" must be a positive integer/ })
})

test('a loader made with invalid options is refused by name', async (t) => {
  const app = fresh(t)
  await app.register(requestCache)
  app.get('/', async (request) => {
    const attempts: Array<() => unknown> = [
      () => request.reqCache.loader('', async (keys: number[]) => keys),
      () => request.reqCache.loader('a', 'not a function' as never),
      () => request.reqCache.loader('b', async (keys: number[]) => keys, { maxBatchSize: 0 }),
      () => request.reqCache.loader('c', async (keys: number[]) => keys, { cacheKey: 'id' as never })
    ]
    return attempts.map((attempt) => { try { attempt(); return 'made' } catch (error) { return (error as Error).message } })
  })
  t.same((await app.inject('/')).json(), [
    'reqCache.loader: option "name" must be a non-empty string, got ""',
    'reqCache.loader("a"): option "batchFn" must be a function, got "not a function"',
    'reqCache.loader("b"): option "maxBatchSize" must be a positive integer, got 0',
    'reqCache.loader("c"): option "cacheKey" must be a function, got "id"'
  ])
})
