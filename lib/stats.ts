import type { RouteReason } from './http/cache-status.js'
import type { BreakerState } from './breaker.js'

/** What one level reports through `fastify.multiCache.stats()`. */
export interface LevelStatsSnapshot {
  /** Lookups answered from this level. */
  hits: number
  /** Lookups this level could not answer. */
  misses: number
  /** Loader calls made on behalf of this level; a batch loader's call counts once per key it was given. */
  loads: number
  /** Loads that threw or rejected (nothing was cached), counted as `loads` are. */
  loadErrors: number
  /** Entries pushed out by a size bound before their time. */
  evictions: number
  /** Store operations that failed or ran out of time; reads among them were answered by the loader. */
  storeErrors: number
  /** Values refused for their size (`maxEntryBytes` of a shared store, `maxBytes` of the memory store). */
  oversized: number
  /** Hits on a value past its ttl, served at once while a new one loads (`staleWhileRevalidate`). */
  staleServed: number
  /** Values past their ttl served in place of a load that failed or took too long (`graceOnError`). */
  graceServed: number
  /** Loads started behind a stale hit. */
  backgroundLoads: number
  /** Calls of `invalidateTag`. */
  tagInvalidations: number
  /**
   * Tagged entries and route responses found but loaded again (or the handler run) because the tag versions were
   * unknown: the shared store could not be read, or its bus was not subscribed. Growing steadily, tagged caching is off.
   */
  tagsUnknown: number
  /** Entries held now. */
  size: number
  /**
   * Application level: entries of `define`d keys held in memory, apart from its size bound (`size` counts them too),
   * so that keys clients choose cannot push them out.
   */
  pinned?: number
  /** Session level with the memory store: `evictions` split by the kind of session pushed out. */
  evictionsByKind?: { anonymous: number, authenticated: number }
  /** With a shared store: its circuit breaker's state (`'open'`: operations skip the store). */
  breaker?: BreakerState
  /**
   * Route caching: requests not answered from the cache (bypassed) and responses not stored, by reason (see
   * `ROUTE_REASONS`); a reason that never happened is absent.
   */
  reasons?: Partial<Record<RouteReason, number>>
}

/**
 * Upper bounds of the load-duration histogram, in seconds: a loader is a query or a call, from a millisecond to
 * seconds. Prometheus' `le` buckets; a last one, unbounded, holds the rest.
 */
export const LOAD_BUCKETS: readonly number[] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * The counters of one level, kept in one place so that every reader (the stats decorator, the Prometheus series,
 * the admin API) sees the same numbers. Counting is a field increment: it costs nothing on the hot path.
 */
export class LevelStats {
  hits = 0
  misses = 0
  loads = 0
  loadErrors = 0
  evictions = 0
  storeErrors = 0
  oversized = 0
  staleServed = 0
  graceServed = 0
  backgroundLoads = 0
  tagInvalidations = 0
  tagsUnknown = 0

  /** Loads per duration bucket (`LOAD_BUCKETS`, then the unbounded one), not cumulative; and their total seconds. */
  readonly loadBuckets: number[] = new Array<number>(LOAD_BUCKETS.length + 1).fill(0)
  loadSeconds = 0

  /** Evictions of sessions that were never regenerated (`evictions` counts them too). */
  anonymousEvictions = 0
  /** The circuit breaker of the level's shared store, when it has one. */
  breaker: { readonly state: BreakerState } | undefined
  /** The invalidation bus of the level's memory tier, when it has one: messages published and heard. */
  bus: { readonly sent: number, readonly received: number } | undefined
  /** Route caching's reasons for not serving or not storing, counted (see `LevelStatsSnapshot.reasons`). */
  reasons: Partial<Record<RouteReason, number>> | undefined
  /** The entries of pinned keys held, where the level pins some (the application level's defined keys). */
  pinned: (() => number) | undefined

  constructor (private readonly size: () => number, private readonly byKind = false) {}

  /** Counts `keys` loads that took `ms` (one call of a batch loader counts once per key), whatever their outcome. */
  timed (ms: number, keys = 1): void {
    const seconds = ms / 1000
    let bucket = 0
    while (bucket < LOAD_BUCKETS.length && seconds > (LOAD_BUCKETS[bucket] as number)) bucket++
    this.loadBuckets[bucket] = (this.loadBuckets[bucket] as number) + keys
    this.loadSeconds += seconds * keys
  }

  snapshot (): LevelStatsSnapshot {
    const split = this.byKind ? { evictionsByKind: { anonymous: this.anonymousEvictions, authenticated: this.evictions - this.anonymousEvictions } } : {}
    return {
      ...split,
      ...(this.breaker === undefined ? {} : { breaker: this.breaker.state }),
      ...(this.reasons === undefined ? {} : { reasons: { ...this.reasons } }),
      ...(this.pinned === undefined ? {} : { pinned: this.pinned() }),
      hits: this.hits,
      misses: this.misses,
      loads: this.loads,
      loadErrors: this.loadErrors,
      evictions: this.evictions,
      storeErrors: this.storeErrors,
      oversized: this.oversized,
      staleServed: this.staleServed,
      graceServed: this.graceServed,
      backgroundLoads: this.backgroundLoads,
      tagInvalidations: this.tagInvalidations,
      tagsUnknown: this.tagsUnknown,
      size: this.size()
    }
  }
}

/**
 * Runs a loader on behalf of a level, counting the call, its failure and its duration, and telling `done` (a log
 * line) how long it took. The clock is read around the loader only, so that a hit never pays for it. A batch loader's
 * call counts once per key it was given, as its misses were counted.
 */
export async function countLoad<T> (stats: LevelStats, loader: () => T | PromiseLike<T>, done?: (ms: number, error?: unknown) => void, keys = 1): Promise<T> {
  stats.loads += keys
  const started = performance.now()
  try {
    const value = await loader()
    const ms = performance.now() - started
    stats.timed(ms, keys)
    done?.(ms)
    return value
  } catch (error) {
    const ms = performance.now() - started
    stats.loadErrors += keys
    stats.timed(ms, keys)
    done?.(ms, error)
    throw error
  }
}
