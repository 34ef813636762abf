// Only the application level declares keys here (a program of its own: see tsconfig.json). The other levels stay as
// they were, and request.cache types a load by the level it names: by its keys at the application level, by the loader
// at the others.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import type { AppCache, AppCacheKeys, CacheLookup, DeclaringLevel, PartlyTypedCacheLookup, RequestCache, SessionCache, SilentLevel, TypedAppCache } from 'fastify-multi-cache'
import type { RequestCache as RequestClass } from '../../lib/scopes/request.js'
import type { SessionCache as SessionClass } from '../../lib/scopes/session.js'

interface Product { id: number, name: string, kind: 'tool' | 'toy' }

declare module 'fastify-multi-cache' {
  interface AppCacheKeys {
    catalog: Product[]
    [key: `product:${number}`]: Product
  }
}

const app = {} as FastifyInstance
const request = {} as FastifyRequest

describe('only appCache declares keys', () => {
  test('appCache is typed, the other levels are their classes, the lookup partly typed', () => {
    expect<DeclaringLevel>().type.toBe<'app'>()
    expect<SilentLevel>().type.toBe<'request' | 'session'>()
    expect<AppCache>().type.toBe<TypedAppCache<AppCacheKeys>>()
    expect<SessionCache>().type.toBe<SessionClass>()
    expect<RequestCache>().type.toBe<RequestClass>()
    expect<CacheLookup>().type.toBe<PartlyTypedCacheLookup>()
    expect(app.appCache.get('catalog')).type.toBe<Promise<Product[] | undefined>>()
    expect(request.sessionCache.get<number>('anything')).type.toBe<Promise<number | undefined>>()
  })

  test('request.cache.get takes the declared keys', () => {
    expect(request.cache.get('product:2')).type.toBe<Promise<Product | undefined>>()
    expect(request.cache.get).type.not.toBeCallableWith('userId')
  })

  test('request.cache.getOrLoad: typed by the keys of the level named, by the loader where it declares none', () => {
    expect(request.cache.getOrLoad('catalog', async () => [{ id: 1, name: 'cup', kind: 'toy' }], { level: 'app' })).type.toBe<Promise<Product[]>>()
    expect(request.cache.getOrLoad('profile', async () => ({ name: 'ann' }), { level: 'request' })).type.toBe<Promise<{ name: string }>>()
    expect(request.cache.getOrLoad('cart', () => [1], { level: 'session', ttl: '30m' })).type.toBe<Promise<number[]>>()
    expect(request.cache.getOrLoad('catalog', async () => 'rows', { level: 'app' })).type.toRaiseError('ValueFor<"catalog", Product[]>')
    expect(request.cache.getOrLoad).type.not.toBeCallableWith('catalgo', async () => [], { level: 'app' })
  })

  test('request.cache.getOrLoadMany likewise', () => {
    expect(request.cache.getOrLoadMany(['product:1'], async () => [{ id: 1, name: 'cup', kind: 'toy' as const }], { level: 'app' })).type.toBe<Promise<[Product]>>()
    expect(request.cache.getOrLoadMany(['a', 'b'], async (keys) => keys.map((key) => key.length), { level: 'session' })).type.toBe<Promise<number[]>>()
    expect(request.cache.getOrLoadMany).type.not.toBeCallableWith(['product:1'], async () => ['cup'], { level: 'app' })
  })
})
