import { LRUCache } from 'lru-cache'
import { deleteEntry, disposeReason } from './lru.js'
import type { Logger } from './burst-log.js'
import { InvalidOptionError, describe } from './errors.js'
import type { HeaderMap } from './http/headers.js'
import { keyParts } from './http/request.js'
import { observe } from './events.js'
import { LevelLog } from './level-log.js'
import type { CachedResponse } from './http/response.js'
import type { RouteReason } from './http/cache-status.js'
import { findVariant, sizeOf, withVariant, type StoredVariants } from './http/variants.js'
import { LevelStats } from './stats.js'

/**
 * What a key holds: its one response, when the route varies on nothing (most do), or its variants. A response held
 * as itself is the one object a hit reads beside the cache's own: three fewer (the variants, their list, the pair) to
 * fetch from far away in a large heap, where a hit among 10^5 keys spent most of its time on them.
 */
type Held = CachedResponse | StoredVariants

function isVariants (held: Held): held is StoredVariants {
  return 'variants' in held
}

function variantsOf (held: Held): StoredVariants {
  return isVariants(held) ? held : { vary: [], variants: [['', held]] }
}

export interface ResponseCacheOptions {
  /** Most keys held. */
  max: number
  /** Most bytes held, keys and the objects around the bodies included (see `sizeOf`). */
  maxSize: number
  /** Most variants of one key (one per combination of the values of the headers its `Vary` names). */
  maxVariants: number
  /** Where misses and invalidations (debug) and store faults (warn, once per burst) are reported. */
  log: Logger
  /** false: log lines show a short hash of each key instead of the key. Default true. */
  logKeys?: boolean
}

/**
 * The stored responses of routes cached at the application level, shared by every user. They have a memory bound of
 * their own, in keys and in bytes, apart from the application level's data: pages can never push out a `define`d
 * key, and invented query strings only ever evict other pages. Each instance keeps its own copy, like a reverse
 * proxy's cache.
 */
export class ResponseCache {
  readonly stats: LevelStats
  private readonly lru: LRUCache<string, Held>
  readonly log: LevelLog
  /**
   * For each cached route (by URL), what `invalidate` compares of the target of a key and of the URL it is given: one
   * function per route on that URL (they may differ in constraints and in how they key).
   */
  private readonly resources = new Map<string, Array<(target: string) => string>>()
  /**
   * Bumped by every invalidation: a response whose handler ran before one is not stored after it, so an in-flight
   * miss cannot put back what was just dropped.
   */
  private generation = 0
  /** The stale keys one request is refreshing, with when that request is given up on (it may never answer). */
  private readonly refreshing = new Map<string, number>()

  constructor (readonly options: ResponseCacheOptions) {
    this.stats = new LevelStats(() => this.lru.size)
    this.stats.reasons = {}
    this.log = new LevelLog('routeCache', 'route', options.log, options.logKeys)
    this.lru = new LRUCache<string, Held>({
      max: options.max,
      maxSize: options.maxSize,
      sizeCalculation: (held, key) => sizeOf(variantsOf(held), key),
      disposeAfter: (_value, _key, reason) => { if (disposeReason(reason) === 'evict') this.stats.evictions++ }
    })
  }

  /** Declares a cached route, so that `invalidate` knows its URL and which of its keys name the same resource. */
  addRoute (url: string, resourceOf: (target: string) => string): void {
    const known = this.resources.get(url)
    if (known === undefined) this.resources.set(url, [resourceOf])
    else known.push(resourceOf)
  }

  /** The current generation: pass it back to `store` once the response is known. */
  get since (): number {
    return this.generation
  }

  /**
   * True when the caller may refresh the stale response of `key` (it becomes the one request that runs the handler
   * again), false when another request is doing it. A refresh not done within `patience` ms is given up on.
   */
  refresh (key: string, now: number, patience: number): boolean {
    const until = this.refreshing.get(key)
    if (until !== undefined && until > now) return false
    this.refreshing.set(key, now + patience)
    return true
  }

  /** The refresh of `key` is done, stored or not. */
  refreshed (key: string): void {
    this.refreshing.delete(key)
  }

  /** The stored response for this request's variant, or undefined. */
  find (key: string, headers: HeaderMap, now: number): CachedResponse | undefined {
    const held = this.lru.get(key)
    if (held === undefined) return undefined
    if (!isVariants(held)) return held.expires > now ? held : undefined
    return findVariant(held, headers, now)
  }

  /**
   * Stores `response` as the variant of `headers`, unless an invalidation happened since `since`, or the key with it
   * would not fit in `maxSize`: answers why not, or undefined when it stored it.
   */
  store (key: string, vary: string[], headers: HeaderMap, response: CachedResponse, since: number, now: number): 'invalidated' | 'too-large' | undefined {
    if (since !== this.generation) return 'invalidated'
    const held = this.lru.peek(key)
    const stored = withVariant(held === undefined ? undefined : variantsOf(held), vary, headers, response, this.options.maxVariants, now)
    if (sizeOf(stored, key) > this.options.maxSize) return 'too-large'
    const [only, more] = stored.variants
    this.lru.set(key, stored.vary.length === 0 && more === undefined && only !== undefined ? only[1] : stored)
    return undefined
  }

  /** Counts why a request was not served from the cache or its response not stored, and says so at debug. */
  uncached (reason: RouteReason, route: string, log?: Logger): void {
    const reasons = this.stats.reasons as Partial<Record<RouteReason, number>>
    reasons[reason] = (reasons[reason] ?? 0) + 1
    ;(log ?? this.options.log).debug?.({ cacheLevel: 'route', route, reason }, `routeCache: ${route} not cached (${reason})`)
  }

  /**
   * Drops the stored responses of a route (its URL as declared, with any prefix): all of them, or those of one `url`
   * for every host, method, variant and query (any query may have made an entry of its own), and every spelling of
   * its path (see `pathOf`). For a route with a custom key, `url` is the key. Returns how many keys were dropped.
   */
  invalidate (route: string, url?: string): Promise<number> {
    const op = observe('route', 'invalidate', typeof url === 'string' ? url.split(/[?;#]/, 1)[0] : route, undefined, this)
    if (op === undefined) return this.drop(route, url)
    op.route = route
    return op.promise(async () => await this.drop(route, url))
  }

  private async drop (route: string, url: string | undefined): Promise<number> {
    const resources = this.resources.get(route)
    if (resources === undefined) {
      throw new InvalidOptionError('routeCache.invalidate', 'route', 'must be the URL of a route cached at level \'app\'', describe(route))
    }
    if (url !== undefined && typeof url !== 'string') {
      throw new InvalidOptionError('routeCache.invalidate', 'url', 'must be a string (a path and query)', describe(url))
    }
    this.generation++
    let dropped = 0
    for (const key of [...this.lru.keys()]) {
      const parts = keyParts(key)
      if (parts.route !== route && !parts.route.startsWith(route + ' ')) continue
      if (url !== undefined && !resources.some((resourceOf) => resourceOf(parts.target) === resourceOf(url))) continue
      deleteEntry(this.lru, key)
      dropped++
    }
    this.log.invalidated([url === undefined ? route : `${route} ${url}`])
    return dropped
  }

  /** Counts a store operation that failed or ran out of time, and logs the first of a burst (through `log`). */
  fault (operation: string, error: unknown, log?: Logger): void {
    this.stats.storeErrors++
    this.log.warn({ err: error, operation }, `routeCache: the store failed (${operation}); responses go out uncached until it answers`, log)
  }
}
