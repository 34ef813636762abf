// 8. Redis stalls for 5 s under load (SIGSTOP, then SIGCONT): requests keep succeeding, within the store's time
// budget plus the query, and throughput comes back once Redis answers again. With the circuit breaker (the default),
// only the first budget is paid: after it, requests are answered at the loader's own speed; without it (`breaker:
// false`), every miss pays the budget for the whole pause.
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { startServer, type ServerFactories, type ServerHandle } from '../harness/children.js'
import { SimulatedDatabase } from '../harness/database.js'
import { measureHttp, recordTimeline, type HttpLoad, type Timeline } from '../harness/http.js'
import { startRedisServer, type RedisServer } from '../harness/redis.js'
import { result, type Result } from '../harness/results.js'
import { percentile, spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { appCache } from '../harness/package.js'

const ROUNDS = settings.quick ? 2 : 5
/** Seconds of load before the pause, of the pause, and after it. */
const BEFORE = settings.quick ? 2 : 3
const PAUSE = 5
const AFTER = settings.quick ? 3 : 4
/** Items read at random: many more than the memory tier holds (1,000 by default), with a short TTL, so reads keep missing. */
const ITEMS = 10_000
const ITEM_TTL = '2s'
const STORE_TIMEOUT_MS = 100
const QUERY_MS = 2
/**
 * What a request may take past the store's budget and the query during the pause: timers firing late and the
 * event loops of client and server on a loaded two-core machine (client, server and Redis share it).
 */
const ALLOWANCE_MS = 20
/** Requests sent this long after the pause began may still pay a budget with the breaker (it opens after 3 of them). */
const FIRST_BUDGETS_MS = 2 * STORE_TIMEOUT_MS
/** Throughput per bucket is back when it reaches this share of the level before the pause. */
const RECOVERED = 0.9
/** What recovery may take: the cache refilling (every item's TTL ran out during the pause, and the query is bounded by its pool). */
const REFILL_MS = 2000
/**
 * With the breaker, the first probe after SIGCONT waits for the rest of its cool-down (the default 1 s): Redis is
 * used again at most this much later.
 */
const COOL_DOWN_MS = 1000
const BUCKET_MS = 100
/** The first buckets of a run, while autocannon opens its connections, are left out of the level before the pause. */
const RAMP_MS = 500

export const servers: ServerFactories = {
  async items (params) {
    const db = new SimulatedDatabase(QUERY_MS)
    const app = Fastify()
    await app.register(appCache, {
      store: params.url as `redis://${string}`, prefix: 'items:', ttl: ITEM_TTL, timeout: STORE_TIMEOUT_MS, ...(params.breaker === 'off' ? { breaker: false } : {})
    })
    app.get<{ Params: { id: string } }>('/item/:id', async (request) => {
      const id = Number(request.params.id)
      return await app.appCache.getOrLoad('item:' + id, () => db.query(() => ({ id, name: `Item ${id}`, price: 5 + (id % 97) })))
    })
    return app
  }
}

const load: HttpLoad = { path: '/item/0', paths: () => `/item/${Math.floor(Math.random() * ITEMS)}`, connections: 20 }

interface Round {
  failed: number
  /** p99 latency of the requests sent while Redis was paused, ms. */
  pauseP99: number
  /** The same, of the requests sent after the first budgets of the pause. */
  settledP99: number
  pauseP50: number
  beforeP99: number
  /** Responses per bucket before the pause (median bucket) and during it (mean). */
  beforeLevel: number
  pauseLevel: number
  /** Responses in the first bucket after SIGCONT. */
  firstAfter: number
  /** From SIGCONT to the end of the first bucket back at `RECOVERED` of the level before; undefined if none was. */
  recovery: number | undefined
}

/** Responses per `BUCKET_MS` from `from` on (ms of the run), `count` buckets. */
function buckets (timeline: Timeline<string>, from: number, count: number): number[] {
  const counts = new Array<number>(count).fill(0)
  for (const at of timeline.at) {
    const bucket = Math.floor((at - from) / BUCKET_MS)
    if (bucket >= 0 && bucket < count) counts[bucket] = (counts[bucket] as number) + 1
  }
  return counts
}

/** Latencies of the requests sent between `from` and `to` (ms of the run). */
function sentBetween (timeline: Timeline<string>, from: number, to: number): number[] {
  return timeline.latency.filter((latency, i) => {
    const sent = (timeline.at[i] as number) - latency
    return sent >= from && sent < to
  })
}

function analyse (timeline: Timeline<'pause' | 'resume'>): Round {
  const { pause, resume } = timeline.marks
  const before = buckets(timeline, RAMP_MS, Math.floor((pause - RAMP_MS) / BUCKET_MS))
  const beforeLevel = spread(before).median
  const during = buckets(timeline, pause, Math.floor((resume - pause) / BUCKET_MS))
  const after = buckets(timeline, resume, Math.floor((AFTER * 1000) / BUCKET_MS))
  const back = after.findIndex((count) => count >= RECOVERED * beforeLevel)
  const paused = sentBetween(timeline, pause, resume)
  return {
    failed: timeline.non2xx + timeline.errors,
    pauseP99: percentile(paused, 99),
    settledP99: percentile(sentBetween(timeline, pause + FIRST_BUDGETS_MS, resume), 99),
    pauseP50: percentile(paused, 50),
    beforeP99: percentile(sentBetween(timeline, RAMP_MS, pause), 99),
    beforeLevel,
    pauseLevel: during.reduce((sum, count) => sum + count, 0) / during.length,
    firstAfter: after[0] ?? 0,
    recovery: back === -1 ? undefined : (back + 1) * BUCKET_MS
  }
}

/** One round: a fresh redis-server and a fresh app, warmed up, then the run with the pause in its middle. */
async function round (breaker: boolean): Promise<Round> {
  let redis: RedisServer | undefined
  let server: ServerHandle | undefined
  try {
    redis = await startRedisServer()
    const paused = redis
    server = await startServer(fileURLToPath(import.meta.url), 'items', { url: redis.url, breaker: breaker ? 'on' : 'off' })
    await measureHttp(server, load, settings.warmupSeconds)
    const timeline = await recordTimeline(server, load, BEFORE + PAUSE + AFTER, {
      pause: { at: BEFORE * 1000, run: () => { paused.pause() } },
      resume: { at: (BEFORE + PAUSE) * 1000, run: () => { paused.resume() } }
    })
    return analyse(timeline)
  } finally {
    await server?.stop()
    await redis?.stop()
  }
}

const WITH = 'appCache L1+Redis, breaker (default)'
const WITHOUT = 'appCache L1+Redis, breaker: false'

export const redisDown: Scenario = {
  name: 'redis-down',
  async run () {
    const runs = { [WITH]: [] as Round[], [WITHOUT]: [] as Round[] }
    // The two contenders alternate, the first of each pair swapping, so that the machine's drift falls on both.
    for (let i = 0; i < ROUNDS; i++) {
      for (const breaker of i % 2 === 0 ? [true, false] : [false, true]) runs[breaker ? WITH : WITHOUT].push(await round(breaker))
    }
    const setting = `appCache on its own redis-server (default l1, timeout ${STORE_TIMEOUT_MS}ms, ttl ${ITEM_TTL}), ` +
      `${ITEMS.toLocaleString('en')} items at random, ${QUERY_MS} ms query (pool of 10), ${load.connections} connections, ` +
      `Redis paused (SIGSTOP) ${PAUSE} s after ${BEFORE} s`
    const rows: Result[] = []
    for (const [contender, rounds] of Object.entries(runs)) {
      const median = (figure: (r: Round) => number): string => spread(rounds.map(figure)).median.toFixed(0)
      const recovered = rounds.flatMap((r) => r.recovery === undefined ? [] : [r.recovery])
      rows.push(result({
        scenario: 'redis-down',
        measure: `${setting}: failed responses (non-2xx, errors, timeouts) in a round, before, during and after the pause`,
        contenders: [contender],
        unit: 'responses',
        ...spread(rounds.map((r) => r.failed)),
        rounds: rounds.length,
        target: { op: '=', value: 0, of: 'max' },
        context: `${rounds.reduce((sum, r) => sum + r.failed, 0)} failed in all ${rounds.length} rounds`
      }))
      rows.push(contender === WITH
        ? result({
          scenario: 'redis-down',
          measure: `same: p99 latency of the requests sent while Redis was paused, after its first ${FIRST_BUDGETS_MS} ms (target: query ${QUERY_MS} + ${ALLOWANCE_MS} ms allowance, the loader's own latency)`,
          contenders: [contender],
          unit: 'ms',
          ...spread(rounds.map((r) => r.settledP99)),
          rounds: rounds.length,
          target: { op: '<', value: QUERY_MS + ALLOWANCE_MS },
          context: `p99 of every request sent during the pause ${median((r) => r.pauseP99)} ms (the first budgets), p50 ${median((r) => r.pauseP50)} ms; p99 before it ${median((r) => r.beforeP99)} ms`
        })
        : result({
          scenario: 'redis-down',
          measure: `same: p99 latency of the requests sent while Redis was paused (target: timeout ${STORE_TIMEOUT_MS} + query ${QUERY_MS} + ${ALLOWANCE_MS} ms allowance)`,
          contenders: [contender],
          unit: 'ms',
          ...spread(rounds.map((r) => r.pauseP99)),
          rounds: rounds.length,
          target: { op: '<', value: STORE_TIMEOUT_MS + QUERY_MS + ALLOWANCE_MS },
          context: `after the first ${FIRST_BUDGETS_MS} ms too: ${median((r) => r.settledP99)} ms; p50 during the pause ${median((r) => r.pauseP50)} ms; p99 before it ${median((r) => r.beforeP99)} ms`
        }))
      rows.push(result({
        scenario: 'redis-down',
        measure: `same: recovery after SIGCONT, until a ${BUCKET_MS} ms bucket serves ≥ ${RECOVERED * 100} % of the median bucket before the pause ` +
          `(target: ${REFILL_MS} ms to refill the cache${contender === WITH ? ` + the breaker's ${COOL_DOWN_MS} ms cool-down` : ''})`,
        contenders: [contender],
        unit: 'ms',
        // A round that never recovered within the run counts as the whole run after the pause, and is said so.
        ...spread(rounds.map((r) => r.recovery ?? AFTER * 1000)),
        rounds: rounds.length,
        target: { op: '<=', value: REFILL_MS + (contender === WITH ? COOL_DOWN_MS : 0) },
        context: `responses per ${BUCKET_MS} ms: ${median((r) => r.beforeLevel)} before the pause, ${median((r) => r.pauseLevel)} during it, ` +
          `${median((r) => r.firstAfter)} in the first bucket after it (every item's TTL ran out during the pause); ` +
          `${rounds.length - recovered.length} of ${rounds.length} rounds not recovered within ${AFTER} s`
      }))
    }
    return rows
  }
}
