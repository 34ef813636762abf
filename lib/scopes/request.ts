import type { BatchLoad, BatchResult, BatchValue } from '../batch.js'
import { BatchLoader, type BatchLoaderOptions } from '../batch-loader.js'
import type { Logger } from '../burst-log.js'
import { InvalidOptionError, describe } from '../errors.js'
import { type Defined, KeyRule, assertValue } from '../keys.js'
import { observe, observeLoad, observeRequestLookup, watchRequest, type CacheOperation, type RequestUsage } from '../events.js'
import { LevelLog } from '../level-log.js'
import { SingleFlight } from '../single-flight.js'
import { LevelStats, countLoad } from '../stats.js'
import { promiseOf } from '../store.js'

export interface RequestLevelOptions {
  /** Most entries one request may hold; past it the oldest entry is dropped. */
  maxEntries: number
  /** Longest key taken, in characters. Default 1,024. */
  maxKeyLength?: number
  /** Most keys one `loadMany` of a batch loader takes, and its default `maxBatchSize`. Default 1,000. */
  maxKeysPerCall?: number
  /** Where misses and loads are told, at debug level (the request's logger, when a request gives one). */
  log?: Logger
  /** false: log lines show a short hash of each key instead of the key. Default true. */
  logKeys?: boolean
}

/**
 * What all requests share: the bound and the counters. One per app; a `RequestCache` per request that uses it.
 */
export class RequestLevel {
  readonly stats: LevelStats
  readonly keys: KeyRule
  readonly log: LevelLog | undefined
  /** Entries held by requests that have not finished yet. */
  live = 0

  constructor (readonly options: RequestLevelOptions) {
    this.stats = new LevelStats(() => this.live)
    this.keys = new KeyRule(options.maxKeyLength, options.maxKeysPerCall)
    this.log = options.log === undefined ? undefined : new LevelLog('reqCache', 'request', options.log, options.logKeys)
  }

  /** A new, empty cache for one request; `log`: the request's logger. */
  open (log?: Logger): RequestCache {
    return new RequestCache(this, log)
  }
}

/**
 * Data loaded once and reused while one request is handled. It lives on that request only, so nothing in it is
 * ever seen by another request; it is dropped with the request.
 */
export class RequestCache {
  private readonly entries = new Map<string, unknown>()
  private loads: SingleFlight | undefined
  private loaders: Map<string, BatchLoader<unknown, unknown>> | undefined
  /** The entries count in the level's size until the request ends (see `end()`). */
  private counted = true
  /** Reads per key, in the few requests a consumer of the stream (the advisor) drew as they opened. */
  private readonly usage: RequestUsage | undefined

  constructor (private readonly level: RequestLevel, private readonly log?: Logger) {
    this.usage = watchRequest(level)
  }

  get size (): number {
    return this.entries.size
  }

  get<T = unknown> (key: string): T | undefined {
    const value = this.memo<T>(key)
    // Counted after the lookup: a call one request in 400 makes, taken before it, had every request reload around it
    // what the lookup reads (moved after, the advisor's share of a request's instructions fell from 3.6 % to 1.4 %).
    this.usage?.read(key)
    return value
  }

  /**
   * `get` for the hierarchical lookup's memo (`request.cache`), which keeps a broader level's value for the rest of the
   * request: published as a `get`, but not the app's own use of this level, so the advisor does not count it.
   */
  memo<T = unknown> (key: string): T | undefined {
    const op = observeRequestLookup('get', key, this.level)
    return op === undefined ? this.find(key) : op.sync(() => this.find(key, op))
  }

  private find<T> (key: string, op?: CacheOperation): T | undefined {
    this.level.keys.assert(key)
    const value = this.entries.get(key)
    if (value === undefined) {
      this.missed(key)
      op?.missed()
    } else {
      this.level.stats.hits++
      op?.found()
    }
    return value as T | undefined
  }

  has (key: string): boolean {
    this.level.keys.assert(key)
    return this.entries.has(key)
  }

  set<T> (key: string, value: Defined<T>): this {
    this.memoize(key, value)
    // Last, as in `get`.
    this.usage?.fill(key)
    return this
  }

  /** `set` for the hierarchical lookup's memo: published as a `set`, not counted (see `memo`). */
  memoize<T> (key: string, value: Defined<T>): this {
    const op = observe('request', 'set', key, undefined, this.level)
    return op === undefined ? this.write(key, value) : op.sync(() => this.write(key, value))
  }

  private write (key: string, value: unknown): this {
    this.level.keys.assert(key)
    assertValue(key, value)
    const entries = this.entries
    if (entries.has(key)) {
      entries.delete(key)
    } else {
      this.count(1)
      if (entries.size >= this.level.options.maxEntries) this.evictOldest()
    }
    entries.set(key, value)
    return this
  }

  delete (key: string): boolean {
    const op = observe('request', 'delete', key, undefined, this.level)
    return op === undefined ? this.drop(key) : op.sync(() => this.drop(key))
  }

  private drop (key: string): boolean {
    this.level.keys.assert(key)
    const deleted = this.entries.delete(key)
    if (deleted) this.count(-1)
    return deleted
  }

  /** Drops every entry, and every batch loader with what it remembers. */
  clear (): void {
    const op = observe('request', 'clear', undefined, undefined, this.level)
    if (op === undefined) this.empty()
    else op.sync(() => { this.empty() })
  }

  private empty (): void {
    this.count(-this.entries.size)
    this.entries.clear()
    this.loaders = undefined
  }

  /**
   * `clear()` and the request's end as the response goes out, when a request drawn by the advisor tells its use: the
   * plugin's housekeeping, not an operation of the app's, so it is not published.
   */
  release (): void {
    this.empty()
    this.stopCounting()
    this.usage?.end()
  }

  /**
   * The request is over before its response (its client went away): from now on its entries no longer count
   * in the level's size, so a load that settles later, or a request whose response never went out, cannot leave the
   * count high for good. The entries stay usable by code still running for the request.
   */
  end (): void {
    this.stopCounting()
    // A request drawn by the advisor is not told: its handler may still read what it has not read yet, and told now it
    // would look read less than it was (a client aborting requests made a key read three times look read once).
    this.usage?.discard()
  }

  private stopCounting (): void {
    this.count(-this.entries.size)
    this.counted = false
  }

  /**
   * The cached value, or the loader's value cached for the rest of the request. Concurrent calls for one key share
   * one loader call; a loader that fails caches nothing and every waiter gets its error. A loader that resolves to
   * `undefined` caches nothing either (return `null` to cache absence).
   */
  getOrLoad<T> (key: string, loader: () => T | PromiseLike<T>): Promise<T> {
    const op = observeRequestLookup('getOrLoad', key, this.level)
    return op === undefined ? this.findOrLoad(key, loader) : op.run(this, this.findOrLoad<T>, key, loader, op)
  }

  private findOrLoad<T> (key: string, loader: () => T | PromiseLike<T>, op?: CacheOperation): Promise<T> {
    if (!this.level.keys.valid(key)) return this.level.keys.reject(key)
    const value = this.entries.get(key)
    const stats = this.level.stats
    // After the lookup, as in `get`.
    this.usage?.read(key)
    if (value !== undefined) {
      stats.hits++
      op?.found()
      return promiseOf(value as T)
    }
    this.missed(key)
    op?.missed()
    this.loads ??= new SingleFlight()
    return this.loads.loadOnce(key, async () => {
      const loaded = await countLoad(stats, observeLoad('request', key, loader, undefined, this.level), (ms, error) => { this.level.log?.loaded(key, ms, error, this.log) })
      if (loaded !== undefined) {
        this.write(key, loaded)
        this.usage?.fill(key)
      }
      return loaded
    })
  }

  /**
   * The batch loader `name` of this request, made by the first call with that name (later calls get the same object,
   * whatever `batchFn` and `options` they pass): the loads of one tick become one call of `batchFn`, each key is loaded
   * at most once in the request, and it is dropped with the request. It remembers at most `maxEntries` keys.
   */
  loader<K, R extends BatchResult<K, unknown>> (name: string, batchFn: BatchLoad<K, R>, options?: BatchLoaderOptions<K>): BatchLoader<K, BatchValue<R>> {
    if (typeof name !== 'string' || name === '') throw new InvalidOptionError('reqCache.loader', 'name', 'must be a non-empty string', describe(name))
    this.loaders ??= new Map()
    let loader = this.loaders.get(name)
    if (loader === undefined) {
      const { keys, stats, options: { maxEntries } } = this.level
      loader = new BatchLoader(`reqCache.loader("${name}")`, batchFn as BatchLoad<unknown, BatchResult<unknown, unknown>>, { keys, maxEntries, stats }, options as BatchLoaderOptions<unknown>)
      this.loaders.set(name, loader)
    }
    return loader as BatchLoader<K, BatchValue<R>>
  }

  private missed (key: string): void {
    this.level.stats.misses++
    this.level.log?.miss(key, this.log)
  }

  private evictOldest (): void {
    const oldest = this.entries.keys().next().value as string
    this.entries.delete(oldest)
    this.count(-1)
    this.level.stats.evictions++
  }

  private count (delta: number): void {
    if (this.counted) this.level.live += delta
  }
}
