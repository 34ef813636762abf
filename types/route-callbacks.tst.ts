import Fastify, { type FastifyRequest, type FastifyTypeProvider, type RouteGenericInterface } from 'fastify'
import { describe, expect, test } from 'tstyche'
import { cacheConfig, type RouteCacheConfig } from '../index.js'

// config.cache's key and tags callbacks, given the route's request through cacheConfig<RouteGeneric>() (issue 19).

interface Product {
  Params: { id: string }
  Querystring: { page?: number }
  Headers: { 'x-tenant': string }
}

/** A type provider that reads the names a schema requires as string parameters, as TypeBox or Zod providers do. */
interface RequiredStrings extends FastifyTypeProvider {
  validator: this['schema'] extends { readonly required: ReadonlyArray<infer Name extends string> } ? { [K in Name]: string } : unknown
  serializer: unknown
}

describe('typed key and tags callbacks', () => {
  const app = Fastify()

  test("cacheConfig<RouteGeneric> gives the callbacks the route's params, query and headers, as the handler has them", () => {
    app.get<Product>('/products/:id', {
      config: {
        cache: cacheConfig<Product>({
          level: 'app',
          key: (request) => {
            expect(request.params).type.toBe<{ id: string }>()
            expect(request.query).type.toBe<{ page?: number }>()
            expect(request.headers['x-tenant']).type.toBe<string>()
            return `${request.headers['x-tenant']}:${request.params.id}:${request.query.page ?? 1}`
          },
          tags: (request) => ['catalog', `product:${request.params.id}`]
        })
      }
    }, async (request) => request.params.id)
  })

  test('a property the route does not have fails to compile, in key and in tags', () => {
    cacheConfig<Product>({
      level: 'app',
      // @ts-expect-error Property 'sku' does not exist on type '{ id: string; }'
      key: (request) => request.params.sku
    })
    cacheConfig<Product>({
      level: 'app',
      // @ts-expect-error Property 'slug' does not exist on type '{ id: string; }'
      tags: (request) => [request.params.slug]
    })
    expect(cacheConfig<Product>).type.not.toBeCallableWith({ level: 'app', key: (request: FastifyRequest<{ Params: { sku: number } }>) => String(request.params.sku) })
  })

  test("with a type provider, the schema's types", () => {
    const schema = { params: { type: 'object', required: ['sku'] } } as const
    app.withTypeProvider<RequiredStrings>().get('/items/:sku', {
      schema,
      config: {
        cache: cacheConfig<RouteGenericInterface, typeof schema, RequiredStrings>({
          level: 'app',
          key: (request) => {
            expect(request.params).type.toBe<{ sku: string }>()
            return request.params.sku
          }
        })
      }
    }, async (request) => request.params.sku)
  })

  test('without it, the callbacks get the plain request, as before', () => {
    app.get('/plain', { config: { cache: { level: 'app', key: (request) => { expect(request).type.toBe<FastifyRequest>(); return request.url } } } }, async () => 'x')
    expect<RouteCacheConfig['key']>().type.toBe<((request: FastifyRequest) => string) | undefined>()
    expect(cacheConfig<Product>({ level: 'app' })).type.toBe<RouteCacheConfig>()
  })
})
