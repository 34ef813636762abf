import { buildShop } from './app.js'
import { Database } from './db.js'

const host = process.env.HOST ?? '127.0.0.1'
const port = Number(process.env.PORT ?? 3000)

const db = await Database.open({
  url: process.env.DATABASE_URL,
  latencyMs: Number(process.env.DB_LATENCY_MS ?? 0),
  products: Number(process.env.SHOP_PRODUCTS ?? 3000)
})
// The advisor watches every key by default (a demo); SHOP_ADVISOR=0.01 samples 1 in 100, SHOP_ADVISOR=off turns it off.
const advisor = process.env.SHOP_ADVISOR === 'off' ? false : { sampleRate: Number(process.env.SHOP_ADVISOR ?? 1) }
const app = await buildShop({ db, logger: true, sessionSecret: process.env.SESSION_SECRET, redisUrl: process.env.REDIS_URL, adminToken: process.env.ADMIN_TOKEN, advisor })
app.addHook('onClose', async () => { await db.close() })
await app.listen({ host, port })
console.log(`Demo shop ready on http://${host}:${port}${process.env.REDIS_URL === undefined ? '' : ', sessions and catalog in Redis'}  (try: curl http://${host}:${port}/products/1)`)

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => { app.close().then(() => process.exit(0), () => process.exit(1)) })
}
