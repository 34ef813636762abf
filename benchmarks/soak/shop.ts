// The demo shop as the soak runs it, in a child process of its own (see `startServer`): on PGlite, its caches in
// memory, or in the Redis at `params.redisUrl` under `params.redisPrefix`.
import { buildShop } from '../../examples/shop/app.js'
import { Database } from '../../examples/shop/db.js'
import type { ServerFactories } from '../harness/children.js'
import { PRODUCTS } from './visit.js'

export const servers: ServerFactories = {
  async shop (params) {
    const db = await Database.open({ products: PRODUCTS })
    const app = await buildShop({ db, redisUrl: params.redisUrl, redisPrefix: params.redisPrefix })
    app.addHook('onClose', async () => { await db.close() })
    return app
  }
}
