// 4. A catalog of 1,000 products: from the database, cached as a whole response, cached as an object.
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import type { ServerFactories } from '../harness/children.js'
import { SimulatedDatabase } from '../harness/database.js'
import { SECRET, catalog } from '../harness/fixtures.js'
import { compareHttp, describeHttp, throughputRatio } from '../harness/http.js'
import { result } from '../harness/results.js'
import { spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { multiCache } from '../harness/package.js'

const PRODUCTS = catalog(1000)

async function withCatalog (register: (app: ReturnType<typeof Fastify>, query: () => Promise<unknown>) => void) {
  const db = new SimulatedDatabase(20)
  const app = Fastify()
  await app.register(multiCache, { session: { secret: SECRET } })
  register(app, () => db.query(() => PRODUCTS))
  return app
}

export const servers: ServerFactories = {
  database: () => withCatalog((app, query) => { app.get('/products', query) }),
  routeCache: () => withCatalog((app, query) => {
    app.get('/products', { config: { cache: { level: 'app', ttl: '10m' } } }, query)
  }),
  objectCache: () => withCatalog((app, query) => {
    app.get('/products', () => app.appCache.getOrLoad('catalog', query, { ttl: '10m' }))
  }),
  /** The floor of any response cache: the same bytes, serialized once at start-up. */
  async constant () {
    const bytes = Buffer.from(JSON.stringify(PRODUCTS))
    const app = Fastify()
    app.get('/products', (_request, reply) => reply.type('application/json; charset=utf-8').send(bytes))
    return app
  }
}

export const appLevel: Scenario = {
  name: 'app-level',
  async run () {
    const load = { path: '/products', connections: 20 }
    const samples = await compareHttp(fileURLToPath(import.meta.url), [
      { name: 'database', server: 'database', load },
      { name: 'routeCache', server: 'routeCache', load },
      { name: 'objectCache', server: 'objectCache', load },
      { name: 'constant bytes', server: 'constant', load }
    ], settings.rounds)
    const p50 = spread(samples.routeCache.map((s) => s.p50))
    return [
      result({
        scenario: 'app-level',
        measure: '1,000-product catalog (20 ms query, pool of 10): route response cache (level app) vs the query',
        ...throughputRatio(samples, 'routeCache', 'database'),
        target: { op: '>=', value: 10 }
      }),
      result({
        scenario: 'app-level',
        measure: 'p50 latency of the route-cached catalog, 20 connections',
        contenders: ['routeCache'],
        unit: 'ms',
        ...p50,
        rounds: samples.routeCache.length,
        target: { op: '<', value: 5 },
        context: describeHttp('routeCache', samples.routeCache)
      }),
      result({
        scenario: 'app-level',
        measure: 'same catalog: object cache (appCache.getOrLoad, serialized per request) vs the query',
        ...throughputRatio(samples, 'objectCache', 'database'),
        target: undefined
      }),
      result({
        scenario: 'app-level',
        measure: 'route-cached catalog vs a route sending constant pre-serialized bytes',
        ...throughputRatio(samples, 'routeCache', 'constant bytes'),
        target: { op: '>=', value: 0.9 }
      })
    ]
  }
}
