import type { BreakerState } from './breaker.js'

/** What one level reports through `fastify.multiCache.stats()`. */
export interface LevelStatsSnapshot {
  /** Lookups answered from this level. */
  hits: number
  /** Lookups this level could not answer. */
  misses: number
  /** Loader calls made on behalf of this level. */
  loads: number
  /** Loader calls that threw or rejected (nothing was cached). */
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
  /** Entries held now. */
  size: number
  /** Session level with the memory store: `evictions` split by the kind of session pushed out. */
  evictionsByKind?: { anonymous: number, authenticated: number }
  /** With a shared store: its circuit breaker's state (`'open'`: operations skip the store). */
  breaker?: BreakerState
}

/**
 * The counters of one level, kept in one place so that every reader (the stats decorator today, metrics and
 * the admin page later) sees the same numbers. Counting is a field increment: it costs nothing on the hot path.
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

  /** Evictions of sessions that were never regenerated (`evictions` counts them too). */
  anonymousEvictions = 0
  /** The circuit breaker of the level's shared store, when it has one. */
  breaker: { readonly state: BreakerState } | undefined

  constructor (private readonly size: () => number, private readonly byKind = false) {}

  snapshot (): LevelStatsSnapshot {
    const split = this.byKind ? { evictionsByKind: { anonymous: this.anonymousEvictions, authenticated: this.evictions - this.anonymousEvictions } } : {}
    return {
      ...split,
      ...(this.breaker === undefined ? {} : { breaker: this.breaker.state }),
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
      size: this.size()
    }
  }
}

/** Runs a loader on behalf of a level, counting the call and its failure. */
export async function countLoad<T> (stats: LevelStats, loader: () => T | PromiseLike<T>): Promise<T> {
  stats.loads++
  try {
    return await loader()
  } catch (error) {
    stats.loadErrors++
    throw error
  }
}
