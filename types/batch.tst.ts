import type { FastifyInstance, FastifyRequest } from 'fastify'
import { describe, expect, test } from 'tstyche'
import type { BatchLoader } from '../index.js'

interface Product { id: number, name: string }

describe('batch reads are typed like their single-key forms', () => {
  const app = {} as FastifyInstance
  const request = {} as FastifyRequest

  test('getMany: the type asked for, unknown by default, undefined for a miss', () => {
    expect(app.appCache.getMany(['a', 'b'])).type.toBe<Promise<unknown[]>>()
    expect(app.appCache.getMany<Product>(['a'])).type.toBe<Promise<Array<Product | undefined>>>()
    expect(app.appCache.getMany).type.not.toBeCallableWith('a')
    expect(app.appCache.getMany).type.not.toBeCallableWith([1, 2])
  })

  test('getOrLoadMany: a value per key from what the loader answers; a Map or an object may leave a key out', () => {
    const products = async (keys: string[]): Promise<Product[]> => keys.map((key, id) => ({ id, name: key }))
    expect(app.appCache.getOrLoadMany(['a'], products)).type.toBe<Promise<Product[]>>()
    expect(app.appCache.getOrLoadMany(['a'], products, { ttl: '1m', tags: ['catalog'], staleWhileRevalidate: '5m' })).type.toBe<Promise<Product[]>>()
    expect(app.appCache.getOrLoadMany(['a'], (keys) => keys.map((key) => key.length))).type.toBe<Promise<number[]>>()
    expect(app.appCache.getOrLoadMany(['a'], async (keys) => new Map(keys.map((key) => [key, 1])))).type.toBe<Promise<Array<number | undefined>>>()
    expect(app.appCache.getOrLoadMany(['a'], () => ({ a: 'x' } as Record<string, string>))).type.toBe<Promise<Array<string | undefined>>>()
    expect(app.appCache.getOrLoadMany(['a'], async (keys) => keys.map((key) => key === 'bad' ? new Error(key) : key))).type.toBe<Promise<string[]>>()
    expect(request.cache.getOrLoadMany(['a'], products, { level: 'app' })).type.toBe<Promise<Product[]>>()
    expect(request.cache.getOrLoadMany(['a'], products, { level: 'session', ttl: '1m' })).type.toBe<Promise<Product[]>>()
  })

  test('wrong usage does not compile', () => {
    expect(app.appCache.getOrLoadMany).type.not.toBeCallableWith(['a'], (keys: number[]) => keys)
    expect(app.appCache.getOrLoadMany).type.not.toBeCallableWith(['a'], () => 'rows')
    expect(app.appCache.getOrLoadMany).type.not.toBeCallableWith(['a'], () => [1], { ttl: 'forever' })
    expect(request.cache.getOrLoadMany).type.not.toBeCallableWith(['a'], () => [1])
    expect(request.cache.getOrLoadMany).type.not.toBeCallableWith(['a'], () => [1], { level: 'global' })
  })

  test('reqCache.loader: keys of any type, values from the batch function, load / loadMany / prime / clear', () => {
    const loader = request.reqCache.loader('products', async (ids: number[]) => ids.map((id) => ({ id, name: String(id) })))
    expect(loader).type.toBe<BatchLoader<number, Product>>()
    expect(loader.load(1)).type.toBe<Promise<Product>>()
    expect(loader.loadMany([1, 2])).type.toBe<Promise<Array<Product | Error>>>()
    expect(loader.prime(1, { id: 1, name: 'one' })).type.toBe<BatchLoader<number, Product>>()
    expect(loader.prime(2, new Error('gone'))).type.toBe<BatchLoader<number, Product>>()
    expect(loader.clear(1)).type.toBe<BatchLoader<number, Product>>()
    expect(loader.load).type.not.toBeCallableWith('1')
    expect(loader.prime).type.not.toBeCallableWith(1, 'not a product')

    const byMap = request.reqCache.loader('brands', async (ids: number[]) => new Map(ids.map((id) => [id, `brand ${id}`])))
    expect(byMap.load(1)).type.toBe<Promise<string | undefined>>()

    interface Key { id: number, locale: string }
    const objects = request.reqCache.loader('names', (keys: Key[]) => keys.map((key) => key.locale), { cacheKey: (key) => `${key.id}:${key.locale}`, maxBatchSize: 100 })
    expect(objects.load({ id: 1, locale: 'en' })).type.toBe<Promise<string>>()
    expect(request.reqCache.loader).type.not.toBeCallableWith('names', (keys: Key[]) => keys, { cacheKey: (key: string) => key })
    expect(request.reqCache.loader).type.not.toBeCallableWith('names', (keys: Key[]) => keys, { maxBatchSize: '100' })
  })
})
