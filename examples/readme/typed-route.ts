import Fastify from 'fastify'
import multiCache, { cacheConfig } from 'fastify-multi-cache'

interface ProductRoute {
  Params: { id: string }
}

const app = Fastify({ logger: true })
await app.register(multiCache, { session: false })
app.get<ProductRoute>('/products/:id', {
  config: {
    // The callbacks get the route's request, as the handler does: request.params.id is a string.
    cache: cacheConfig<ProductRoute>({
      level: 'app',
      key: (request) => request.params.id.toLowerCase(), // /products/KETTLE and /products/kettle share one entry
      tags: (request) => ['catalog', `product:${request.params.id.toLowerCase()}`]
    })
  }
}, async (request) => ({ id: request.params.id.toLowerCase(), at: Date.now() }))
await app.listen({ port: Number(process.env.PORT ?? 3000) })
