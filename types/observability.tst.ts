import { Registry as PlatformaticRegistry } from '@platformatic/prom-client'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import { Registry } from 'prom-client'
import { describe, expect, test } from 'tstyche'
import multiCache, { appCache, requestCache, routeCache, sessionCache, type AdviceFinding, type AdviceKind, type AdvisorOptions, type DefinedKey, type MetricsOptions } from '../index.js'
import cacheAdmin, { type AdminLevelStats, type AdminOptions } from '../plugins/admin.js'

describe('metrics', () => {
  const app = Fastify()

  test('take a registry of prom-client 15 or of @platformatic/prom-client, on multiCache and on every level', () => {
    expect(app.register).type.toBeCallableWith(multiCache, { metrics: { registry: new Registry() } })
    expect(app.register).type.toBeCallableWith(multiCache, { metrics: { registry: new PlatformaticRegistry(), prefix: 'shop_cache_' } })
    expect(app.register).type.toBeCallableWith(requestCache, { metrics: { registry: new Registry() } })
    expect(app.register).type.toBeCallableWith(sessionCache, { metrics: { registry: new Registry() } })
    expect(app.register).type.toBeCallableWith(appCache, { metrics: { registry: new Registry() } })
    expect(app.register).type.toBeCallableWith(routeCache, { metrics: { registry: new Registry() } })
  })

  test('refuse what is not a registry, and a prefix that is not a string', () => {
    expect(app.register).type.not.toBeCallableWith(multiCache, { metrics: { registry: {} } })
    expect(app.register).type.not.toBeCallableWith(multiCache, { metrics: {} })
    expect(app.register).type.not.toBeCallableWith(appCache, { metrics: { registry: new Registry(), prefix: 1 } })
    expect<MetricsOptions['prefix']>().type.toBe<string | undefined>()
  })

  test('logKeys is a boolean', () => {
    expect(app.register).type.toBeCallableWith(multiCache, { logKeys: false })
    expect(app.register).type.not.toBeCallableWith(appCache, { logKeys: 'no' })
  })
})

describe('admin', () => {
  const app = Fastify()

  test('needs authorize, sync or async, given the request and the reply', () => {
    expect(app.register).type.toBeCallableWith(cacheAdmin, { authorize: () => true })
    expect(app.register).type.toBeCallableWith(cacheAdmin, { authorize: async (request: FastifyRequest, reply: FastifyReply) => { reply.header('x', 'y'); return request.ip === '127.0.0.1' }, prefix: '/ops/cache' })
    expect(app.register).type.not.toBeCallableWith(cacheAdmin, {})
    expect(app.register).type.not.toBeCallableWith(cacheAdmin, { authorize: () => 'yes' })
    expect(app.register).type.not.toBeCallableWith(cacheAdmin, { authorize: () => true, prefix: 42 })
    expect(app.register).type.toBeCallableWith(cacheAdmin, { authorize: () => true, logLevel: 'info' })
    expect(app.register).type.not.toBeCallableWith(cacheAdmin, { authorize: () => true, logLevel: 'quiet' })
    expect<AdminOptions['authorize']>().type.toBeAssignableTo<(...args: never[]) => boolean | Promise<boolean>>()
  })

  test('what the admin API reads is typed', () => {
    expect(app.appCache.defined()).type.toBe<DefinedKey[]>()
    expect<DefinedKey['lastRefresh']>().type.toBe<number | null>()
    expect<AdminLevelStats['hitRatio']>().type.toBe<number | null>()
  })
})

describe('advisor', () => {
  const app = Fastify()

  test('false, true or { sampleRate }', () => {
    expect(app.register).type.toBeCallableWith(multiCache, { advisor: true })
    expect(app.register).type.toBeCallableWith(multiCache, { advisor: false })
    expect(app.register).type.toBeCallableWith(multiCache, { advisor: { sampleRate: 0.1 } })
    expect(app.register).type.not.toBeCallableWith(multiCache, { advisor: 'on' })
    expect(app.register).type.not.toBeCallableWith(multiCache, { advisor: { sampleRate: '10%' } })
    expect(app.register).type.not.toBeCallableWith(multiCache, { advisor: { rate: 0.1 } })
  })

  test('fastify.multiCache.advice(): typed findings', () => {
    expect(app.multiCache.advice()).type.toBe<AdviceFinding[]>()
    expect<AdviceFinding['kind']>().type.toBe<AdviceKind>()
    expect<AdviceKind>().type.toBe<'no-reuse' | 'same-in-every-session' | 'volatile' | 'ttl-too-short' | 'too-small' | 'never-read'>()
    expect<AdviceFinding['level']>().type.toBe<'request' | 'session' | 'app' | 'route'>()
    expect<AdviceFinding['evidence']>().type.toBe<Record<string, number>>()
    expect<AdvisorOptions['sampleRate']>().type.toBe<number | undefined>()
  })
})
