import { setTimeout as sleep } from 'node:timers/promises'
import type { BatchLoad, BatchResult, BatchValue } from '../batch.js'
import { BurstLog, type Logger } from '../burst-log.js'
import { DefineError, EntryTooLargeError, InvalidOptionError, LoadTimeoutError, PreloadError, UnsupportedError, describe, messageOf } from '../errors.js'
import { hold, plain, stateOf, storeTtl, type Freshness, type Held, type State } from '../freshness.js'
import { type Defined, KeyRule, assertValue } from '../keys.js'
import { observe, observeLookup, observeLoad, type CacheOperation } from '../events.js'
import { LevelLog } from '../level-log.js'
import { callDuration } from '../options.js'
import { SingleFlight, type Flight } from '../single-flight.js'
import { LevelStats, countLoad } from '../stats.js'
import { deleteKeys, isPromiseLike, promiseOf, type KeyPage, type KeyQuery, type Store } from '../store.js'
import { TagVersions } from '../tags.js'
import { parseDuration, type Duration } from '../durations.js'
import { AppBatches } from './app-batch.js'

export interface AppLevelOptions {
  store: Store
  /** Default time to live in ms; 0 means entries live until evicted. */
  ttl: number
  log: Logger
  /** One load per key across instances: a cold key is loaded by the instance that takes the lock. */
  lock?: LoadLock
  /** Longest key taken, in characters. Default 1,024. */
  maxKeyLength?: number
  /** Most keys one call of `getMany` or `getOrLoadMany` takes. Default 1,000. */
  maxKeysPerCall?: number
  /** false: log lines show a short hash of each key instead of the key. Default true. */
  logKeys?: boolean
  /** Defaults of every call, in ms (see `AppLoadOptions`). Default 0: off. */
  staleWhileRevalidate?: number
  graceOnError?: number
  softTimeout?: number
  hardTimeout?: number
}

/** What the level needs of a cross-instance lock (`RedisLock` fits). */
export interface LoadLock {
  /** A token when this caller holds the lock `name`, undefined when another does. */
  acquire (name: string): Promise<string | undefined>
  release (name: string, token: string): Promise<void>
  /**
   * Waits a bounded time for the holder of lock `name` (default `key`) to put in `store` a value of `key` that
   * `accept` takes; undefined when it did not, or as soon as the holder let go without one. Rejects once closed.
   */
  waitFor (store: Store, key: string, name?: string, accept?: (value: unknown) => boolean): Promise<unknown>
  /** Ends every wait. */
  close? (): void
  /**
   * Claims `key` for `ms`, never released: true when this caller has it. Background refreshes take one per interval,
   * so that one instance refreshes a defined key for all of them.
   */
  lease? (key: string, ms: number): Promise<boolean>
}

/** Options of one write. Durations are ms or duration strings; each defaults to the level's. */
export interface AppSetOptions {
  /** Time to live of this entry. */
  ttl?: Duration
  /** After `ttl`, how long the entry is still served, at once, while one new load runs in the background. */
  staleWhileRevalidate?: Duration
  /** After `ttl`, how long the entry stands in for a load that fails or passes `hardTimeout`. */
  graceOnError?: Duration
  /** Tags: `invalidateTag(tag)` drops every entry with one of them, on every instance. */
  tags?: readonly string[]
}

/** Options of one load. */
export interface AppLoadOptions extends AppSetOptions {
  /** When a stale or grace value exists and the loader takes longer, the caller gets that value; the load goes on. */
  softTimeout?: Duration
  /** A load that takes longer rejects its callers with `FST_MULTICACHE_LOAD_TIMEOUT` (or gets the grace value). */
  hardTimeout?: Duration
}

/** Options of `invalidate()`. */
export interface InvalidateOptions {
  /**
   * Resolve only once every instance has dropped the keys from its memory tier and fenced its loads of them, so that
   * no read that starts anywhere after it is served the old value: `true` (waits up to 1 s), or the longest wait in ms
   * or as a duration string. Past it, rejects with `FST_MULTICACHE_UNCONFIRMED` (the keys are deleted all the same);
   * a message that could not be published rejects with `FST_MULTICACHE_STORE`. With the memory store or Redis. Default false: resolves once the shared store has dropped the keys, and another
   * instance may serve its copy until the bus message reaches it.
   */
  wait?: boolean | Duration
}

/** How long `invalidate(…, { wait: true })` waits for the other instances. */
const INVALIDATE_WAIT = 1000

/** Options of `define()`. */
export interface DefineOptions extends AppLoadOptions {
  /** Reload in the background this often. Off when absent. */
  refreshInterval?: Duration
  /** How far each instance's refresh moves from `refreshInterval`, either way. Default 10 % of it. */
  jitter?: Duration
}

type Loader<T> = () => T | PromiseLike<T>

/** How often a refresh fenced by a later change takes the later load's value instead of its own. */
const MAX_REFRESH_ATTEMPTS = 5

/** The longest delay a Node timer keeps. */
const MAX_TIMER = 2 ** 31 - 1

interface Definition {
  loader: Loader<unknown>
  freshness: Freshness
  refreshInterval: number
  jitter: number
  /** How its last refresh went, for the admin API. */
  last?: { at: number, ms: number, error?: string }
  /** Epoch ms of its next background refresh, once scheduled. */
  next?: number
}

/** A defined key as the admin API shows it. */
export interface DefinedKey {
  key: string
  /** Epoch ms of the last refresh that ended (preload included), its duration, and its error if it failed. */
  lastRefresh: number | null
  durationMs: number | null
  lastError: string | null
  /** Epoch ms of the next background refresh; null without `refreshInterval` or before start. */
  nextRefresh: number | null
}

/**
 * A load as its callers wait for it: a background refresh, a miss (`cold`), a refresh of a defined key, or a miss
 * whose read of the store failed (`unreachable`).
 */
type Mode = 'miss' | 'refresh' | 'background' | 'unreachable'

/**
 * Global data shared by every user. A miss on one key loads it once however many callers wait; keys declared
 * with `define()` are loaded before the app serves, refreshed in the background and reloaded when they expire. An
 * entry may outlive its ttl a little: served stale at once while a new value loads (`staleWhileRevalidate`), or in
 * place of a load that fails (`graceOnError`).
 */
export class AppCache {
  readonly stats: LevelStats
  readonly keys: KeyRule
  readonly tags: TagVersions
  /** The loads in flight, each with the tags of its value, so that invalidating a tag fences the loads of its entries. */
  private readonly loads = new SingleFlight()
  private readonly definitions = new Map<string, Definition>()
  private readonly timers = new Set<NodeJS.Timeout>()
  private readonly defaults: Freshness
  private started = false
  private stopped = false
  readonly log: LevelLog
  /** Tagged entries refused while the tag versions are unknown: one line per burst, apart from the store's faults. */
  private readonly unknownTags: BurstLog
  private readonly batches: AppBatches

  constructor (private readonly options: AppLevelOptions) {
    this.stats = new LevelStats(() => options.store.size ?? 0)
    this.stats.pinned = () => options.store.pinned ?? 0
    this.keys = new KeyRule(options.maxKeyLength, options.maxKeysPerCall, options.store.exactKeys !== true)
    this.tags = new TagVersions(options.store.tags, {
      unknown: () => { this.tagsUnknown() },
      // Until they are read, tagged entries are loaded again rather than served: the read is tried again each second.
      failed: (error) => { this.fault('tags', '*', error) }
    })
    this.log = new LevelLog('appCache', 'app', options.log, options.logKeys)
    this.unknownTags = new BurstLog(options.log)
    this.defaults = {
      ttl: options.ttl,
      staleWhileRevalidate: options.staleWhileRevalidate ?? 0,
      graceOnError: options.graceOnError ?? 0,
      softTimeout: options.softTimeout ?? 0,
      hardTimeout: options.hardTimeout ?? 0,
      tags: []
    }
    // A change on another instance fences this instance's loads of what it changed, as a change made here does.
    options.store.watch?.((change) => {
      if ('tags' in change) {
        this.tags.apply({ epoch: change.epoch, versions: change.tags })
        this.loads.fenceTagged(Object.keys(change.tags))
      } else if ('keys' in change) {
        for (const key of change.keys) this.loads.fence(key)
      } else {
        // Messages may have been missed: every load is fenced, and the tags' versions are read again.
        this.loads.fenceAll()
        this.tags.forget()
      }
    })
    this.batches = new AppBatches({
      origin: this,
      store: options.store,
      lock: options.lock,
      loads: this.loads,
      tags: this.tags,
      stats: this.stats,
      log: this.log,
      defined: (key) => this.definitions.has(key) ? this.get(key) : undefined,
      wait: async (key, load, freshness, grace) => await this.wait(key, load, freshness, grace),
      write: async (key, held, ttl, fence) => { await this.write(key, held, ttl, fence) },
      fault: (operation, key, error) => { this.fault(operation, key, error) },
      tooLarge: (key, error) => { this.tooLarge(key, error) },
      stopped: () => this.stopped
    })
  }

  get<T = unknown> (key: string): Promise<T | undefined> {
    const op = observeLookup('app', 'get', key, undefined, this)
    return op === undefined ? this.lookup(key) : op.run(this, this.lookup<T>, key, op)
  }

  private lookup<T> (key: string, op?: CacheOperation): Promise<T | undefined> {
    if (!this.keys.valid(key)) return this.keys.reject(key)
    const found = this.read(key)
    const state = plainHit(found) ? 'fresh' : this.stateAtOnce(found)
    if (state === 'fresh') {
      this.stats.hits++
      op?.found(false, 'memory')
      return promiseOf((found as Held).v as T)
    }
    const definition = this.definitions.get(key)
    return this.afterLookup(key, found, state, definition?.loader as Loader<T> | undefined, definition?.freshness ?? this.defaults, op)
  }

  async has (key: string): Promise<boolean> {
    this.keys.assert(key)
    const held = await this.options.store.get(key) as Held | undefined
    if (held?.v === undefined) return false
    const state = stateOf(held, this.tags)
    return state === 'fresh' || state === 'stale'
  }

  // Every change fences the loads of what it changes: a load that started before may answer its callers, but it
  // writes nowhere, and callers that come after start a new load (see `Flight`). A store with shared fences
  // moves them with the change, for the loads of every other instance.

  set<T> (key: string, value: Defined<T>, options?: AppSetOptions): Promise<void> {
    const op = observe('app', 'set', key, undefined, this)
    return op === undefined ? this.store(key, value, options) : op.holding(value).promise(async () => { await this.store(key, value, options) })
  }

  private async store (key: string, value: unknown, options: AppSetOptions | undefined): Promise<void> {
    this.keys.assert(key)
    assertValue(key, value)
    const freshness = this.freshness('appCache.set', options)
    this.loads.fence(key)
    try {
      await this.options.store.set(key, hold(value, freshness, this.tags.of(freshness.tags)), storeTtl(freshness))
    } catch (error) {
      if (error instanceof EntryTooLargeError) this.stats.oversized++
      throw error
    }
  }

  /** Drops `key` on every instance; true when the store held it (or does not tell). */
  delete (key: string): Promise<boolean> {
    const op = observe('app', 'delete', key, undefined, this)
    return op === undefined ? this.drop(key) : op.promise(async () => await this.drop(key))
  }

  private async drop (key: string): Promise<boolean> {
    this.keys.assert(key)
    this.loads.fence(key)
    this.log.invalidated([key])
    return await this.options.store.delete(key) !== false
  }

  clear (): Promise<void> {
    const op = observe('app', 'clear', undefined, undefined, this)
    return op === undefined ? this.empty() : op.promise(async () => { await this.empty() })
  }

  private async empty (): Promise<void> {
    this.loads.fenceAll()
    this.log.invalidated(undefined)
    await this.options.store.clear()
  }

  /**
   * Drops several keys at once: from the shared store in one round trip, from this instance's memory at once, and
   * from the other instances' memory tiers through one bus message, when it reaches them. The next read of each loads
   * it again (a defined key, by its own loader). With `wait`, resolves only once every other instance has confirmed
   * it dropped them.
   */
  invalidate (keys: string | readonly string[], options?: InvalidateOptions): Promise<void> {
    const op = typeof keys === 'string' ? observe('app', 'invalidate', keys, undefined, this) : observe('app', 'invalidate', undefined, keys, this)
    return op === undefined ? this.drops(keys, options) : op.promise(async () => { await this.drops(keys, options) })
  }

  private async drops (keys: string | readonly string[], options: InvalidateOptions | undefined): Promise<void> {
    const list: readonly unknown[] = Array.isArray(keys) ? keys : [keys]
    for (const key of list) this.keys.assert(key)
    const within = waitOf(options?.wait)
    const { store } = this.options
    if (within > 0 && store.deleteAcknowledged === undefined) {
      throw new UnsupportedError('appCache.invalidate: { wait } needs the memory store or Redis; this store cannot tell when the other instances have dropped their copies')
    }
    for (const key of list as readonly string[]) this.loads.fence(key)
    this.log.invalidated(list as readonly string[])
    if (list.length === 0) return
    if (within > 0) await store.deleteAcknowledged?.(list as readonly string[], within)
    else await deleteKeys(store, list as readonly string[])
  }

  /**
   * Drops every entry with one of `tags`, on every instance, route responses included: each tag moves to its next
   * version, and an entry that holds an older one is gone when it is next read. Loads in flight of tagged entries
   * are fenced. It costs the same whatever the number of entries tagged.
   */
  invalidateTag (tags: string | readonly string[]): Promise<void> {
    const op = observe('app', 'invalidateTag', undefined, Array.isArray(tags) ? tags : [tags], this)
    return op === undefined ? this.dropTagged(tags) : op.promise(async () => { await this.dropTagged(tags) })
  }

  private async dropTagged (tags: string | readonly string[]): Promise<void> {
    const list = readTags('appCache.invalidateTag', Array.isArray(tags) ? tags : [tags], this.keys)
    if (list.length === 0) return
    this.loads.fenceTagged(list)
    this.log.invalidated(list.map((tag) => 'tag:' + tag))
    await this.tags.invalidate(list)
    this.stats.tagInvalidations++
  }

  /**
   * The cached value, or the loader's value cached under `key`. However many callers miss at once, the loader runs
   * once and all of them get its value or its error. A failing loader caches nothing; neither does `undefined`.
   */
  getOrLoad<T> (key: string, loader: Loader<T>, options?: AppLoadOptions): Promise<T> {
    const op = observeLookup('app', 'getOrLoad', key, undefined, this)
    return op === undefined ? this.lookupOrLoad(key, loader, options) : op.run(this, this.lookupOrLoad<T>, key, loader, options, op)
  }

  private lookupOrLoad<T> (key: string, loader: Loader<T>, options: AppLoadOptions | undefined, op?: CacheOperation): Promise<T> {
    if (!this.keys.valid(key)) return this.keys.reject(key)
    const found = this.read(key)
    const state = plainHit(found) ? 'fresh' : this.stateAtOnce(found)
    if (state === 'fresh') {
      this.stats.hits++
      op?.found(false, 'memory')
      return promiseOf((found as Held).v as T)
    }
    let freshness: Freshness
    try {
      freshness = this.freshness('appCache.getOrLoad', options)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.afterLookup(key, found, state, loader, freshness, op) as Promise<T>
  }

  /**
   * The values of `keys` in their order, undefined for a miss, as `get` of each would answer them: from memory at once,
   * and what memory lacks from the shared store in one round trip.
   */
  getMany<T = unknown> (keys: readonly string[]): Promise<Array<T | undefined>> {
    const op = observeLookup('app', 'getMany', undefined, keys, this)
    return op === undefined ? this.lookupMany(keys) : op.promise(() => this.lookupMany(keys, op))
  }

  private lookupMany<T> (keys: readonly string[], op?: CacheOperation): Promise<Array<T | undefined>> {
    let checked: string[]
    try {
      checked = this.keys.checkedKeys('appCache.getMany', keys)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.batches.getMany(checked, op) as Promise<Array<T | undefined>>
  }

  /**
   * The values of `keys` in their order, as `getOrLoad` of each would answer them, with one call of `loader` for the keys
   * missing (and not already loading): it answers their values in their order, or a Map or an object by key, and a key
   * it leaves out stays a miss. Written back in one round trip where the store can.
   */
  getOrLoadMany<R extends BatchResult<string, unknown>> (keys: readonly string[], loader: BatchLoad<string, R>, options?: AppLoadOptions): Promise<Array<BatchValue<R>>> {
    const op = observeLookup('app', 'getOrLoadMany', undefined, keys, this)
    return op === undefined ? this.lookupOrLoadMany(keys, loader, options) : op.promise(() => this.lookupOrLoadMany(keys, loader, options, op))
  }

  private lookupOrLoadMany<R extends BatchResult<string, unknown>> (keys: readonly string[], loader: BatchLoad<string, R>, options: AppLoadOptions | undefined, op?: CacheOperation): Promise<Array<BatchValue<R>>> {
    let checked: string[]
    let freshness: Freshness
    try {
      checked = this.keys.checkedKeys('appCache.getOrLoadMany', keys)
      freshness = this.freshness('appCache.getOrLoadMany', options)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.batches.getOrLoadMany(checked, loader, freshness, op) as Promise<Array<BatchValue<R>>>
  }

  /**
   * Declares a global dataset: loaded before the server listens (a failure fails startup), reloaded every
   * `refreshInterval` (a failure keeps the last good value and logs a warning), and reloaded on a miss.
   */
  define<T> (key: string, loader: Loader<T>, options?: DefineOptions): void {
    this.keys.assert(key)
    if (typeof loader !== 'function') throw new DefineError(key, 'the loader must be a function')
    if (this.started) throw new DefineError(key, 'must be called before the server is ready (use getOrLoad for keys found later)')
    if (this.definitions.has(key)) throw new DefineError(key, 'the key is already defined')
    const refreshInterval = callDuration('appCache.define', 'refreshInterval', options?.refreshInterval, 0)
    // Past this a timer fires every millisecond instead (Node clamps the delay to 1).
    if (refreshInterval > MAX_TIMER) {
      throw new InvalidOptionError('appCache.define', 'refreshInterval', `must be at most ${MAX_TIMER} ms (about 24 days)`, describe(options?.refreshInterval))
    }
    const jitter = callDuration('appCache.define', 'jitter', options?.jitter, Math.min(Math.round(refreshInterval / 10), MAX_TIMER - refreshInterval))
    if (refreshInterval + jitter > MAX_TIMER) {
      throw new InvalidOptionError('appCache.define', 'jitter', `must keep refreshInterval + jitter at most ${MAX_TIMER} ms`, describe(options?.jitter))
    }
    if (jitter >= refreshInterval && refreshInterval > 0) {
      throw new InvalidOptionError('appCache.define', 'jitter', `must be less than refreshInterval (${refreshInterval} ms)`, describe(options?.jitter))
    }
    this.definitions.set(key, { loader, freshness: this.freshness('appCache.define', options), refreshInterval, jitter })
    // Clients choose the keys of getOrLoad: however many they make up, they must not evict the app's own datasets.
    this.options.store.pin?.(key)
  }

  /**
   * Reloads a defined key now and returns its new value. Loads of the key that started before it write nothing. A
   * change that comes while it loads fences it in turn: it then takes the value of the load that came after, so
   * that once it returns, nothing older than its start is served.
   */
  refresh<T = unknown> (key: string): Promise<T> {
    const op = observe('app', 'refresh', key, undefined, this)
    return op === undefined ? this.reload(key) : op.promise(async () => await this.reload<T>(key))
  }

  private async reload<T> (key: string): Promise<T> {
    this.keys.assert(key)
    const definition = this.definitions.get(key)
    if (definition === undefined) throw new DefineError(key, 'refresh() needs a key declared with define()')
    this.loads.fence(key)
    const started = performance.now()
    try {
      for (let attempt = 1; ; attempt++) {
        const { value, flight } = this.loads.join(key, (f) => this.load(key, definition.loader, definition.freshness, f, 'refresh'), definition.freshness.tags)
        const loaded = await value as T
        // Bounded: under a storm of changes a refresh answers what it has rather than chase them for ever.
        if (!flight.fenced || attempt === MAX_REFRESH_ATTEMPTS) {
          definition.last = { at: Date.now(), ms: performance.now() - started }
          return loaded
        }
      }
    } catch (error) {
      definition.last = { at: Date.now(), ms: performance.now() - started, error: messageOf(error) }
      throw error
    }
  }

  /** A page of the keys held, with their remaining time to live (never their values); undefined when the store cannot list. */
  async list (query: KeyQuery): Promise<KeyPage | undefined> {
    const { store } = this.options
    return store.keys === undefined ? undefined : await store.keys(query)
  }

  /** The defined keys with how their last refresh went and when the next is due. */
  defined (): DefinedKey[] {
    return [...this.definitions].map(([key, { last, next }]) => ({
      key,
      lastRefresh: last?.at ?? null,
      durationMs: last === undefined ? null : Math.round(last.ms * 1000) / 1000,
      lastError: last?.error ?? null,
      nextRefresh: next === undefined || this.stopped ? null : next
    }))
  }

  /** Reads the tags' versions, loads every defined key, then starts the refresh timers. Called before listening. */
  async start (): Promise<void> {
    this.started = true
    await this.tags.load()
    await Promise.all([...this.definitions.keys()].map(async (key) => {
      try {
        await this.refresh(key)
      } catch (error) {
        throw new PreloadError(key, messageOf(error), { cause: error })
      }
    }))
    for (const [key, { refreshInterval, jitter }] of this.definitions) {
      if (refreshInterval > 0) this.schedule(key, refreshInterval, jitter)
    }
  }

  /** Stops the refresh timers and every wait for another instance's load. */
  stop (): void {
    this.stopped = true
    for (const timer of this.timers) clearTimeout(timer)
    this.timers.clear()
    this.tags.stop()
    this.options.lock?.close?.()
  }

  /** The next refresh of a defined key, `interval` ± `jitter` from now, so that instances do not refresh in step. */
  private schedule (key: string, interval: number, jitter: number): void {
    const delay = interval + Math.round((Math.random() * 2 - 1) * jitter)
    const definition = this.definitions.get(key)
    if (definition !== undefined) definition.next = Date.now() + delay
    const timer = setTimeout(() => {
      this.timers.delete(timer)
      if (this.stopped) return
      this.schedule(key, interval, jitter)
      this.refreshInBackground(key, interval)
    }, delay)
    timer.unref()
    this.timers.add(timer)
  }

  private refreshInBackground (key: string, interval: number): void {
    this.mayRefresh(key, interval).then(async (mine) => { if (mine) await this.refresh(key) }).catch((error: unknown) => {
      this.log.logger.warn({ err: this.log.err(error, key), cacheLevel: 'app', key: this.log.key(key) }, `appCache: refreshing "${this.log.key(key)}" failed; serving the last good value`)
    })
  }

  /**
   * With a cross-instance lock, the instance that takes this interval's lease refreshes and the others hear of the
   * new value on the bus. The lease ends a little before the next tick, so its holder usually keeps the job. A lock
   * that fails lets this instance refresh: a refresh too many beats none.
   */
  private async mayRefresh (key: string, interval: number): Promise<boolean> {
    const lock = this.options.lock
    if (lock?.lease === undefined) return true
    try {
      return await lock.lease(key, Math.max(1, Math.floor(interval * 0.9)))
    } catch (error) {
      this.fault('lease', key, error)
      return true
    }
  }

  /**
   * Where a value the store answered at once (memory) stands, so that a fresh one is a hit with no await and any other
   * is checked once; undefined for an answer still to come, or none.
   */
  private stateAtOnce (found: unknown): State | undefined {
    if (found === undefined || isPromiseLike(found)) return undefined
    const held = found as Held
    if (plain(held)) return 'fresh'
    return held.v === undefined ? 'gone' : stateOf(held, this.tags)
  }

  /** The store's answer; a store that throws instead of rejecting is read as a rejection. */
  private read (key: string): unknown {
    try {
      return this.options.store.get(key)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /**
   * A lookup that was not a plain synchronous hit: the store's answer is awaited and checked (staleness, grace,
   * tags), unless it came at once and was checked then (`checked`). A stale value is served at once while one load runs
   * in the background; otherwise the callers wait for a load, within its timeouts, with a grace value (if any)
   * standing in for a failure.
   */
  private async afterLookup<T> (key: string, found: unknown, checked: State | undefined, loader: Loader<T> | undefined, freshness: Freshness, op?: CacheOperation): Promise<T | undefined> {
    let held: Held | undefined
    let reached = true
    try {
      held = await found as Held | undefined
    } catch (error) {
      // A store that fails or runs out of time is a miss: the loader answers, the app keeps serving.
      this.fault('get', key, error)
      reached = false
    }
    const state = checked ?? (held?.v === undefined ? 'gone' : stateOf(held, this.tags))
    if (state === 'fresh' || state === 'stale') {
      this.stats.hits++
      op?.found(state === 'stale', isPromiseLike(found) ? 'store' : 'memory')
      if (state === 'stale') {
        this.stats.staleServed++
        if (loader !== undefined) this.revalidate(key, loader, freshness)
      }
      return (held as Held).v as T
    }
    this.stats.misses++
    this.log.miss(key)
    op?.missed()
    if (loader === undefined) return undefined
    const load = this.loads.loadOnce(key, (flight) => this.load(key, loader, freshness, flight, reached ? 'miss' : 'unreachable'), freshness.tags)
    return await this.wait(key, load, freshness, state === 'grace' ? held : undefined, op)
  }

  /**
   * One background load of a stale key at a time: none while a load of the key runs that has not been fenced (a fenced
   * one writes nothing). Its failure keeps the stale value and is logged once per burst.
   */
  private revalidate<T> (key: string, loader: Loader<T>, freshness: Freshness): void {
    if (this.loads.has(key)) return
    this.stats.backgroundLoads++
    this.loads.loadOnce(key, (flight) => this.load(key, loader, freshness, flight, 'background'), freshness.tags).catch((error: unknown) => {
      this.log.warn({ err: error, key }, `appCache: the background load of "${this.log.key(key)}" failed; its stale value is served until its window ends`)
    })
  }

  /**
   * Waits for a load within its timeouts. A grace value (one past its ttl, within `graceOnError`) is what the
   * callers get when the load takes longer than `softTimeout`, fails, or takes longer than `hardTimeout`.
   */
  private async wait<T> (key: string, load: Promise<T>, freshness: Freshness, grace: Held | undefined, op?: CacheOperation): Promise<T> {
    const { softTimeout, hardTimeout } = freshness
    const timers = new AbortController()
    const limits: Array<Promise<T>> = [load]
    if (grace !== undefined && softTimeout > 0) {
      limits.push(sleep(softTimeout, undefined, { signal: timers.signal }).then(() => this.graceOf(grace, op) as T))
    }
    if (hardTimeout > 0) {
      limits.push(sleep(hardTimeout, undefined, { signal: timers.signal }).then(() => { throw new LoadTimeoutError(key, hardTimeout) }))
    }
    try {
      return limits.length === 1 ? await load : await Promise.race(limits)
    } catch (error) {
      // The grace window is checked again now: the load may have failed long after the read that found the value.
      if (grace === undefined || stateOf(grace, this.tags) !== 'grace') throw error
      this.log.warn({ err: error, key }, `appCache: loading "${this.log.key(key)}" failed; serving its last good value (graceOnError)`)
      return this.graceOf(grace, op) as T
    } finally {
      timers.abort()
      // The load goes on behind a timeout, and fills the cache when it ends: its error has no caller left.
      load.catch(() => {})
    }
  }

  /** A grace value standing in for a load: the lookup is a stale hit after all. */
  private graceOf (held: Held, op?: CacheOperation): unknown {
    this.stats.graceServed++
    op?.found(true)
    return held.v
  }

  /**
   * Runs the loader and stores its value. The callers of a miss get the value as soon as the loader has it, while
   * the write goes on behind them (a memory tier is filled at once): a stalled store costs a miss one time budget,
   * not two. A refresh, and the holder of the cross-instance lock, wait for the write, because others look for the
   * value in the store as soon as they are told. A refresh fences every load of the key that started before it, on
   * every instance. With a lock, the instance that does not take it waits for the value of the one that did.
   */
  private async load<T> (key: string, loader: Loader<T>, freshness: Freshness, flight: Flight, mode: Mode): Promise<T> {
    // The store just failed this key's read: asking it for a fence or a lock would cost the callers another time
    // budget, and its value, loaded without a fence, is written nowhere (the next miss tries the store again).
    if (mode === 'unreachable') return await this.loadAndStore(key, loader, freshness, flight, null, false)
    const fence = await this.fenceBefore(key, mode !== 'refresh')
    const lock = mode === 'refresh' ? undefined : this.options.lock
    // A background load stays in flight until its value is written: a read meanwhile would start another one.
    if (lock === undefined) return await this.loadAndStore(key, loader, freshness, flight, fence, mode !== 'miss')
    // One lock per key and fence: after a change, the load of the new fence does not wait for one of the old.
    const name = typeof fence === 'string' ? `${key}@${fence}` : key
    const token = await lock.acquire(name).catch((error: unknown) => { this.fault('lock', key, error); return '' })
    if (token === undefined) {
      // Another instance is loading this key: take its value when it lands, or load once it let go without one.
      const fresh = (value: unknown): boolean => (value as Held).v !== undefined && stateOf(value as Held, this.tags) === 'fresh'
      const landed = await lock.waitFor(this.options.store, key, name, fresh).catch((error: unknown) => {
        if (this.stopped) throw error
        this.fault('lock', key, error)
        return undefined
      }) as Held | undefined
      if (landed !== undefined) return landed.v as T
      return await this.loadAndStore(key, loader, freshness, flight, fence, false)
    }
    try {
      return await this.loadAndStore(key, loader, freshness, flight, fence, token !== '')
    } finally {
      // At once, whatever the outcome: waiters stop waiting as soon as the lock is free.
      if (token !== '') await lock.release(name, token).catch((error: unknown) => { this.fault('unlock', key, error) })
    }
  }

  private async loadAndStore<T> (key: string, loader: Loader<T>, freshness: Freshness, flight: Flight, fence: string | undefined | null, awaitWrite: boolean): Promise<T> {
    // The tags' versions before the loader reads anything: an invalidation during the load makes its value old.
    const kept = this.tags.of(freshness.tags)
    const loaded = await countLoad(this.stats, observeLoad('app', key, loader, undefined, this), (ms, error) => { this.log.loaded(key, ms, error) })
    if (loaded === undefined) return loaded
    // The callers get what every later hit will get, on every instance; a value the store cannot keep is refused.
    const { store } = this.options
    let held = hold(loaded, freshness, kept)
    try {
      if (store.stored !== undefined) held = store.stored(key, held) as Held
    } catch (error) {
      if (!(error instanceof EntryTooLargeError)) throw error
      // Data that outgrew the bound is served uncached, not refused: the next miss loads it again.
      this.tooLarge(key, error)
      return loaded
    }
    if (!flight.fenced && fence !== null) {
      const written = this.write(key, held, storeTtl(freshness), fence)
      if (awaitWrite) await written
    }
    return held.v as T
  }

  /**
   * The shared fence a load starts under: read for a miss, moved for a refresh. undefined without shared fences;
   * null when the store could not tell, and then the load writes nothing.
   */
  private async fenceBefore (key: string, read: boolean): Promise<string | undefined | null> {
    const fences = this.options.store.fences
    if (fences === undefined) return undefined
    try {
      return await (read ? fences.read(key) : fences.bump(key))
    } catch (error) {
      this.fault('fence', key, error)
      return null
    }
  }

  /**
   * Stores a loaded value, under the fence its load started with where the store keeps fences. Never rejects: a
   * failure is counted and logged, and the next miss loads again.
   */
  private async write (key: string, held: Held, ttl: number, fence: string | undefined): Promise<void> {
    const { store } = this.options
    try {
      if (fence === undefined || store.fences === undefined) await store.set(key, held, ttl)
      else await store.fences.setIf(key, held, ttl, fence)
    } catch (error) {
      if (error instanceof EntryTooLargeError) this.tooLarge(key, error)
      else this.fault('set', key, error)
    }
  }

  /** The freshness of one call: its options over the level's defaults, each checked and named in its error. */
  private freshness (method: string, options: AppLoadOptions | undefined): Freshness {
    if (options === undefined) return this.defaults
    const d = this.defaults
    return {
      ttl: callDuration(method, 'ttl', options.ttl, d.ttl),
      staleWhileRevalidate: callDuration(method, 'staleWhileRevalidate', options.staleWhileRevalidate, d.staleWhileRevalidate),
      graceOnError: callDuration(method, 'graceOnError', options.graceOnError, d.graceOnError),
      softTimeout: callDuration(method, 'softTimeout', options.softTimeout, d.softTimeout),
      hardTimeout: callDuration(method, 'hardTimeout', options.hardTimeout, d.hardTimeout),
      tags: options.tags === undefined ? d.tags : readTags(method, options.tags, this.keys)
    }
  }

  private tagsUnknown (): void {
    this.stats.tagsUnknown++
    this.unknownTags.warn({ cacheLevel: 'app' }, 'appCache: the tag versions are unknown (the shared store could not be read, or its bus is not subscribed); tagged entries and route responses are loaded again rather than served until they are read')
  }

  private tooLarge (key: string, error: unknown): void {
    this.stats.oversized++
    this.log.warn({ err: error, key }, `appCache: "${this.log.key(key)}" is too large to cache; it is loaded on every miss`)
  }

  private fault (operation: string, key: string | undefined, error: unknown): void {
    this.stats.storeErrors++
    this.log.warn({ err: error, operation, key }, `appCache: the store failed (${operation}); answering from the loader`)
  }
}

/** The `wait` of `invalidate`, in ms: 0 for none. */
function waitOf (wait: unknown): number {
  if (wait === undefined || wait === false) return 0
  if (wait === true) return INVALIDATE_WAIT
  const ms = parseDuration(wait)
  if (ms === undefined) throw new InvalidOptionError('appCache.invalidate', 'wait', "must be true, false, a number of milliseconds or a duration string such as '2s'", describe(wait))
  return ms
}

/**
 * A value the store answered at once with nothing to check (no freshness window, no tags): the hit most lookups are,
 * tested before anything else. A promise has no `v`, so it is never taken for one.
 */
function plainHit (found: unknown): found is Held {
  const held = found as Held | null | undefined
  return held?.v !== undefined && plain(held)
}

/**
 * The tags of a call, an array of non-empty strings: a shared store keeps their versions under their names, as UTF-8
 * (see `KeyRule`).
 */
function readTags (method: string, tags: unknown, keys: KeyRule): string[] {
  if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === 'string' && tag !== '')) {
    throw new InvalidOptionError(method, 'tags', 'must be an array of non-empty strings', describe(tags))
  }
  if (!tags.every((tag: string) => keys.storable(tag))) {
    throw new InvalidOptionError(method, 'tags', 'must be well-formed Unicode, without a lone surrogate (a shared store writes them as UTF-8)', describe(tags))
  }
  return tags as string[]
}
