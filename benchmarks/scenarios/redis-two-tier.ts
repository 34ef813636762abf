// 5. An application key (about 1 KB) served over HTTP from Redis: our memory tier + Redis, our Redis alone, and
// bentocache with the same layers (memory L1, Redis L2, Redis bus).
import { fileURLToPath } from 'node:url'
import { BentoCache, bentostore } from 'bentocache'
import { memoryDriver } from 'bentocache/drivers/memory'
import { redisBusDriver, redisDriver } from 'bentocache/drivers/redis'
import Fastify from 'fastify'
import type { ServerFactories, ServerParams } from '../harness/children.js'
import { SimulatedDatabase } from '../harness/database.js'
import { RATES } from '../harness/fixtures.js'
import { compareHttp, cpuSaving, throughputRatio } from '../harness/http.js'
import { SHARED_REDIS, namespaceFor, redisAddress, sweepAndReport } from '../harness/redis.js'
import { result } from '../harness/results.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { appCache } from '../harness/package.js'
import type { AppCacheOptions } from '../../index.js'

/** Both caches keep the entry this long, so that neither loads again during a run. */
const TTL = '10m'
/** Entries of the memory tier: our default `l1.max`, and bentocache's memory driver set to the same. */
const L1_MAX = 1000

function ratesQuery (): () => Promise<typeof RATES> {
  const db = new SimulatedDatabase(2)
  return () => db.query(() => RATES)
}

/** Our application level on the shared Redis under the contender's prefix, which it empties when it closes. */
async function ours (params: ServerParams, options: Pick<AppCacheOptions, 'l1'>) {
  const load = ratesQuery()
  const app = Fastify()
  await app.register(appCache, { store: SHARED_REDIS, prefix: params.prefix, ttl: TTL, ...options })
  app.get('/rates', async () => await app.appCache.getOrLoad('rates', load))
  app.addHook('preClose', async () => { await app.appCache.clear() })
  return app
}

export const servers: ServerFactories = {
  l1Redis: (params) => ours(params, {}),
  redisOnly: (params) => ours(params, { l1: false }),
  async bentocache (params) {
    const load = ratesQuery()
    const connection = redisAddress(SHARED_REDIS)
    // The memory layer keeps references, as our memory tier does (bentocache's default would JSON-parse every hit).
    const bento = new BentoCache({
      default: 'cache',
      prefix: (params.prefix as string).slice(0, -1),
      stores: {
        cache: bentostore()
          .useL1Layer(memoryDriver({ maxItems: L1_MAX, serialize: false }))
          .useL2Layer(redisDriver({ connection }))
          .useBus(redisBusDriver({ connection }))
      }
    })
    const app = Fastify()
    app.get('/rates', async () => await bento.getOrSet({ key: 'rates', factory: load, ttl: TTL }))
    app.addHook('preClose', async () => { await bento.clear() })
    app.addHook('onClose', async () => { await bento.disconnectAll() })
    return app
  }
}

export const redisTwoTier: Scenario = {
  name: 'redis-two-tier',
  async run () {
    const load = { path: '/rates', connections: 20 }
    const contender = <C extends string>(name: C, server: string) => ({ name, server, params: { prefix: namespaceFor(server) }, load })
    try {
      const samples = await compareHttp(fileURLToPath(import.meta.url), [
        contender('appCache L1+Redis', 'l1Redis'),
        contender('appCache Redis only', 'redisOnly'),
        contender('bentocache L1+Redis', 'bentocache')
      ], settings.rounds)
      const measure = 'a 1 KB application key over HTTP (appCache.getOrLoad, shared Redis)'
      return [
        result({
          scenario: 'redis-two-tier',
          measure: `${measure}: ours, memory tier + Redis + bus, vs bentocache configured alike (memory L1 without serialization, Redis L2, Redis bus)`,
          ...throughputRatio(samples, 'appCache L1+Redis', 'bentocache L1+Redis'),
          target: { op: '>=', value: 1 }
        }),
        result({
          scenario: 'redis-two-tier',
          measure: `${measure}: server CPU of bentocache ÷ ours, both memory tier + Redis`,
          ...cpuSaving(samples, 'appCache L1+Redis', 'bentocache L1+Redis'),
          target: undefined
        }),
        result({
          scenario: 'redis-two-tier',
          measure: `${measure}: ours with the memory tier (default l1) vs ours with l1: false (a Redis GET per request)`,
          ...throughputRatio(samples, 'appCache L1+Redis', 'appCache Redis only'),
          target: undefined
        })
      ]
    } finally {
      await sweepAndReport('redis-two-tier')
    }
  }
}
