// 13. How long another instance may serve the old value after `appCache.invalidate()` returned: two app processes
// sharing Redis, each with the default memory tier, both read without pause; an invalidation on A, round after round,
// and every read of B stamped with when B began it. The stale window of a memory tier, as bentocache and FusionCache
// also have it; and, every other round, `invalidate(key, { wait: true })`, which must leave none.
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { startServer, type ServerFactories, type ServerHandle } from '../harness/children.js'
import { getJson } from '../harness/http.js'
import { SHARED_REDIS, namespaceFor, sweepAndReport } from '../harness/redis.js'
import { result, type Result } from '../harness/results.js'
import { percentile, spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { appCache } from '../harness/package.js'

/** Rounds of each kind: without `wait` and with it, one after the other. */
const ROUNDS = settings.quick ? 40 : 300
/** Readers of each instance, each sending its next request as soon as the last is answered: the instances' load. */
const READERS = 10
/** How long reads go on after an invalidation before its round is judged: many times any window seen. */
const SETTLE_MS = 40

/** Milliseconds on CLOCK_MONOTONIC, which on Linux is one clock for every process of the machine; µs precision. */
function monotonic (): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000
}

/** The "database": one Redis key the scenario writes before each invalidation, outside the cache's keys. */
const priceKey = (prefix: string): string => prefix + 'db:price'

/** A read of B: the price it served and when B began the read. */
interface Read { price: number, started: number }

export const servers: ServerFactories = {
  /** One instance: `appCache` on the shared Redis under `params.prefix`, default memory tier and bus. */
  async instance (params) {
    const prefix = params.prefix as string
    const db = new Redis(SHARED_REDIS)
    const app = Fastify()
    await app.register(appCache, { store: SHARED_REDIS, prefix })
    app.get('/price', async () => {
      const started = monotonic()
      const price = await app.appCache.getOrLoad('price', async () => Number(await db.get(priceKey(prefix))))
      return { price, started }
    })
    app.post<{ Querystring: { wait?: string } }>('/invalidate', async (request) => {
      const called = monotonic()
      await app.appCache.invalidate('price', { wait: request.query.wait === 'true' })
      const returned = monotonic()
      return { returned, took: returned - called }
    })
    // Empties the prefix (the price key lives under it) once the scenario is done.
    app.addHook('preClose', async () => { await app.appCache.clear() })
    app.addHook('onClose', async () => { await db.quit() })
    return app
  }
}

interface Round {
  /** From the return of `invalidate` on A to the start of the last read of B that still served the old price; 0: none. */
  window: number
  /** Reads of B begun after the return that served the old price. */
  stale: number
  /** How long `invalidate` took on A. */
  took: number
}

interface Measured {
  /** The rounds of each kind, without `wait` and with it. */
  plain: Round[]
  waiting: Round[]
  /** Rounds left out: B was not holding the old value when A invalidated it. */
  unarmed: number
  readsPerSecond: number
}

async function rounds (): Promise<Measured> {
  const prefix = namespaceFor('invalidation-window')
  const db = new Redis(SHARED_REDIS)
  const instances: ServerHandle[] = []
  const done = new AbortController()
  const readers: Array<Promise<void>> = []
  try {
    await db.set(priceKey(prefix), '0')
    const module = fileURLToPath(import.meta.url)
    for (let i = 0; i < 2; i++) instances.push(await startServer(module, 'instance', { prefix }))
    const [a, b] = instances as [ServerHandle, ServerHandle]
    const reads: Read[] = []
    let served = 0
    for (let i = 0; i < READERS; i++) {
      readers.push((async () => { while (!done.signal.aborted) await getJson<Read>(a.url + '/price') })())
      readers.push((async () => {
        while (!done.signal.aborted) {
          reads.push(await getJson<Read>(b.url + '/price'))
          served++
        }
      })())
    }
    await sleep(settings.warmupSeconds * 1000)
    const measured: Measured = { plain: [], waiting: [], unarmed: 0, readsPerSecond: 0 }
    const started = performance.now()
    const servedBefore = served
    /** Where the reads of the round before began in `reads`. */
    let previous = 0
    for (let round = 1; round <= 2 * ROUNDS; round++) {
      const wait = round % 2 === 0
      await db.set(priceKey(prefix), String(round))
      const from = reads.length
      const response = await fetch(`${a.url}/invalidate?wait=${String(wait)}`, { method: 'POST' })
      const { returned, took } = await response.json() as { returned: number, took: number }
      // A round counts only if B was serving the previous price when A invalidated it.
      const before = reads.slice(previous).filter((read) => read.started < returned - took).sort((x, y) => x.started - y.started)
      previous = from
      await sleep(SETTLE_MS)
      if (before.at(-1)?.price !== round - 1) {
        measured.unarmed++
        continue
      }
      const stale = reads.slice(from).filter((read) => read.started > returned && read.price < round)
      const last = Math.max(returned, ...stale.map((read) => read.started))
      measured[wait ? 'waiting' : 'plain'].push({ window: last - returned, stale: stale.length, took })
    }
    measured.readsPerSecond = (served - servedBefore) / ((performance.now() - started) / 1000)
    return measured
  } finally {
    done.abort()
    await Promise.allSettled(readers)
    await Promise.all(instances.map((instance) => instance.stop()))
    db.disconnect()
  }
}

function figures (measured: Measured): Result[] {
  const { plain, waiting } = measured
  const windows = plain.map((r) => r.window)
  /** The windows of the rounds where B did serve the old value after the return. */
  const opened = plain.filter((r) => r.stale > 0).map((r) => r.window)
  const ms = (values: readonly number[], p: number): string => percentile(values, p).toFixed(2)
  const stale = (rounds: readonly Round[]): string =>
    `in ${rounds.filter((r) => r.stale > 0).length} of ${rounds.length} rounds (${rounds.reduce((sum, r) => sum + r.stale, 0)} reads)`
  const took = (rounds: readonly Round[]): string => `p50 ${ms(rounds.map((r) => r.took), 50)} ms, p99 ${ms(rounds.map((r) => r.took), 99)} ms`
  const setting = `2 instances (child processes) sharing Redis, default memory tier, ${READERS} readers per instance ` +
    'without pause, an invalidation on A every 40 ms or so'
  const load = `B served ${measured.readsPerSecond.toFixed(0)} reads/s; ${measured.unarmed} rounds left out (B was not holding the old value)`
  return [
    result({
      scenario: 'invalidation-window',
      measure: `${setting}: time from the return of appCache.invalidate() on A to the start of the last read of B that served the old value (0: none)`,
      contenders: ['appCache invalidate()'],
      unit: 'ms',
      ...spread(windows),
      rounds: windows.length,
      target: undefined,
      context: `p50 ${ms(windows, 50)} ms, p99 ${ms(windows, 99)} ms; old value served after the return ${stale(plain)}` +
        (opened.length === 0 ? '; ' : `, in those p50 ${ms(opened, 50)} ms; `) +
        `invalidate() took ${took(plain)}; ${load}`
    }),
    result({
      scenario: 'invalidation-window',
      measure: 'same, invalidate(key, { wait: true }) in the rounds between: reads of B begun after it returned that served the old value',
      contenders: ['appCache invalidate({ wait: true })'],
      unit: 'reads',
      ...spread(waiting.map((r) => r.stale)),
      rounds: waiting.length,
      target: { op: '=', value: 0, of: 'max' },
      context: `old value served after the return ${stale(waiting)}; invalidate() took ${took(waiting)}`
    })
  ]
}

export const invalidationWindow: Scenario = {
  name: 'invalidation-window',
  async run () {
    try {
      return figures(await rounds())
    } finally {
      await sweepAndReport('invalidation-window')
    }
  }
}
