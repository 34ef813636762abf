import Fastify, { type FastifyInstance, type FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import multiCache, { routeCache, sessionCache, type MultiCacheStats, type ResponseCache, type RouteCacheConfig } from '../index.js'

describe('route response caching', () => {
  const app = Fastify()

  test('config.cache is typed on every route', () => {
    expect(app.get).type.toBeCallableWith('/p', { config: { cache: { level: 'app', ttl: '1m', query: ['page'], hook: 'onRequest' } } }, async () => 'x')
    expect(app.get).type.toBeCallableWith('/p', { config: { cache: { level: 'session', query: 'none', key: (request: FastifyRequest) => request.url } } }, async () => 'x')
    expect(app.get).type.not.toBeCallableWith('/p', { config: { cache: { level: 'global' } } }, async () => 'x')
    expect(app.get).type.not.toBeCallableWith('/p', { config: { cache: { level: 'app', query: 'some' } } }, async () => 'x')
    expect(app.get).type.not.toBeCallableWith('/p', { config: { cache: { level: 'app', hook: 'onSend' } } }, async () => 'x')
    expect(app.get).type.not.toBeCallableWith('/p', { config: { cache: { level: 'app', ttl: 'a while' } } }, async () => 'x')
    expect<RouteCacheConfig['query']>().type.toBe<'all' | 'none' | string[] | undefined>()
  })

  test('the plugin options, alone or through multiCache', () => {
    expect(app.register).type.toBeCallableWith(routeCache, { ttl: '30s', max: 500, maxSize: 8 * 1024 * 1024, maxVariants: 4, xCacheHeader: false })
    expect(app.register).type.toBeCallableWith(multiCache, { route: { ttl: 1000 } })
    expect(app.register).type.toBeCallableWith(sessionCache, { maxPagesPerSession: 5 })
    expect(app.register).type.not.toBeCallableWith(routeCache, { max: 'many' })
    expect(app.register).type.not.toBeCallableWith(routeCache, { ttl: 'forever' })
  })

  test('invalidation, the session pages and the counters', () => {
    expect<FastifyInstance['routeCache']>().type.toBe<ResponseCache>()
    expect(app.routeCache.invalidate('/products/:id')).type.toBe<Promise<number>>()
    expect(app.routeCache.invalidate).type.toBeCallableWith('/products/:id', '/products/1?page=2')
    expect(app.routeCache.invalidate).type.not.toBeCallableWith(42)
    expect(({} as FastifyRequest).sessionCache.dropPages()).type.toBe<Promise<void>>()
    expect<MultiCacheStats['route']>().type.toBe<MultiCacheStats['app']>()
  })
})
