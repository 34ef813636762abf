import type { AdviceFinding, Advisor } from './advisor.js'
import type { ResponseCache } from './response-cache.js'
import type { AppCache } from './scopes/application.js'
import type { RequestLevel } from './scopes/request.js'
import type { SessionLevel } from './scopes/session.js'
import type { LevelStatsSnapshot } from './stats.js'

/** `fastify.multiCache.stats()`: one entry per registered level. */
export interface MultiCacheStats {
  request?: LevelStatsSnapshot
  session?: LevelStatsSnapshot
  app?: LevelStatsSnapshot
  /**
   * Route response caching at the application level: `hits`, `misses` (eligible requests that ran the handler),
   * `evictions`, `storeErrors` (session-level pages that could not be stored among them) and `size` (keys held);
   * `loads` and `loadErrors` stay 0.
   */
  route?: LevelStatsSnapshot
}

/**
 * The levels registered on one app, as plain objects. Each level plugin adds itself, so stats (and later metrics
 * and the admin page) have one place to read from, whichever levels an app adopted.
 */
export class CacheLevels {
  request: RequestLevel | undefined
  session: SessionLevel | undefined
  app: AppCache | undefined
  route: ResponseCache | undefined
  /** The level advisor, when `multiCache` was given `advisor`: what the levels' usage is fed to. */
  advisor: Advisor | undefined
  /** Where the levels keep their data in shared backends (see `claim`). */
  private readonly namespaces: Array<{ backend: unknown, prefix: string, level: string }> = []

  /**
   * Records that `level` keeps its keys under `prefix` in `backend`, unless a level of this app already keeps keys
   * under a prefix that contains it or that it contains: returns that level then. Two levels in one namespace would
   * read each other's keys, and either's `clear()` would delete both.
   */
  claim (backend: unknown, prefix: string, level: string): string | undefined {
    const holder = this.namespaces.find((taken) => taken.backend === backend && (taken.prefix.startsWith(prefix) || prefix.startsWith(taken.prefix)))
    if (holder !== undefined) return holder.level
    this.namespaces.push({ backend, prefix, level })
    return undefined
  }

  /**
   * What the advisor found so far: one finding per level, key pattern and kind, each with the counts that led to it.
   * An empty list when the advisor is off (`advisor: false`, the default), as when it found nothing.
   */
  advice (): AdviceFinding[] {
    return this.advisor?.advice() ?? []
  }

  stats (): MultiCacheStats {
    const stats: MultiCacheStats = {}
    if (this.request !== undefined) stats.request = this.request.stats.snapshot()
    if (this.session !== undefined) stats.session = this.session.stats.snapshot()
    if (this.app !== undefined) stats.app = this.app.stats.snapshot()
    if (this.route !== undefined) stats.route = this.route.stats.snapshot()
    return stats
  }
}
