// 11. Tags: what they add to a hit, and what invalidating one costs with few and with many entries tagged.
import { fileURLToPath } from 'node:url'
import { Bench } from 'tinybench'
import { runTask, type TaskFunctions } from '../harness/children.js'
import { result, type Result } from '../harness/results.js'
import { pairedRatios, spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { AppCache, MemoryStore } from '../harness/package.js'
import { collectGarbage } from '../harness/heap.js'

/** Hits per timed call: a single hit is shorter than the timer's own cost. */
const BATCH = 100
const KEYS = Array.from({ length: BATCH }, (_, i) => `product:${i}`)
/**
 * invalidateTag calls timed together: one is shorter than the timer's own noise, and 10,000 (about 2 ms) read from
 * 0.06 to 6.3 times each other's figure in one run, as a pause of the process fell in them or not.
 */
const INVALIDATIONS = 200_000
const neverCalled = async (): Promise<never> => { throw new Error('a hit must not call the loader') }
export let sink: unknown

function level (max: number): InstanceType<typeof AppCache> {
  return new AppCache({ store: new MemoryStore({ max }), ttl: 0, log: { warn: () => {} } })
}

interface Figures {
  /** ns per hit, one figure per round. */
  plain: number[]
  tagged: number[]
  /** µs per invalidateTag (the mean of many), with 10 and with 100,000 entries tagged. */
  few: number[]
  many: number[]
}

async function measure (): Promise<Figures> {
  const plain = level(1000)
  const tagged = level(1000)
  for (const [i, key] of KEYS.entries()) {
    await plain.set(key, { id: i })
    await tagged.set(key, { id: i }, { tags: ['catalog', `product:${i}`, `brand:${i % 7}`] })
  }
  const hits = (cache: InstanceType<typeof AppCache>) => async () => { for (const key of KEYS) sink = await cache.getOrLoad(key, neverCalled) }
  const figures: Figures = { plain: [], tagged: [], few: [], many: [] }
  for (let round = 0; round < settings.rounds; round++) {
    const bench = new Bench({ time: settings.microMs, warmupTime: 100 })
    bench.add('plain', hits(plain)).add('tagged', hits(tagged))
    await bench.run()
    for (const task of bench.tasks) figures[task.name as 'plain' | 'tagged'].push((task.result?.latency.mean ?? NaN) * 1e6 / BATCH)
    // In turn, the one timed first changing each round.
    const sizes = [[10, figures.few], [100_000, figures.many]] as const
    for (const [count, into] of round % 2 === 0 ? sizes : [...sizes].reverse()) {
      const cache = level(count)
      for (let i = 0; i < count; i++) await cache.set(`k${i}`, i, { tags: ['catalog'] })
      // Warmed up, and what filling 100,000 entries left behind collected now, not in the timed calls: a round's figure
      // read 0.30 to 13 times the few's in one run (EPYC VM, 2026-12-07) as collections fell in the timed calls or not.
      for (let i = 0; i < INVALIDATIONS / 20; i++) await cache.invalidateTag('catalog')
      collectGarbage()
      const started = performance.now()
      for (let i = 0; i < INVALIDATIONS; i++) await cache.invalidateTag('catalog')
      into.push((performance.now() - started) * 1000 / INVALIDATIONS)
      if (await cache.get('k0') !== undefined) throw new Error('the tagged entries must be gone')
    }
  }
  return figures
}

export const tasks: TaskFunctions = { measure }

export const tags: Scenario = {
  name: 'tags',
  async run () {
    const figures = await runTask<Figures>(fileURLToPath(import.meta.url), 'measure', ['--expose-gc'])
    const rounds = figures.plain.length
    const µs = (values: number[]): string => `${spread(values).median.toFixed(2)} µs`
    const rows: Result[] = [
      result({
        scenario: 'tags',
        measure: 'appCache.getOrLoad hit (memory) of an entry with 3 tags vs one without',
        contenders: ['3 tags', 'no tags'],
        unit: 'time ratio (tagged ÷ plain)',
        ...spread(pairedRatios(figures.tagged, figures.plain)),
        rounds,
        target: { op: '<=', value: 1.3 },
        context: `${spread(figures.tagged).median.toFixed(0)} ns vs ${spread(figures.plain).median.toFixed(0)} ns per hit`
      }),
      result({
        scenario: 'tags',
        measure: 'appCache.invalidateTag with 100,000 entries tagged vs with 10 (memory): the cost does not grow with them',
        contenders: ['100,000 tagged', '10 tagged'],
        unit: 'time ratio',
        ...spread(pairedRatios(figures.many, figures.few)),
        rounds,
        target: { op: '<=', value: 1.5 },
        context: `one invalidateTag: ${µs(figures.few)} with 10 entries tagged, ${µs(figures.many)} with 100,000`
      })
    ]
    return rows
  }
}
