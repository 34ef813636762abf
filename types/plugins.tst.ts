import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { Cluster, Redis } from 'ioredis'
import Keyv from 'keyv'
import { pack, unpack } from 'msgpackr'
import { describe, expect, test } from 'tstyche'
import multiCache, {
  appCache, requestCache, sessionCache,
  type AppCache, type CacheLookup, type Duration, type InvalidateOptions, type MultiCacheStats, type RequestCache, type SessionCache, type Store
} from '../index.js'

describe('decorators', () => {
  test('are typed on the request and the instance without casts', () => {
    expect<FastifyRequest['reqCache']>().type.toBe<RequestCache>()
    expect<FastifyRequest['sessionCache']>().type.toBe<SessionCache>()
    expect<FastifyRequest['cache']>().type.toBe<CacheLookup>()
    expect<FastifyInstance['appCache']>().type.toBe<AppCache>()
    expect<ReturnType<FastifyInstance['multiCache']['stats']>>().type.toBe<MultiCacheStats>()
  })

  test('values come back with the type asked for, unknown by default', () => {
    const request = {} as FastifyRequest
    expect(request.reqCache.get('k')).type.toBe<unknown>()
    expect(request.reqCache.get<number>('k')).type.toBe<number | undefined>()
    expect(request.sessionCache.get<string>('k')).type.toBe<Promise<string | undefined>>()
    expect(request.reqCache.getOrLoad('k', async () => 42)).type.toBe<Promise<number>>()
    expect(request.cache.getOrLoad('k', () => 'v', { level: 'app' })).type.toBe<Promise<string>>()
    expect(request.sessionCache.id).type.toBe<string | undefined>()
  })

  test('wrong usage does not compile', () => {
    const request = {} as FastifyRequest
    expect(request.reqCache.get).type.not.toBeCallableWith(42)
    expect(request.cache.getOrLoad).type.not.toBeCallableWith('k', () => 1, { level: 'global' })
    expect(request.cache.getOrLoad).type.not.toBeCallableWith('k', () => 1)
    expect(request.sessionCache.set).type.not.toBeCallableWith('k', 1, { ttl: '5 parsecs' })
    expect(request.sessionCache.set).type.toBeCallableWith('k', 1, { ttl: '5m' })
  })

  test('undefined means absent: set(key, undefined) does not compile at any level, null and unknown do', () => {
    const request = {} as FastifyRequest
    const app = {} as FastifyInstance
    expect(request.reqCache.set).type.not.toBeCallableWith('k', undefined)
    expect(request.sessionCache.set).type.not.toBeCallableWith('k', undefined)
    expect(app.appCache.set).type.not.toBeCallableWith('k', undefined)
    expect(app.appCache.set).type.toBeCallableWith('k', null)
    expect(request.sessionCache.set).type.toBeCallableWith('k', request.body)
  })

  test('delete resolves to a boolean at every level', () => {
    const request = {} as FastifyRequest
    const app = {} as FastifyInstance
    expect(request.reqCache.delete('k')).type.toBe<boolean>()
    expect(request.sessionCache.delete('k')).type.toBe<Promise<boolean>>()
    expect(app.appCache.delete('k')).type.toBe<Promise<boolean>>()
  })
})

describe('plugin options', () => {
  const app = Fastify()

  test('each level takes its own options, or false in the orchestrator', () => {
    expect(app.register).type.toBeCallableWith(multiCache, { request: false, session: { secret: 's'.repeat(32), ttl: '30m' }, app: { max: 100 } })
    expect(app.register).type.toBeCallableWith(requestCache, { maxEntries: 10 })
    expect(app.register).type.toBeCallableWith(sessionCache, { cookieName: 'sid', maxSessions: 10 })
    expect(app.register).type.toBeCallableWith(appCache, { ttl: 1000 })
  })

  test('options of the wrong type do not compile', () => {
    expect(app.register).type.not.toBeCallableWith(appCache, { max: 'many' })
    expect(app.register).type.not.toBeCallableWith(sessionCache, { ttl: 'forever' })
    expect(app.register).type.not.toBeCallableWith(multiCache, { app: true })
  })

  test('a shared store: Redis in every form, any Keyv, a tier and a lock', () => {
    expect(app.register).type.toBeCallableWith(appCache, { store: new Redis(), l1: { max: 500, ttl: '5s' }, lock: { wait: '2s' } })
    expect(app.register).type.toBeCallableWith(appCache, { store: 'redis://127.0.0.1:6379', prefix: 'shop:app:', timeout: '50ms' })
    expect(app.register).type.toBeCallableWith(sessionCache, { store: 'rediss://cache.internal:6380', requireStore: true })
    expect(app.register).type.not.toBeCallableWith(appCache, { store: 'redis://127.0.0.1:6379', requireStore: 'yes' })
    expect(app.register).type.toBeCallableWith(sessionCache, { store: 'redis', redisNamespace: 'sessions', l1: false })
    expect(app.register).type.toBeCallableWith(appCache, { store: 'redis+cluster://10.0.0.1:6379,10.0.0.2:6379', lock: true })
    expect(app.register).type.toBeCallableWith(sessionCache, { store: ['redis://10.0.0.1:6379', 'redis://10.0.0.2:6379'], requireStore: true })
    expect(app.register).type.toBeCallableWith(appCache, { store: new Cluster([{ host: '10.0.0.1', port: 6379 }]) })
    expect(app.register).type.toBeCallableWith(sessionCache, { store: new Keyv(), serializer: { encode: pack, decode: (data: string | Buffer) => unpack(data as Buffer) } })
    expect(app.appCache.invalidate).type.toBeCallableWith(['a', 'b'])
  })

  test('wrong store settings do not compile', () => {
    expect(app.register).type.not.toBeCallableWith(appCache, { store: 'http://127.0.0.1' })
    expect(app.register).type.not.toBeCallableWith(appCache, { store: ['http://127.0.0.1:6379'] })
    expect(app.register).type.not.toBeCallableWith(appCache, { store: new Redis(), lock: 'yes' })
    expect(app.register).type.not.toBeCallableWith(appCache, { l1: { ttl: 'a while' } })
    expect(app.register).type.not.toBeCallableWith(sessionCache, { lock: true })
    expect(app.register).type.not.toBeCallableWith(appCache, { serializer: { encode: pack } })
    expect(app.appCache.invalidate).type.not.toBeCallableWith([1])
  })

  test('invalidate can wait for every instance: true, ms or a duration string', () => {
    expect(app.appCache.invalidate('a', { wait: true })).type.toBe<Promise<void>>()
    expect(app.appCache.invalidate).type.toBeCallableWith(['a', 'b'], { wait: '2s' })
    expect(app.appCache.invalidate).type.toBeCallableWith('a', { wait: 500 })
    expect(app.appCache.invalidate).type.toBeCallableWith('a', {})
    expect(app.appCache.invalidate).type.not.toBeCallableWith('a', { wait: 'a while' })
    expect(app.appCache.invalidate).type.not.toBeCallableWith('a', { wiat: true })
    expect<InvalidateOptions>().type.toBe<{ wait?: boolean | Duration }>()
  })

  test('a custom store must implement the contract', () => {
    const store: Store = { get: () => undefined, set: () => {}, delete: () => {}, clear: () => {} }
    expect(app.register).type.toBeCallableWith(appCache, { store })
    expect(app.register).type.not.toBeCallableWith(appCache, { store: { get: () => undefined } })
  })
})
