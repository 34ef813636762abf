// 7 (across instances). A thousand concurrent requests on a cold key, spread over two instances sharing Redis: one
// loader call in all with `lock: true`, one per instance without it. A scenario of its own rather than a part of
// `stampede`, which needs no Redis and measures one process.
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { startServer, type ServerFactories, type ServerHandle } from '../harness/children.js'
import { SimulatedDatabase } from '../harness/database.js'
import { RATES } from '../harness/fixtures.js'
import { getJson } from '../harness/http.js'
import { SHARED_REDIS, namespaceFor, sweepAndReport, withRedis } from '../harness/redis.js'
import { result, type Result } from '../harness/results.js'
import { spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { appCache } from '../harness/package.js'

const CONCURRENT = 1000
const INSTANCES = 2
const ROUNDS = settings.quick ? 3 : 5
/** Long enough that every request, on either instance, arrives while the first load is still running. */
const LOAD_MS = 500

/** Where the loaders of both instances count their calls: in Redis, so that the count crosses processes. */
const counterKey = (prefix: string, key: string): string => `${prefix}loads:${key}`

export const servers: ServerFactories = {
  /** One instance: `appCache` on the shared Redis under `params.prefix`, with the lock when `params.lock` is 'true'. */
  async instance (params) {
    const prefix = params.prefix as string
    const db = new SimulatedDatabase(LOAD_MS)
    const counter = new Redis(SHARED_REDIS)
    const app = Fastify()
    await app.register(appCache, { store: SHARED_REDIS, prefix, lock: params.lock === 'true' })
    app.get<{ Params: { round: string } }>('/rates/:round', async (request) => {
      const key = 'rates:' + request.params.round
      return await app.appCache.getOrLoad(key, async () => {
        await counter.incr(counterKey(prefix, key))
        return await db.query(() => RATES)
      })
    })
    // Both instances empty the shared prefix (the counters live under it) once the parent has read the counts.
    app.addHook('preClose', async () => { await app.appCache.clear() })
    app.addHook('onClose', async () => { await counter.quit() })
    return app
  }
}

interface Round {
  loads: number
  /** From the first request sent to the last answer, ms. */
  elapsed: number
}

/** Runs the rounds against `INSTANCES` fresh instances sharing one prefix, and stops them. */
async function stampedes (lock: boolean): Promise<Round[]> {
  const prefix = namespaceFor(lock ? 'stampede-lock' : 'stampede-no-lock')
  const instances: ServerHandle[] = []
  try {
    for (let i = 0; i < INSTANCES; i++) {
      instances.push(await startServer(fileURLToPath(import.meta.url), 'instance', { prefix, lock: String(lock) }))
    }
    const rounds: Round[] = []
    for (let round = 0; round < ROUNDS; round++) {
      const started = performance.now()
      const answers = await Promise.all(Array.from({ length: CONCURRENT }, (_, i) =>
        getJson<typeof RATES>(`${(instances[i % INSTANCES] as ServerHandle).url}/rates/${round}`)))
      const elapsed = performance.now() - started
      if (answers.some((answer) => answer.base !== RATES.base)) throw new Error('an instance answered something else than the rates')
      const loads = await withRedis(SHARED_REDIS, async (client) => Number(await client.get(counterKey(prefix, `rates:${round}`))))
      rounds.push({ loads, elapsed })
    }
    return rounds
  } finally {
    await Promise.all(instances.map((instance) => instance.stop()))
  }
}

function loaderCalls (rounds: readonly Round[], lock: boolean): Result {
  const elapsed = spread(rounds.map((r) => r.elapsed))
  return result({
    scenario: 'stampede-redis',
    measure: `${CONCURRENT} concurrent requests (appCache.getOrLoad) on a cold key over ${INSTANCES} instances sharing Redis, ` +
      (lock ? 'lock: true' : 'without lock') + ': loader calls across instances (counted by INCR in Redis)',
    contenders: [lock ? 'appCache lock: true' : 'appCache no lock'],
    unit: 'loader calls',
    ...spread(rounds.map((r) => r.loads)),
    rounds: rounds.length,
    target: lock ? { op: '=', value: 1 } : undefined,
    context: `${CONCURRENT / INSTANCES} requests per instance, load ${LOAD_MS} ms; all answered in ` +
      `${elapsed.min.toFixed(0)}–${elapsed.max.toFixed(0)} ms`
  })
}

export const stampedeRedis: Scenario = {
  name: 'stampede-redis',
  async run () {
    try {
      return [loaderCalls(await stampedes(true), true), loaderCalls(await stampedes(false), false)]
    } finally {
      await sweepAndReport('stampede-redis')
    }
  }
}
