// Without declarations (this folder's program declares no keys): every level is its class, as before typed keys, and
// takes any string key with a type per call. ./declared/ and ./partly/ are programs of their own that declare keys.
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import type { AppCache, AppCacheKeys, CacheLookup, DeclaringLevel, RequestCache, RequestCacheKeys, SessionCache, SessionCacheKeys, SilentLevel } from '../index.js'
import type { CacheLookup as LookupClass } from '../lib/lookup.js'
import type { AppCache as AppClass } from '../lib/scopes/application.js'
import type { RequestCache as RequestClass } from '../lib/scopes/request.js'
import type { SessionCache as SessionClass } from '../lib/scopes/session.js'

interface Product { id: number, name: string }
const app = {} as FastifyInstance
const request = {} as FastifyRequest

describe('no keys declared', () => {
  test('the interfaces are empty and every level is its class', () => {
    expect<keyof AppCacheKeys>().type.toBe<never>()
    expect<keyof SessionCacheKeys>().type.toBe<never>()
    expect<keyof RequestCacheKeys>().type.toBe<never>()
    expect<DeclaringLevel>().type.toBe<never>()
    expect<SilentLevel>().type.toBe<'request' | 'session' | 'app'>()
    expect<AppCache>().type.toBe<AppClass>()
    expect<SessionCache>().type.toBe<SessionClass>()
    expect<RequestCache>().type.toBe<RequestClass>()
    expect<CacheLookup>().type.toBe<LookupClass>()
  })

  test('appCache: any string key, the type given per call or inferred from the loader', () => {
    const key = 'any' as string
    expect(app.appCache.get(key)).type.toBe<Promise<unknown>>()
    expect(app.appCache.get<Product>('p')).type.toBe<Promise<Product | undefined>>()
    expect(app.appCache.has(key)).type.toBe<Promise<boolean>>()
    expect(app.appCache.set('p', { id: 1, name: 'cup' }, { ttl: '1m' })).type.toBe<Promise<void>>()
    expect(app.appCache.set<Product>).type.not.toBeCallableWith('p', 'cup')
    expect(app.appCache.delete(key)).type.toBe<Promise<boolean>>()
    expect(app.appCache.invalidate([key, 'other'])).type.toBe<Promise<void>>()
    expect(app.appCache.getOrLoad('p', async () => 1)).type.toBe<Promise<number>>()
    expect(app.appCache.getMany<Product>(['a', key])).type.toBe<Promise<Array<Product | undefined>>>()
    expect(app.appCache.getOrLoadMany(['a'], async (keys) => keys.map((id) => ({ id: id.length, name: id })))).type.toBe<Promise<Product[]>>()
    expect(app.appCache.define('catalog', async () => [1], { refreshInterval: '1m' })).type.toBe<void>()
    expect(app.appCache.refresh('catalog')).type.toBe<Promise<unknown>>()
    expect(app.appCache.refresh<number[]>('catalog')).type.toBe<Promise<number[]>>()
  })

  test('sessionCache and reqCache: any string key, the type given per call', () => {
    expect(request.sessionCache.get<number>('userId')).type.toBe<Promise<number | undefined>>()
    expect(request.sessionCache.set('anything', [1, 2])).type.toBe<Promise<void>>()
    expect(request.sessionCache.getOrLoad('x', () => 'y', { ttl: '1m' })).type.toBe<Promise<string>>()
    expect(request.sessionCache.has('x')).type.toBe<Promise<boolean>>()
    expect(request.sessionCache.delete('x')).type.toBe<Promise<boolean>>()
    expect(request.reqCache.get<Product>('p')).type.toBe<Product | undefined>()
    expect(request.reqCache.set('p', 1)).type.toBe<RequestClass>()
    expect(request.reqCache.getOrLoad('p', () => 1)).type.toBe<Promise<number>>()
    expect(request.reqCache.has('p')).type.toBe<boolean>()
    expect(request.reqCache.delete('p')).type.toBe<boolean>()
    expect(request.reqCache.memo<Product>('p')).type.toBe<Product | undefined>()
    expect(request.reqCache.memoize('p', 1)).type.toBe<RequestClass>()
  })

  test('request.cache: any string key, typed per call or by the loader', () => {
    expect(request.cache.get<Product>('p')).type.toBe<Promise<Product | undefined>>()
    expect(request.cache.getOrLoad('p', async () => 1, { level: 'session' })).type.toBe<Promise<number>>()
    expect(request.cache.getOrLoadMany(['a', 'b'], async (keys) => keys, { level: 'app' })).type.toBe<Promise<string[]>>()
  })
})
