// 16. The application level on a Redis Cluster (three masters, three replicas, the scenario's own): what a 1 KB key
// costs the server next to one Redis, and what a master killed under load costs (failed responses, latency while the
// replica takes over, and how long until the hit ratio is back).
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { startCluster } from '../../test/helpers/cluster.js'
import { startServer, type ServerFactories, type ServerHandle } from '../harness/children.js'
import { SimulatedDatabase } from '../harness/database.js'
import { RATES } from '../harness/fixtures.js'
import { compareHttp, cpuRatio, getJson, measureHttp, recordTimeline, type HttpLoad } from '../harness/http.js'
import { startRedisServer } from '../harness/redis.js'
import { judgedBy, result, type Result } from '../harness/results.js'
import { percentile, spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { appCache } from '../harness/package.js'

/** Items read at random in the failover runs: twice what the memory tier holds (1,000), so half the reads reach Redis. */
const ITEMS = 2000
const QUERY_MS = 2
const STORE_TIMEOUT_MS = 100
/** Seconds of load before the kill, and after it. */
const BEFORE = 2
const AFTER = settings.quick ? 8 : 10
const FAILOVER_ROUNDS = settings.quick ? 1 : 3
const BUCKET_MS = 100
/** The hit ratio is back when a bucket reaches this share of its median before the kill. */
const RECOVERED = 0.95

export const servers: ServerFactories = {
  /** The 1 KB key, `l1` on or off, on the store given (one Redis, or the cluster). */
  async rates (params) {
    const db = new SimulatedDatabase(2)
    const app = Fastify()
    await app.register(appCache, { store: params.store as `redis://${string}`, prefix: params.prefix as string, ttl: '10m', ...(params.l1 === 'off' ? { l1: false } : {}) })
    app.get('/rates', async () => await app.appCache.getOrLoad('rates', () => db.query(() => RATES)))
    return app
  },
  /** Items at random, with the level's stats for the hit ratio. */
  async items (params) {
    const db = new SimulatedDatabase(QUERY_MS)
    const app = Fastify()
    await app.register(appCache, { store: params.store as `redis://${string}`, prefix: 'items:', timeout: STORE_TIMEOUT_MS })
    app.get<{ Params: { id: string } }>('/item/:id', async (request) => {
      const id = Number(request.params.id)
      return await app.appCache.getOrLoad('item:' + id, () => db.query(() => ({ id, name: `Item ${id}`, price: 5 + (id % 97) })))
    })
    app.get('/stats', async () => app.multiCache.stats().app)
    return app
  }
}

interface Round {
  failed: number
  /** p99 and p50 latency of the requests sent from the kill until the replica was promoted, ms. */
  failoverP99: number
  failoverP50: number
  beforeP99: number
  /** From the kill until every slot was served again, ms. */
  promoted: number
  /** From the kill until a bucket's hit ratio is back at `RECOVERED` of before; undefined if it never was. */
  recovered: number | undefined
  hitsBefore: number
  lowest: number
}

/** Latencies of the requests sent between `from` and `to` (ms of the run). */
function sentBetween (at: readonly number[], latency: readonly number[], from: number, to: number): number[] {
  return latency.filter((ms, i) => {
    const sent = (at[i] as number) - ms
    return sent >= from && sent < to
  })
}

/** One round: a fresh cluster and app, every item loaded once, then a master killed `BEFORE` s into the run. */
async function failover (): Promise<Round> {
  const cluster = await startCluster()
  let server: ServerHandle | undefined
  const polling = { on: true }
  try {
    server = await startServer(fileURLToPath(import.meta.url), 'items', { store: cluster.url })
    const url = server.url
    for (let i = 0; i < ITEMS; i += 50) await Promise.all(Array.from({ length: 50 }, async (_, j) => await fetch(`${url}/item/${i + j}`).then(async (r) => await r.text())))
    const load: HttpLoad = { path: '/item/0', paths: () => `/item/${Math.floor(Math.random() * ITEMS)}`, connections: 20 }
    await measureHttp(server, load, settings.warmupSeconds)
    const victim = await cluster.masterOf('items:item:0')
    await cluster.synced(victim)
    // The level's hits and misses every bucket, for the hit ratio over time.
    const start = performance.now()
    const ratios: Array<{ at: number, ratio: number }> = []
    const poll = async (): Promise<void> => {
      let last = await getJson<{ hits: number, misses: number }>(`${url}/stats`)
      while (polling.on) {
        await sleep(BUCKET_MS)
        const now = await getJson<{ hits: number, misses: number }>(`${url}/stats`)
        const reads = now.hits + now.misses - last.hits - last.misses
        if (reads > 0) ratios.push({ at: performance.now() - start, ratio: (now.hits - last.hits) / reads })
        last = now
      }
    }
    const polled = poll()
    let promoted = Number.NaN
    const timeline = await recordTimeline(server, load, BEFORE + AFTER, {
      kill: {
        at: BEFORE * 1000,
        run: () => {
          cluster.kill(victim).then(async () => { await cluster.healthy() }).then(() => { promoted = performance.now() - start }, () => {})
        }
      }
    })
    polling.on = false
    await polled
    const killed = timeline.marks.kill
    const before = ratios.filter(({ at }) => at > 500 && at < killed).map(({ ratio }) => ratio)
    const hitsBefore = spread(before).median
    const back = ratios.find(({ at, ratio }) => at > killed + 200 && at > promoted && ratio >= RECOVERED * hitsBefore)
    const during = sentBetween(timeline.at, timeline.latency, killed, Number.isNaN(promoted) ? Infinity : promoted)
    return {
      failed: timeline.non2xx + timeline.errors,
      failoverP99: percentile(during, 99),
      failoverP50: percentile(during, 50),
      beforeP99: percentile(sentBetween(timeline.at, timeline.latency, 500, killed), 99),
      promoted: promoted - killed,
      recovered: back === undefined ? undefined : back.at - killed,
      hitsBefore,
      lowest: Math.min(...ratios.filter(({ at }) => at > killed).map(({ ratio }) => ratio))
    }
  } finally {
    polling.on = false
    await server?.stop()
    await cluster.stop()
  }
}

export const redisCluster: Scenario = {
  name: 'redis-cluster',
  async run () {
    const module = fileURLToPath(import.meta.url)
    const rows: Result[] = []
    // The server CPU a request costs, every contender served at once at a fixed rate on the server core, with an A/A pair.
    const cluster = await startCluster()
    const redis = await startRedisServer()
    try {
      const load = { path: '/rates', connections: 10, rate: 400 }
      const contender = (name: string, store: string, l1: 'on' | 'off') => ({ name, server: 'rates', params: { store, prefix: `bench:${name}:`, l1 }, load })
      const samples = await compareHttp(module, [
        contender('L1+Redis', redis.url, 'on'),
        contender('L1+Redis (control)', redis.url, 'on'),
        contender('L1+cluster', cluster.url, 'on'),
        contender('Redis only', redis.url, 'off'),
        contender('cluster only', cluster.url, 'off')
      ], Math.max(settings.rounds * 2, 6))
      const measure = `a 1 KB application key over HTTP (appCache.getOrLoad), five servers at once at ${load.rate} req/s each`
      const control = result({ scenario: 'redis-cluster', measure: `${measure}: A/A control, memory tier + one Redis twice; outside 0.95–1.05 the run is void`, ...cpuRatio(samples, 'L1+Redis (control)', 'L1+Redis'), target: { op: 'within', value: 1, tolerance: 0.05 } })
      const judged = judgedBy(control)
      rows.push(control)
      rows.push(judged(result({ scenario: 'redis-cluster', measure: `${measure}: server CPU per request, memory tier + Redis Cluster (3 masters) vs memory tier + one Redis`, ...cpuRatio(samples, 'L1+cluster', 'L1+Redis'), target: { op: '<=', value: 1.1 } })))
      rows.push(judged(result({ scenario: 'redis-cluster', measure: `${measure}: server CPU per request with l1: false (a Redis GET per request), cluster vs one Redis`, ...cpuRatio(samples, 'cluster only', 'Redis only'), target: undefined })))
    } finally {
      await redis.stop()
      await cluster.stop()
    }

    const rounds: Round[] = []
    for (let i = 0; i < FAILOVER_ROUNDS; i++) rounds.push(await failover())
    const setting = `appCache (default l1 and breaker, timeout ${STORE_TIMEOUT_MS}ms) on a Redis Cluster of 3 masters and 3 replicas (cluster-node-timeout 2000), ${ITEMS.toLocaleString('en')} items at random, ${QUERY_MS} ms query, 20 connections, the master of one item killed (SIGKILL) ${BEFORE} s in`
    const median = (figure: (r: Round) => number): string => spread(rounds.map(figure)).median.toFixed(0)
    rows.push(result({
      scenario: 'redis-cluster',
      measure: `${setting}: failed responses (non-2xx, errors, timeouts) in a round`,
      contenders: ['appCache L1+cluster'],
      unit: 'responses',
      ...spread(rounds.map((r) => r.failed)),
      rounds: rounds.length,
      target: { op: '=', value: 0, of: 'max' },
      context: `the replica served every slot again ${median((r) => r.promoted)} ms after the kill (median)`
    }))
    rows.push(result({
      scenario: 'redis-cluster',
      measure: 'same: p99 latency of the requests sent from the kill until the replica was promoted',
      contenders: ['appCache L1+cluster'],
      unit: 'ms',
      ...spread(rounds.map((r) => r.failoverP99)),
      rounds: rounds.length,
      target: undefined,
      context: `p50 ${median((r) => r.failoverP50)} ms; p99 before the kill ${median((r) => r.beforeP99)} ms`
    }))
    rows.push(result({
      scenario: 'redis-cluster',
      measure: `same: from the kill until the hit ratio of a ${BUCKET_MS} ms bucket is back at ${RECOVERED * 100} % of before`,
      contenders: ['appCache L1+cluster'],
      unit: 'ms',
      ...spread(rounds.map((r) => r.recovered ?? AFTER * 1000)),
      rounds: rounds.length,
      target: undefined,
      context: `hit ratio ${median((r) => r.hitsBefore * 100)} % before the kill, ${median((r) => r.lowest * 100)} % at its lowest; ${rounds.filter((r) => r.recovered === undefined).length} of ${rounds.length} rounds not back within ${AFTER} s`
    }))
    return rows
  }
}
