import Fastify from 'fastify'
import multiCache from 'fastify-multi-cache'
import { db } from './db.js'

const app = Fastify({ logger: true })
await app.register(multiCache, { session: false })
const product = { id: 42, name: 'kettle', price: 30 }
const listProducts = () => db.products.all()
// #region readme
await app.appCache.set('product:42', product, { tags: ['catalog', 'product:42'] })
app.get('/products', { config: { cache: { level: 'app', tags: ['catalog'] } } }, listProducts)
await app.appCache.invalidateTag('catalog')   // every entry and route response tagged 'catalog', on every instance once the bus reaches it
// #endregion
app.get('/product', async () => await app.appCache.get('product:42') ?? null)
app.post('/invalidate', async () => { await app.appCache.invalidateTag('catalog'); return null })
await app.listen({ port: Number(process.env.PORT ?? 3000) })
