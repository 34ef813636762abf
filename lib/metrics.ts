import { LOAD_BUCKETS, type LevelStats } from './stats.js'

/**
 * What the series need of a Prometheus registry: prom-client 15's `Registry` and the `@platformatic/prom-client`
 * fork's (the one `fastify-metrics` 14 uses) both fit. A series is an object the registry calls at scrape time
 * (`get()`), so nothing of either library is loaded by this package and a request pays nothing for metrics.
 */
export interface MetricsRegistry {
  registerMetric (metric: never): void
  removeSingleMetric (name: string): void
}

type Labels = Record<string, string | number>
interface Sample { value: number, labels: Labels, metricName?: string }

/** A series in the shape prom-client's registries read: `get()` answers its samples when scraped. */
interface Series {
  name: string
  readonly help: string
  readonly type: 'counter' | 'gauge' | 'histogram'
  readonly aggregator: 'sum'
  get (): { name: string, help: string, type: string, aggregator: 'sum', values: Sample[] }
  /** `registry.resetMetrics()`: the figures are the levels' own, so there is nothing to reset here. */
  reset (): void
}

/** Every registry's series, by prefix. */
const exposed = new WeakMap<MetricsRegistry, Map<string, CacheMetrics>>()

/** A level as the series label it, with its counters. */
interface Member { level: string, stats: LevelStats }

/**
 * The series of every level registered on one registry under one prefix, read from the levels' stats when the
 * registry is scraped. Levels of several apps sharing a registry (prom-client's default one) add up under their
 * `level` label; the series leave the registry with the last level.
 */
export class CacheMetrics {
  /** The series of `prefix` on `registry`, registered there on first use. */
  static of (registry: MetricsRegistry, prefix: string): CacheMetrics {
    let byPrefix = exposed.get(registry)
    if (byPrefix === undefined) exposed.set(registry, byPrefix = new Map())
    let metrics = byPrefix.get(prefix)
    if (metrics === undefined) byPrefix.set(prefix, metrics = new CacheMetrics(registry, prefix))
    return metrics
  }

  private readonly members = new Set<Member>()
  private readonly series: Series[]

  private constructor (private readonly registry: MetricsRegistry, private readonly prefix: string) {
    const perLevel = (pick: (stats: LevelStats) => number): Sample[] =>
      this.levels().map(([level, all]) => ({ value: sum(all, pick), labels: { level } }))
    this.series = [
      series(prefix + 'requests_total', 'Lookups by level and result', 'counter', () => this.levels().flatMap(([level, all]) => [
        // A stale hit counts among the hits in the stats; here the three results are apart.
        { value: sum(all, (s) => s.hits - s.staleServed), labels: { level, result: 'hit' } },
        { value: sum(all, (s) => s.misses), labels: { level, result: 'miss' } },
        { value: sum(all, (s) => s.staleServed), labels: { level, result: 'stale' } }
      ])),
      series(prefix + 'loads_total', 'Loads by level and outcome (a batch loader call counts once per key)', 'counter', () => this.levels().flatMap(([level, all]) => [
        { value: sum(all, (s) => s.loads - s.loadErrors), labels: { level, outcome: 'ok' } },
        { value: sum(all, (s) => s.loadErrors), labels: { level, outcome: 'error' } }
      ])),
      series(prefix + 'load_duration_seconds', 'Duration of loads, in seconds (a batch loader call once per key)', 'histogram', () => this.levels().flatMap(([level, all]) => histogram(prefix + 'load_duration_seconds', level, all))),
      series(prefix + 'evictions_total', 'Entries pushed out by a size bound before their time', 'counter', () => perLevel((s) => s.evictions)),
      series(prefix + 'entries', 'Entries held in this process', 'gauge', () => perLevel((s) => s.snapshot().size)),
      series(prefix + 'store_errors_total', 'Store operations that failed or ran out of time', 'counter', () => perLevel((s) => s.storeErrors)),
      series(prefix + 'route_uncached_total', 'Route caching: requests not answered from the cache and responses not stored, by reason', 'counter', () => {
        const counts = new Map<string, number>()
        for (const { stats } of this.members) for (const [reason, count] of Object.entries(stats.reasons ?? {})) counts.set(reason, (counts.get(reason) ?? 0) + count)
        return [...counts].map(([reason, value]) => ({ value, labels: { reason } }))
      }),
      series(prefix + 'tags_unknown_total', 'Tagged entries loaded again because the tag versions were unknown', 'counter', () => perLevel((s) => s.tagsUnknown)),
      series(prefix + 'bus_messages_total', 'Invalidation messages published to and heard from other instances', 'counter', () => {
        const all = [...this.members].map((member) => member.stats)
        return [
          { value: sum(all, (s) => s.bus?.sent ?? 0), labels: { direction: 'sent' } },
          { value: sum(all, (s) => s.bus?.received ?? 0), labels: { direction: 'received' } }
        ]
      })
    ]
    const registered: Series[] = []
    try {
      for (const one of this.series) {
        registry.registerMetric(one as never)
        registered.push(one)
      }
    } catch (error) {
      // A name the registry holds already: leave the registry as it was.
      for (const one of registered) registry.removeSingleMetric(one.name)
      throw error
    }
  }

  /** Exposes `stats` under `level` (once, however often it is added); the returned function takes it out again. */
  add (level: string, stats: LevelStats): () => void {
    for (const member of this.members) if (member.stats === stats) return () => {}
    const member = { level, stats }
    this.members.add(member)
    return () => {
      this.members.delete(member)
      if (this.members.size > 0) return
      for (const one of this.series) this.registry.removeSingleMetric(one.name)
      exposed.get(this.registry)?.delete(this.prefix)
    }
  }

  /** The members grouped by level, in the order levels were added. */
  private levels (): Array<[string, LevelStats[]]> {
    const grouped = new Map<string, LevelStats[]>()
    for (const { level, stats } of this.members) grouped.set(level, [...(grouped.get(level) ?? []), stats])
    return [...grouped]
  }
}

function series (name: string, help: string, type: Series['type'], values: () => Sample[]): Series {
  return {
    name,
    help,
    type,
    aggregator: 'sum',
    get () { return { name: this.name, help, type, aggregator: 'sum', values: values() } },
    reset () {}
  }
}

/** The samples of one level's load-duration histogram: cumulative buckets, then the sum and the count. */
function histogram (name: string, level: string, all: LevelStats[]): Sample[] {
  const samples: Sample[] = []
  let cumulative = 0
  for (let bucket = 0; bucket <= LOAD_BUCKETS.length; bucket++) {
    cumulative += sum(all, (s) => s.loadBuckets[bucket] as number)
    samples.push({ metricName: name + '_bucket', value: cumulative, labels: { le: bucket < LOAD_BUCKETS.length ? LOAD_BUCKETS[bucket] as number : '+Inf', level } })
  }
  samples.push({ metricName: name + '_sum', value: sum(all, (s) => s.loadSeconds), labels: { level } })
  samples.push({ metricName: name + '_count', value: cumulative, labels: { level } })
  return samples
}

function sum (all: LevelStats[], pick: (stats: LevelStats) => number): number {
  let total = 0
  for (const stats of all) total += pick(stats)
  return total
}
