// 17. Batch reads (issue 22): 50 keys from Redis with the memory tier empty, appCache.getMany against 50 get()s; and a
// page of 50 products, a 2 ms query per product against request.reqCache.loader's one 2 ms query for all of them.
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance } from 'fastify'
import type { ServerFactories, ServerParams } from '../harness/children.js'
import { SimulatedDatabase } from '../harness/database.js'
import { catalog } from '../harness/fixtures.js'
import { compareHttp, cpuRatio, cpuSaving, throughputRatio, type HttpContender } from '../harness/http.js'
import { SHARED_REDIS, deleteMatching, namespaceFor, sweepAndReport } from '../harness/redis.js'
import { result } from '../harness/results.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { appCache, requestCache } from '../harness/package.js'
import type { RequestCache } from '../../index.js'

/** Keys held in Redis, and read per request: 50 in a row from a random place, so that no request reads what another just read. */
const HELD = 10_000
const PAGE = 50
const PRODUCTS = catalog(HELD)

const pageOf = (): string[] => {
  const start = Math.floor(Math.random() * (HELD - PAGE))
  return Array.from({ length: PAGE }, (_, i) => `product:${start + i}`)
}

/**
 * The application level on the shared Redis under the contender's prefix, holding every product, with a memory tier
 * that forgets each entry a millisecond after it took it: every read goes to Redis, as with a tier that never held
 * the page. It answers how many of the page it found, so that the response costs the same whatever read it.
 */
async function fromRedis (params: ServerParams, read: (app: FastifyInstance, keys: string[]) => Promise<unknown[]>): Promise<FastifyInstance> {
  const app = Fastify()
  await app.register(appCache, { store: SHARED_REDIS, prefix: params.prefix, l1: { max: 1000, ttl: 1 } })
  app.get('/page', async () => ({ found: (await read(app, pageOf())).filter((value) => value !== undefined).length }))
  // The prefix and its fences (`fmc-fence:` + prefix), which clear() keeps.
  app.addHook('preClose', async () => { await deleteMatching(`*${params.prefix as string}*`) })
  await app.ready()
  for (let start = 0; start < HELD; start += 1000) {
    const keys = Array.from({ length: 1000 }, (_, i) => `product:${start + i}`)
    await app.appCache.getOrLoadMany(keys, (missing) => missing.map((key) => PRODUCTS[Number(key.slice(8))]))
  }
  return app
}

/** A page of 50 products from the simulated database (2 ms a query, a pool of 10), with `find` giving each one. */
async function productPage (find: (request: { reqCache: RequestCache }, id: number, db: SimulatedDatabase) => Promise<unknown>): Promise<FastifyInstance> {
  const db = new SimulatedDatabase(2)
  const app = Fastify()
  await app.register(requestCache)
  app.get('/products', async (request) => {
    const start = Math.floor(Math.random() * (HELD - PAGE))
    return await Promise.all(Array.from({ length: PAGE }, async (_, i) => await find(request, start + i, db)))
  })
  return app
}

export const servers: ServerFactories = {
  get: (params) => fromRedis(params, async (app, keys) => await Promise.all(keys.map(async (key) => await app.appCache.get(key)))),
  getMany: (params) => fromRedis(params, async (app, keys) => await app.appCache.getMany(keys)),
  perProduct: () => productPage(async (_request, id, db) => await db.query(() => PRODUCTS[id])),
  batchLoader: () => productPage(async (request, id, db) => await request.reqCache.loader('products', async (ids: number[]) => await db.query(() => ids.map((one) => PRODUCTS[one]))).load(id))
}

type Reader = '50 × get' | 'getMany' | 'getMany (A/A)'

export const batchReads: Scenario = {
  name: 'batch-reads',
  async run () {
    const scenario = 'batch-reads'
    try {
      // In turn, each with the cores to itself: a request costs 50 round trips or one, a difference no noise hides.
      const load = { path: '/page', connections: 10 }
      const reader = (name: Reader, server: string): HttpContender<Reader> => ({ name, server, params: { prefix: namespaceFor(name.replace(/\W+/g, '-')) }, load })
      const reads = await compareHttp(fileURLToPath(import.meta.url), [
        reader('50 × get', 'get'),
        reader('getMany', 'getMany'),
        reader('getMany (A/A)', 'getMany')
      ], settings.rounds)
      const pages = await compareHttp(fileURLToPath(import.meta.url), [
        { name: 'a query per product', server: 'perProduct', load: { path: '/products', connections: 20 } },
        { name: 'reqCache.loader', server: 'batchLoader', load: { path: '/products', connections: 20 } }
      ], settings.rounds)
      const measure = `${PAGE} keys of ${HELD} in the shared Redis, the memory tier empty (l1.ttl 1 ms), 10 connections, in turn`
      return [
        result({
          scenario,
          measure: `${measure}: A/A control, server CPU per request of a second getMany server ÷ the first (if it is not about 1.00, the run says nothing)`,
          ...cpuRatio(reads, 'getMany (A/A)', 'getMany'),
          target: { op: 'within', value: 1, tolerance: 0.1 }
        }),
        result({
          scenario,
          measure: `${measure}: server CPU per request of ${PAGE} appCache.get() at once ÷ one appCache.getMany()`,
          ...cpuSaving(reads, 'getMany', '50 × get'),
          target: { op: '>=', value: 5 }
        }),
        result({
          scenario,
          measure: `${measure}: throughput of getMany vs ${PAGE} get()`,
          ...throughputRatio(reads, 'getMany', '50 × get'),
          target: undefined
        }),
        result({
          scenario,
          measure: `a page of ${PAGE} products, 20 connections: request.reqCache.loader, one 2 ms query for the page, vs a 2 ms query per product (pool of 10)`,
          ...throughputRatio(pages, 'reqCache.loader', 'a query per product'),
          target: { op: '>=', value: 10 }
        })
      ]
    } finally {
      await sweepAndReport(scenario)
    }
  }
}
