import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'

interface Product { id: number, name: string }
interface CartLine { productId: number, quantity: number }
interface User { id: number, name: string }

// Each level's keys and the type of each value, once for the whole app.
declare module 'fastify-multi-cache' {
  interface AppCacheKeys { catalog: Product[], [key: `product:${number}`]: Product }
  interface SessionCacheKeys { cart: CartLine[], userId: number }
  interface RequestCacheKeys { user: User }
}

const products: Product[] = [{ id: 1, name: 'Kettle' }, { id: 2, name: 'Teapot' }]

const app = Fastify({ logger: true })
await app.register(multiCache, { session: { secret: process.env.SESSION_SECRET ?? 'a development secret, 32+ characters' } })
app.appCache.define('catalog', async () => products, { refreshInterval: '1m' })

app.get('/products', async () => await app.appCache.get('catalog')) // Promise<Product[] | undefined>

app.post<{ Body: CartLine }>('/cart', async (request) => {
  const cart = await request.sessionCache.get('cart') ?? [] // CartLine[]
  await request.sessionCache.set('cart', [...cart, request.body])
  // await request.sessionCache.set('cart', request.body)
  //   does not compile: Argument of type 'CartLine' is not assignable to parameter of type 'ValueFor<"cart", CartLine[]>'
  // await request.sessionCache.get('crat')
  //   does not compile: Argument of type '"crat"' is not assignable to parameter of type '"cart" | "userId"'
  return { lines: cart.length + 1 }
})

app.get('/me', async (request) => {
  // Typed by the level named: a User at the request level.
  const user = await request.cache.getOrLoad('user', async () => ({ id: 1, name: 'Ann' }), { level: 'request' })
  const product = await app.appCache.getOrLoad(`product:${user.id}`, async () => products[0] ?? { id: 0, name: 'none' })
  return { user, product }
})

await app.listen({ port: Number(process.env.PORT ?? 3000) })
