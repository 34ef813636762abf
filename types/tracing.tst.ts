import { tracingChannel } from 'node:diagnostics_channel'
import { InstrumentationBase } from '@opentelemetry/instrumentation'
import { describe, expect, test } from 'tstyche'
import {
  CACHE_OPERATION_CHANNEL, subscribeCacheOperations,
  type CacheDropReason, type CacheEventLevel, type CacheOperationContext, type CacheOperationListener, type CacheOperationName, type CacheTier
} from '../index.js'
import { MultiCacheInstrumentation, type MultiCacheInstrumentationConfig } from '../lib/otel.js'

describe('the diagnostics channel', () => {
  test('its name is a literal a subscriber can use', () => {
    expect(CACHE_OPERATION_CHANNEL).type.toBe<'fastify-multi-cache.operation'>()
    expect(tracingChannel<unknown, CacheOperationContext>(CACHE_OPERATION_CHANNEL).subscribe).type.toBeCallableWith({
      start (operation: CacheOperationContext) { expect(operation.level).type.toBe<CacheEventLevel>() },
      end () {},
      asyncStart () {},
      asyncEnd (operation: CacheOperationContext) { expect(operation.hit).type.toBe<boolean | undefined>() },
      error (operation: CacheOperationContext) { expect(operation.error).type.toBe<unknown>() }
    })
  })

  test('a context is typed field by field, and read-only', () => {
    expect<CacheEventLevel>().type.toBe<'request' | 'session' | 'app' | 'route'>()
    expect<CacheOperationName>().type.toBe<'get' | 'set' | 'delete' | 'getOrLoad' | 'load' | 'invalidate' | 'invalidateTag' | 'clear' | 'refresh' | 'getMany' | 'getOrLoadMany' | 'drop'>()
    expect<CacheOperationContext['reason']>().type.toBe<CacheDropReason | undefined>()
    expect<CacheDropReason>().type.toBe<'evict' | 'expire'>()
    expect<CacheTier>().type.toBe<'memory' | 'store'>()
    expect<CacheOperationContext['key']>().type.toBe<string | undefined>()
    expect<CacheOperationContext['keys']>().type.toBe<readonly string[] | undefined>()
    expect<CacheOperationContext['hits']>().type.toBe<number | undefined>()
    expect<CacheOperationContext['stale']>().type.toBe<boolean | undefined>()
    expect<CacheOperationContext['tier']>().type.toBe<CacheTier | undefined>()
    const operation = {} as CacheOperationContext
    // A subscriber reads a context; the level alone fills it in.
    // @ts-expect-error Cannot assign to 'hit' because it is a read-only property
    operation.hit = true
  })
})

describe('subscribeCacheOperations', () => {
  test('takes a listener of contexts and a sample rate, and gives back the way out', () => {
    expect(subscribeCacheOperations((operation) => { expect(operation).type.toBe<CacheOperationContext>() })).type.toBe<() => void>()
    expect(subscribeCacheOperations).type.toBeCallableWith(() => {}, { sampleRate: 0.01 })
    expect(subscribeCacheOperations).type.toBeCallableWith(() => {}, { sampleRate: 0.01, every: { app: ['set', 'drop'] } })
    expect(subscribeCacheOperations).type.not.toBeCallableWith(() => {}, { every: { app: ['write'] } })
    expect(subscribeCacheOperations).type.not.toBeCallableWith(() => {}, { every: { shop: ['set'] } })
    expect(subscribeCacheOperations).type.not.toBeCallableWith(() => {}, { sampleRate: '1%' })
    expect(subscribeCacheOperations).type.toBeCallableWith(() => {}, { sampleRate: 0.01, runLength: 32 })
    expect(subscribeCacheOperations).type.not.toBeCallableWith(() => {}, { runLength: '32' })
    expect(subscribeCacheOperations).type.not.toBeCallableWith('listener')
    expect<CacheOperationListener>().type.toBe<(context: CacheOperationContext) => void>()
  })
})

describe('MultiCacheInstrumentation', () => {
  test('is an InstrumentationBase with typed options', () => {
    expect(new MultiCacheInstrumentation()).type.toBeAssignableTo<InstrumentationBase>()
    expect(MultiCacheInstrumentation).type.toBeConstructableWith({ includeKeys: true, requireParentSpan: false, enabled: false })
    expect(MultiCacheInstrumentation).type.not.toBeConstructableWith({ includeKeys: 'yes' })
    expect<MultiCacheInstrumentationConfig['requireParentSpan']>().type.toBe<boolean | undefined>()
    expect(new MultiCacheInstrumentation().getConfig().includeKeys).type.toBe<boolean | undefined>()
  })
})
