import type { FastifyInstance } from 'fastify'
import { CacheMetrics, type MetricsRegistry } from '../lib/metrics.js'
import { messageOf } from '../lib/errors.js'
import { readOptions, type OptionReader } from '../lib/options.js'
import type { LevelStats } from '../lib/stats.js'

export type { MetricsRegistry }

/** The `metrics` option of `multiCache` and of each level plugin. */
export interface MetricsOptions {
  /** A prom-client 15 `Registry` (`register` for the default one), or `@platformatic/prom-client`'s. */
  registry: MetricsRegistry
  /** Replaces `multicache_` at the start of every series name. Default `'multicache_'`. */
  prefix?: string
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/

/**
 * Reads a plugin's `metrics` option and, when it is given, exposes `levels` on its registry until the app closes.
 * Figures are read from the levels' stats at scrape time: this adds nothing to any request.
 */
export function exposeMetrics (fastify: FastifyInstance, read: OptionReader, option: unknown, levels: ReadonlyArray<[string, LevelStats]>): void {
  if (option === undefined) return
  if (typeof option !== 'object' || option === null || Array.isArray(option)) read.fail('metrics', 'must be an object { registry, prefix? }')
  const metrics = readOptions(`${read.name} (metrics)`, option)
  metrics.only(['registry', 'prefix'])
  const { registry, prefix = 'multicache_' } = option as Partial<MetricsOptions>
  if (typeof registry?.registerMetric !== 'function' || typeof registry.removeSingleMetric !== 'function') {
    metrics.fail('registry', "must be a prom-client Registry (prom-client 15 or @platformatic/prom-client), such as prom-client's `register`")
  }
  if (typeof prefix !== 'string' || !NAME.test(prefix)) metrics.fail('prefix', 'must be the start of a Prometheus metric name (letters, digits, _ and :, not starting with a digit)')
  let series: CacheMetrics
  try {
    series = CacheMetrics.of(registry as MetricsRegistry, prefix)
  } catch (error) {
    metrics.fail('prefix', `names series the registry holds already (${messageOf(error)})`)
  }
  const removals = levels.map(([level, stats]) => series.add(level, stats))
  fastify.addHook('onClose', async () => { for (const remove of removals) remove() })
}
