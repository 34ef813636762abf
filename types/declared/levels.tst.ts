// With declared keys (./keys.ts): each level's methods take only its keys and give each its type. This folder is a
// program of its own (its tsconfig.json), so the declarations reach no other test; ../typed-keys.tst.ts checks that
// without them nothing changes.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import type { AppCache, BatchLoader, CacheLookup, RequestCache, SessionCache, TypedAppCache, TypedCacheLookup, TypedRequestCache, TypedSessionCache } from 'fastify-multi-cache'
import type { AppCacheKeys, RequestCacheKeys, SessionCacheKeys } from 'fastify-multi-cache'
import type { CartLine, Product, User } from './keys.js'

const app = {} as FastifyInstance
const request = {} as FastifyRequest
const product: Product = { id: 1, name: 'kettle', kind: 'tool' }
const id = 7 as number

describe('the decorators', () => {
  test('are the typed views of the levels once their keys are declared', () => {
    expect<AppCache>().type.toBe<TypedAppCache<AppCacheKeys>>()
    expect<SessionCache>().type.toBe<TypedSessionCache<SessionCacheKeys>>()
    expect<RequestCache>().type.toBe<TypedRequestCache<RequestCacheKeys>>()
    expect<CacheLookup>().type.toBe<TypedCacheLookup>()
    expect<FastifyInstance['appCache']>().type.toBe<AppCache>()
    expect<FastifyRequest['sessionCache']>().type.toBe<SessionCache>()
    expect<FastifyRequest['reqCache']>().type.toBe<RequestCache>()
    expect<FastifyRequest['cache']>().type.toBe<CacheLookup>()
  })
})

describe('appCache', () => {
  test('get: a declared key gives its type, a key of a template-literal pattern too', () => {
    expect(app.appCache.get('catalog')).type.toBe<Promise<Product[] | undefined>>()
    expect(app.appCache.get('featured')).type.toBe<Promise<Product | null | undefined>>()
    expect(app.appCache.get('product:7')).type.toBe<Promise<Product | undefined>>()
    expect(app.appCache.get(`product:${id}`)).type.toBe<Promise<Product | undefined>>()
  })

  test('an undeclared key does not compile: a typo is caught', () => {
    expect(app.appCache.get('catalgo')).type.toRaiseError(/Argument of type '"catalgo"' is not assignable to parameter of type '[^']*"catalog"[^']*'/)
    expect(app.appCache.get).type.not.toBeCallableWith('product:seven')
    expect(app.appCache.get).type.not.toBeCallableWith('k' as string)
    expect(app.appCache.has).type.not.toBeCallableWith('catalgo')
    expect(app.appCache.delete).type.not.toBeCallableWith('catalgo')
    expect(app.appCache.invalidate).type.not.toBeCallableWith(['catalog', 'catalgo'])
    expect(app.appCache.refresh).type.not.toBeCallableWith('catalgo')
  })

  test('a per-call type is no longer taken: the declaration is the type', () => {
    expect(app.appCache.get<'catalog'>('catalog')).type.toBe<Promise<Product[] | undefined>>()
    expect(app.appCache.get<Product>('catalog')).type.toRaiseError()
  })

  test('has, delete and invalidate take declared keys', () => {
    expect(app.appCache.has('catalog')).type.toBe<Promise<boolean>>()
    expect(app.appCache.delete('product:1')).type.toBe<Promise<boolean>>()
    expect(app.appCache.invalidate(['catalog', `product:${id}`], { wait: true })).type.toBe<Promise<void>>()
    expect(app.appCache.invalidate('featured')).type.toBe<Promise<void>>()
  })

  test('set takes only the declared type, and a wrong one is named with its key', () => {
    expect(app.appCache.set('catalog', [product], { ttl: '1m', tags: ['catalog'] })).type.toBe<Promise<void>>()
    expect(app.appCache.set('featured', null)).type.toBe<Promise<void>>()
    expect(app.appCache.set('product:1', { id: 1, name: 'cup', kind: 'toy' })).type.toBe<Promise<void>>()
    expect(app.appCache.set('catalog', product)).type.toRaiseError('parameter of type \'ValueFor<"catalog", Product[]>\'')
    expect(app.appCache.set('product:1', 'cup')).type.toRaiseError('Argument of type \'string\' is not assignable to parameter of type \'ValueFor<"product:1", Product>\'')
    expect(app.appCache.set('featured', undefined)).type.toRaiseError('ValueFor<"featured", Product | null>')
    expect(app.appCache.set('featured', { id: 1, name: 'cup', kind: 'toy', price: 3 })).type.toRaiseError("'price' does not exist")
    expect(app.appCache.set('featured', { id: 1, name: 'cup', kind: 'food' })).type.toRaiseError('Argument of type \'{ id: number; name: string; kind: "food"; }\' is not assignable to parameter of type \'ValueFor<"featured", Product | null>\'')
    expect(app.appCache.set).type.not.toBeCallableWith('catalog', [product], { ttl: 'a while' })
  })

  test('getOrLoad and define take a loader of the declared type; its literals keep their types', () => {
    expect(app.appCache.getOrLoad('catalog', async () => [product], { ttl: '5m', softTimeout: 50 })).type.toBe<Promise<Product[]>>()
    expect(app.appCache.getOrLoad('featured', () => null)).type.toBe<Promise<Product | null>>()
    expect(app.appCache.getOrLoad(`product:${id}`, async () => ({ id, name: 'cup', kind: 'toy' }))).type.toBe<Promise<Product>>()
    expect(app.appCache.getOrLoad('catalog', async () => 'rows')).type.toRaiseError('Type \'string\' is not assignable to type \'ValueFor<"catalog", Product[]>\'')
    expect(app.appCache.getOrLoad('catalog', async () => { return 'rows' })).type.toRaiseError('ValueFor<"catalog", Product[]>')
    expect(app.appCache.getOrLoad('featured', async () => undefined)).type.toRaiseError('ValueFor<"featured", Product | null>')
    expect(app.appCache.define('catalog', async () => [product], { refreshInterval: '1m', ttl: 0 })).type.toBe<void>()
    expect(app.appCache.define('catalog', async () => product)).type.toRaiseError('Type \'Product\' is not assignable to type \'ValueFor<"catalog", Product[]>\'')
    expect(app.appCache.define).type.not.toBeCallableWith('catalgo', async () => [product])
  })

  test('refresh gives the declared type', () => {
    expect(app.appCache.refresh('catalog')).type.toBe<Promise<Product[]>>()
  })

  test('getMany maps each key to its type', () => {
    expect(app.appCache.getMany(['catalog', 'product:1', 'featured'])).type.toBe<Promise<[Product[] | undefined, Product | undefined, Product | null | undefined]>>()
    const keys: Array<`product:${number}`> = ['product:1', 'product:2']
    expect(app.appCache.getMany(keys)).type.toBe<Promise<Array<Product | undefined>>>()
    expect(app.appCache.getMany(['catalog', 'catalgo'])).type.toRaiseError('"catalgo"')
  })

  test('getOrLoadMany: the loader answers values of the keys\' types; a Map or an object may leave a key out', () => {
    const rows = async (keys: Array<`product:${number}`>): Promise<Product[]> => keys.map((key) => ({ id: Number(key.slice(8)), name: key, kind: 'toy' }))
    expect(app.appCache.getOrLoadMany(['product:1', 'product:2'], rows)).type.toBe<Promise<[Product, Product]>>()
    expect(app.appCache.getOrLoadMany(['product:1'], (keys) => new Map(keys.map((key) => [key, product])), { ttl: '1m' })).type.toBe<Promise<[Product | undefined]>>()
    expect(app.appCache.getOrLoadMany(['product:1', 'featured'], async (keys) => keys.map(() => 'cup'))).type.toRaiseError(/Type 'string' is not assignable to type 'Error \| ValueFor<("product:1" \| "featured"|"featured" \| "product:1"), Product \| null>'/)
    expect(app.appCache.getOrLoadMany(['product:1'], async (keys) => keys.map((key) => key))).type.toRaiseError('is not assignable to type \'BatchResultFor<"product:1", Product>')
    expect(app.appCache.getOrLoadMany).type.not.toBeCallableWith(['catalgo'], () => [product])
  })
})

describe('sessionCache', () => {
  test('get, has, delete take declared keys', () => {
    expect(request.sessionCache.get('cart')).type.toBe<Promise<CartLine[] | undefined>>()
    expect(request.sessionCache.get('userId')).type.toBe<Promise<number | undefined>>()
    expect(request.sessionCache.has('cart')).type.toBe<Promise<boolean>>()
    expect(request.sessionCache.delete('cart')).type.toBe<Promise<boolean>>()
    expect(request.sessionCache.get('catalog')).type.toRaiseError(/Argument of type '"catalog"' is not assignable to parameter of type '("cart" \| "userId"|"userId" \| "cart")'/)
    expect(request.sessionCache.has).type.not.toBeCallableWith('user')
    expect(request.sessionCache.delete).type.not.toBeCallableWith('user')
  })

  test('set and getOrLoad take the declared type', () => {
    expect(request.sessionCache.set('userId', 42, { ttl: '30m' })).type.toBe<Promise<void>>()
    expect(request.sessionCache.set('userId', '42')).type.toRaiseError('Argument of type \'string\' is not assignable to parameter of type \'ValueFor<"userId", number>\'')
    expect(request.sessionCache.getOrLoad('cart', () => [])).type.toBe<Promise<CartLine[]>>()
    expect(request.sessionCache.getOrLoad('cart', async () => [{ productId: 1, quantity: '2' }])).type.toRaiseError('Type \'string\' is not assignable to type \'number\'')
  })

  test('the rest of the session is as before', () => {
    expect(request.sessionCache.id).type.toBe<string | undefined>()
    expect(request.sessionCache.regenerate()).type.toBe<Promise<void>>()
    expect(request.sessionCache.clear()).type.toBe<Promise<void>>()
  })
})

describe('reqCache', () => {
  test('has no memo and memoize, request.cache\'s own, which would take any key', () => {
    expect(request.reqCache).type.not.toHaveProperty('memo')
    expect(request.reqCache).type.not.toHaveProperty('memoize')
    expect(request.reqCache).type.toHaveProperty('getOrLoad')
  })

  test('get is synchronous and typed; set chains', () => {
    expect(request.reqCache.get('user')).type.toBe<User | undefined>()
    expect(request.reqCache.has('user')).type.toBe<boolean>()
    expect(request.reqCache.delete('user')).type.toBe<boolean>()
    expect(request.reqCache.set('user', { id: 1, name: 'ann' }).get('userId')).type.toBe<string | undefined>()
    expect(request.reqCache.set('user', { id: 1 })).type.toRaiseError("Property 'name' is missing")
    expect(request.reqCache.set('userId', 1)).type.toRaiseError('ValueFor<"userId", string>')
    expect(request.reqCache.get('cart')).type.toRaiseError('Argument of type \'"cart"\' is not assignable to parameter of type')
  })

  test('getOrLoad takes a loader of the declared type', () => {
    expect(request.reqCache.getOrLoad('user', async () => ({ id: 1, name: 'ann' }))).type.toBe<Promise<User>>()
    expect(request.reqCache.getOrLoad('userId', () => 1)).type.toRaiseError('Type \'number\' is not assignable to type \'Loaded<"userId", string>\'')
  })

  test('the batch loader keeps its own keys and values: they are not entries of the level', () => {
    const loader = request.reqCache.loader('products', async (ids: number[]) => ids.map((id) => ({ id, name: String(id), kind: 'toy' as const })))
    expect(loader).type.toBe<BatchLoader<number, { id: number, name: string, kind: 'toy' }>>()
    expect(loader.load(1)).type.toBe<Promise<{ id: number, name: string, kind: 'toy' }>>()
  })
})

describe('request.cache', () => {
  test('get: a key declared at some level, of the type it has at every level that declares it', () => {
    expect(request.cache.get('catalog')).type.toBe<Promise<Product[] | undefined>>()
    expect(request.cache.get('cart')).type.toBe<Promise<CartLine[] | undefined>>()
    // userId is a string at the request level and a number in the session: a read may find either.
    expect(request.cache.get('userId')).type.toBe<Promise<string | number | undefined>>()
    expect(request.cache.get('nothing')).type.toRaiseError('"nothing"')
  })

  test('getOrLoad is typed by the level it names', () => {
    expect(request.cache.getOrLoad('userId', async () => 1, { level: 'session', ttl: '1h' })).type.toBe<Promise<number>>()
    expect(request.cache.getOrLoad('userId', () => 'ann', { level: 'request' })).type.toBe<Promise<string>>()
    expect(request.cache.getOrLoad('product:3', async () => ({ id: 3, name: 'cup', kind: 'toy' }), { level: 'app', tags: ['catalog'] })).type.toBe<Promise<Product>>()
    expect(request.cache.getOrLoad('userId', async () => 1, { level: 'request' })).type.toRaiseError('Type \'number\' is not assignable to type \'ValueFor<"userId", string>\'')
    expect(request.cache.getOrLoad('cart', async () => [], { level: 'app' })).type.toRaiseError('Argument of type \'"cart"\' is not assignable')
    expect(request.cache.getOrLoad).type.not.toBeCallableWith('catalog', async () => [product])
    expect(request.cache.getOrLoad).type.not.toBeCallableWith('catalog', async () => [product], { level: 'global' })
  })

  test('a level known only as a union takes the keys every one of them declares', () => {
    const level = 'request' as 'request' | 'session'
    // userId is a string at the request level and a number in the session: the value found may be either. The loader
    // is checked against either too (not both), so that a literal it answers keeps its type: a known limit.
    expect(request.cache.getOrLoad('userId', () => 'ann', { level })).type.toBe<Promise<string | number>>()
    expect(request.cache.getOrLoad).type.not.toBeCallableWith('user', () => ({ id: 1, name: 'ann' }), { level })
    expect(request.cache.getOrLoad).type.not.toBeCallableWith('cart', () => [], { level })
  })

  test('getOrLoadMany is typed by the level it names', () => {
    expect(request.cache.getOrLoadMany(['product:1', 'product:2'], async () => [product, product], { level: 'app' })).type.toBe<Promise<[Product, Product]>>()
    expect(request.cache.getOrLoadMany(['userId'], () => ({ userId: 1 }), { level: 'session' })).type.toBe<Promise<[number | undefined]>>()
    expect(request.cache.getOrLoadMany(['product:1'], async () => ['cup'], { level: 'app' })).type.toRaiseError('ValueFor<"product:1", Product>')
    expect(request.cache.getOrLoadMany).type.not.toBeCallableWith(['catalgo'], () => [[product]], { level: 'app' })
  })
})
