import { createHash, timingSafeEqual } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import { Registry } from 'prom-client'
import multiCache, { type AdvisorOptions, type MultiCacheOptions } from '../../index.js'
import cacheAdmin from '../../plugins/admin.js'
import type { Database, Product, User } from './db.js'

export interface ShopOptions {
  db: Database
  logger?: FastifyServerOptions['logger']
  /** Signs session cookies; a fixed development secret when absent. */
  sessionSecret?: string
  /** Keeps sessions and the catalog in this Redis (with memory tiers in front), so that instances share them. */
  redisUrl?: string
  /** Namespace of the shop's keys in that Redis. Default `'shop:'`. */
  redisPrefix?: string
  /** Mounts the cache admin API and dashboard at `/_cache`, behind HTTP Basic with this password; not mounted without it. */
  adminToken?: string
  /** The level advisor, its findings on the dashboard and at `GET /_cache/advice`. Default `{ sampleRate: 1 }`: a demo watches every key. */
  advisor?: boolean | AdvisorOptions
}

interface CartLine { productId: number, quantity: number }

// The shop's keys at each level and the type of each value: every get, set and load below is checked against them, so
// that a typo in a key or a value of the wrong type does not compile. Declarations hold for a whole program: the shop
// is type-checked in one of its own (examples/shop/tsconfig.json), apart from the package's tests.
declare module 'fastify-multi-cache' {
  interface AppCacheKeys {
    catalog: Product[]
    /** null: no such product (absence is cached too). */
    [key: `product:${number}`]: Product | null
  }
  interface SessionCacheKeys {
    cart: CartLine[]
    userId: number
    banner: { text: string }
  }
  interface RequestCacheKeys {
    profile: User | null
  }
}

const MAX_CART_LINES = 50

/** The cache configuration in one place: memory by default, Redis (shared by every instance) with `redisUrl`. */
export function cacheOptions (options: ShopOptions, registry?: Registry): MultiCacheOptions {
  const url = options.redisUrl as `redis://${string}` | undefined
  const root = options.redisPrefix ?? 'shop:'
  const shared = (level: string): { store?: `redis://${string}`, prefix?: string } => url === undefined ? {} : { store: url, prefix: root + level }
  return {
    request: { maxEntries: 1000 },
    session: { secret: options.sessionSecret ?? 'development-only-secret-change-me-please', ttl: '30m', ...shared('session:') },
    app: { max: 20_000, ttl: '10m', ...shared('app:'), ...(url === undefined ? {} : { lock: true }) },
    advisor: options.advisor ?? { sampleRate: 1 },
    ...(registry === undefined ? {} : { metrics: { registry } })
  }
}

export async function buildShop (options: ShopOptions): Promise<FastifyInstance> {
  const { db } = options
  const app = Fastify({ logger: options.logger ?? false })
  // The shop's own registry: prom-client's default one is global to the process, and tests build several shops.
  const registry = new Registry()
  await app.register(multiCache, cacheOptions(options, registry))
  app.get('/metrics', async (_request, reply) => await reply.type(registry.contentType).send(await registry.metrics()))
  await mountAdmin(app, options.adminToken)

  // Application level: the whole catalog, loaded before the server listens and refreshed every minute.
  app.appCache.define('catalog', async () => await db.catalog(), { refreshInterval: '1m', ttl: 0 })

  // Request level: the profile is needed twice per request (validation, personalisation) and loaded once.
  const profileOf = async (request: FastifyRequest, userId: number): Promise<User | null> =>
    await request.cache.getOrLoad('profile', async () => await db.user(userId), { level: 'request' })

  const userIdOf = async (request: FastifyRequest): Promise<number | undefined> => await request.sessionCache.get('userId')

  app.get('/products', async () => await app.appCache.get('catalog'))

  app.get('/products/:id', {
    schema: { params: { type: 'object', properties: { id: { type: 'integer', minimum: 1, maximum: 2_147_483_647 } }, required: ['id'] } }
  }, async (request, reply) => {
    const { id } = request.params as { id: number }
    // null is cached too, so that a burst of requests for a missing product costs one query; the LRU bounds it.
    const product = await app.appCache.getOrLoad(`product:${id}`, async () => await db.product(id), { ttl: '5m' })
    return product ?? await reply.code(404).send({ error: 'no such product' })
  })

  app.post('/login', {
    schema: { body: { type: 'object', properties: { username: { type: 'string', minLength: 1, maxLength: 64 } }, required: ['username'] } }
  }, async (request, reply) => {
    const { username } = request.body as { username: string }
    const user = await db.userByName(username)
    if (user === null || !user.active) return await reply.code(401).send({ error: 'unknown or inactive user' })
    // A new id at login: an id someone planted before login is worth nothing after it. The cart is kept.
    await request.sessionCache.regenerate()
    await request.sessionCache.set('userId', user.id)
    return { hello: user.name }
  })

  app.post('/logout', async (request) => {
    await request.sessionCache.destroy()
    return { bye: true }
  })

  app.get('/cart', async (request) => {
    const lines = await request.sessionCache.get('cart') ?? []
    const catalog = new Map((await app.appCache.get('catalog') ?? []).map((p) => [p.id, p]))
    const detailed = lines.map((line) => ({ ...line, product: catalog.get(line.productId) ?? null }))
    const totalCents = detailed.reduce((sum, line) => sum + (line.product?.priceCents ?? 0) * line.quantity, 0)
    return { lines: detailed, totalCents }
  })

  app.post('/cart', {
    schema: {
      body: {
        type: 'object',
        properties: { productId: { type: 'integer', minimum: 1, maximum: 2_147_483_647 }, quantity: { type: 'integer', minimum: 1, maximum: 99 } },
        required: ['productId', 'quantity'],
        additionalProperties: false
      }
    }
  }, async (request, reply) => {
    const { productId, quantity } = request.body as CartLine
    const product = await app.appCache.getOrLoad(`product:${productId}`, async () => await db.product(productId), { ttl: '5m' })
    if (product === null) return await reply.code(404).send({ error: 'no such product' })
    const lines = [...(await request.sessionCache.get('cart') ?? [])]
    const existing = lines.findIndex((line) => line.productId === productId)
    if (existing >= 0) lines[existing] = { productId, quantity }
    else if (lines.length >= MAX_CART_LINES) return await reply.code(409).send({ error: `a cart holds at most ${MAX_CART_LINES} lines` })
    else lines.push({ productId, quantity })
    await request.sessionCache.set('cart', lines)
    return { lines: lines.length }
  })

  app.delete('/cart', async (request) => {
    await request.sessionCache.delete('cart')
    return { lines: 0 }
  })

  app.get('/orders', async (request, reply) => {
    const userId = await userIdOf(request)
    if (userId === undefined) return await reply.code(401).send({ error: 'log in first' })
    const profile = await profileOf(request, userId)
    if (profile === null || !profile.active) return await reply.code(403).send({ error: 'account inactive' })
    const orders = await db.orders(userId)
    const again = await profileOf(request, userId)
    return { greeting: `Hello ${again?.name ?? ''} (${again?.tier ?? ''} member)`, orders }
  })

  // A mistake left in for the advisor to find: the banner is the same for everyone, yet each visitor gets a session
  // and a copy of it. After a few visitors the dashboard says `same-in-every-session`: cache it at the application level.
  app.get('/banner', async (request) => await request.sessionCache.getOrLoad('banner', () => ({ text: 'Free delivery from 50 EUR' })))

  app.get('/cache/stats', async () => ({ cache: app.multiCache.stats(), db: { queries: db.queries } }))

  return app
}

/**
 * The cache admin API and dashboard at `/_cache`, behind HTTP Basic (any user name, `token` as the password), so that
 * a browser prompts for it. Without a token they are not mounted, and the start-up log says so.
 */
async function mountAdmin (app: FastifyInstance, token: string | undefined): Promise<void> {
  if (token === undefined || token === '') {
    app.log.info('the cache admin API and dashboard are not mounted: set ADMIN_TOKEN to serve them at /_cache')
    return
  }
  const expected = digest(token)
  await app.register(cacheAdmin, {
    authorize: (request, reply) => {
      const [scheme, encoded = ''] = (request.headers.authorization ?? '').split(' ')
      const password = Buffer.from(encoded, 'base64').toString().split(':').slice(1).join(':')
      // Compared as digests, in constant time: the token's length and contents stay secret.
      if (scheme === 'Basic' && timingSafeEqual(digest(password), expected)) return true
      reply.code(401).header('www-authenticate', 'Basic realm="cache admin", charset="UTF-8"')
      return false
    }
  })
  app.log.info('the cache admin API and dashboard are at /_cache (HTTP Basic, ADMIN_TOKEN as the password)')
}

function digest (text: string): Buffer {
  return createHash('sha256').update(text).digest()
}
