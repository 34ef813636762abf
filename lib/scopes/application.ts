import type { Logger } from '../burst-log.js'
import { DefineError, EntryTooLargeError, InvalidOptionError, PreloadError, describe } from '../errors.js'
import { type Defined, KeyRule, assertValue } from '../keys.js'
import { callDuration, callTtl } from '../options.js'
import { LevelLog } from '../level-log.js'
import { SingleFlight, type Flight } from '../single-flight.js'
import { LevelStats, countLoad } from '../stats.js'
import { deleteKeys, isPromiseLike, type KeyPage, type KeyQuery, type Store } from '../store.js'
import type { Duration } from '../durations.js'

export interface AppLevelOptions {
  store: Store
  /** Default time to live in ms; 0 means entries live until evicted. */
  ttl: number
  log: Logger
  /** One load per key across instances: a cold key is loaded by the instance that takes the lock. */
  lock?: LoadLock
  /** Longest key taken, in characters. Default 1,024. */
  maxKeyLength?: number
  /** false: log lines show a short hash of each key instead of the key. Default true. */
  logKeys?: boolean
}

/** What the level needs of a cross-instance lock (`RedisLock` fits). */
export interface LoadLock {
  /** A token when this caller holds the lock `name`, undefined when another does. */
  acquire (name: string): Promise<string | undefined>
  release (name: string, token: string): Promise<void>
  /**
   * Waits a bounded time for the holder of lock `name` (default `key`) to put `key` in `store`; undefined when it did
   * not, or as soon as the holder let go without it. Rejects once the lock is closed.
   */
  waitFor (store: Store, key: string, name?: string): Promise<unknown>
  /** Ends every wait. */
  close? (): void
  /**
   * Claims `key` for `ms`, never released: true when this caller has it. Background refreshes take one per interval,
   * so that one instance refreshes a defined key for all of them.
   */
  lease? (key: string, ms: number): Promise<boolean>
}

/** Options of one write or load. */
export interface AppSetOptions {
  /** Time to live of this entry: ms or a duration string. Defaults to the level's `ttl`. */
  ttl?: Duration
}

/** Options of `define()`. */
export interface DefineOptions extends AppSetOptions {
  /** Reload in the background this often: ms or a duration string. Off when absent. */
  refreshInterval?: Duration
}

type Loader<T> = () => T | PromiseLike<T>

/** How often a refresh fenced by a later change takes the later load's value instead of its own. */
const MAX_REFRESH_ATTEMPTS = 5

/** The longest delay a Node timer keeps. */
const MAX_TIMER = 2 ** 31 - 1

interface Definition {
  loader: Loader<unknown>
  ttl: number
  refreshInterval: number
  /** How its last refresh went, for the admin API. */
  last?: { at: number, ms: number, error?: string }
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
 * Global data shared by every user. A miss on one key loads it once however many callers wait; keys declared
 * with `define()` are loaded before the app serves, refreshed in the background and reloaded when they expire.
 */
export class AppCache {
  readonly stats: LevelStats
  readonly keys: KeyRule
  private readonly loads = new SingleFlight()
  private readonly definitions = new Map<string, Definition>()
  private readonly timers: NodeJS.Timeout[] = []
  private started = false
  private stopped = false
  /** When the refresh timers started: the next refresh of each defined key is counted from it. */
  private startedAt = 0
  readonly log: LevelLog

  constructor (private readonly options: AppLevelOptions) {
    this.stats = new LevelStats(() => options.store.size ?? 0)
    this.keys = new KeyRule(options.maxKeyLength)
    this.log = new LevelLog('appCache', 'app', options.log, options.logKeys)
    // A change on another instance fences this instance's loads of those keys, as a change made here does.
    options.store.watch?.((change) => {
      if ('clear' in change) this.loads.fenceAll()
      else for (const key of change.keys) this.loads.fence(key)
    })
  }

  get<T = unknown> (key: string): Promise<T | undefined> {
    if (!this.keys.valid(key)) return this.keys.reject(key)
    const found = this.read(key)
    if (found !== undefined && !isPromiseLike(found)) {
      this.stats.hits++
      return Promise.resolve(found as T)
    }
    const definition = this.definitions.get(key)
    return this.afterLookup(key, found, definition?.loader as Loader<T> | undefined, definition?.ttl ?? 0)
  }

  async has (key: string): Promise<boolean> {
    this.keys.assert(key)
    return (await this.options.store.get(key)) !== undefined
  }

  // Every change fences the loads of what it changes: a load that started before may answer its callers, but it
  // writes nowhere, and callers that come after start a new load (see `Flight`). A store with shared fences
  // moves them with the change, for the loads of every other instance.

  async set<T> (key: string, value: Defined<T>, options?: AppSetOptions): Promise<void> {
    this.keys.assert(key)
    assertValue(key, value)
    const ttl = callTtl('appCache.set', options, this.options.ttl)
    this.loads.fence(key)
    try {
      await this.options.store.set(key, value, ttl)
    } catch (error) {
      if (error instanceof EntryTooLargeError) this.stats.oversized++
      throw error
    }
  }

  /** Drops `key` on every instance; true when the store held it (or does not tell). */
  async delete (key: string): Promise<boolean> {
    this.keys.assert(key)
    this.loads.fence(key)
    this.log.invalidated([key])
    return await this.options.store.delete(key) !== false
  }

  async clear (): Promise<void> {
    this.loads.fenceAll()
    this.log.invalidated(undefined)
    await this.options.store.clear()
  }

  /**
   * Drops several keys at once, on every instance: from the shared store in one round trip and from every memory
   * tier through one bus message. The next read of each loads it again (a defined key, by its own loader).
   */
  async invalidate (keys: string | readonly string[]): Promise<void> {
    const list: readonly unknown[] = Array.isArray(keys) ? keys : [keys]
    for (const key of list) this.keys.assert(key)
    for (const key of list as readonly string[]) this.loads.fence(key)
    this.log.invalidated(list as readonly string[])
    if (list.length > 0) await deleteKeys(this.options.store, list as readonly string[])
  }

  /**
   * The cached value, or the loader's value cached under `key`. However many callers miss at once, the loader runs
   * once and all of them get its value or its error. A failing loader caches nothing; neither does `undefined`.
   */
  getOrLoad<T> (key: string, loader: Loader<T>, options?: AppSetOptions): Promise<T> {
    if (!this.keys.valid(key)) return this.keys.reject(key)
    const found = this.read(key)
    if (found !== undefined && !isPromiseLike(found)) {
      this.stats.hits++
      return Promise.resolve(found as T)
    }
    let ttl: number
    try {
      ttl = callTtl('appCache.getOrLoad', options, this.options.ttl)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.afterLookup(key, found, loader, ttl) as Promise<T>
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
    this.definitions.set(key, { loader, ttl: callTtl('appCache.define', options, this.options.ttl), refreshInterval })
  }

  /**
   * Reloads a defined key now and returns its new value. Loads of the key that started before it write nothing. A
   * change that comes while it loads fences it in turn: it then takes the value of the load that came after, so
   * that once it returns, nothing older than its start is served.
   */
  async refresh<T = unknown> (key: string): Promise<T> {
    this.keys.assert(key)
    const definition = this.definitions.get(key)
    if (definition === undefined) throw new DefineError(key, 'refresh() needs a key declared with define()')
    this.loads.fence(key)
    const started = performance.now()
    try {
      for (let attempt = 1; ; attempt++) {
        const { value, flight } = this.loads.join(key, (f) => this.load(key, definition.loader, definition.ttl, f, false))
        const loaded = await value as T
        // Bounded: under a storm of changes a refresh answers what it has rather than chase them for ever.
        if (!flight.fenced || attempt === MAX_REFRESH_ATTEMPTS) {
          definition.last = { at: Date.now(), ms: performance.now() - started }
          return loaded
        }
      }
    } catch (error) {
      definition.last = { at: Date.now(), ms: performance.now() - started, error: error instanceof Error ? error.message : String(error) }
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
    const now = Date.now()
    return [...this.definitions].map(([key, { refreshInterval, last }]) => ({
      key,
      lastRefresh: last?.at ?? null,
      durationMs: last === undefined ? null : Math.round(last.ms * 1000) / 1000,
      lastError: last?.error ?? null,
      nextRefresh: refreshInterval === 0 || this.startedAt === 0 || this.stopped
        ? null
        : now + refreshInterval - ((now - this.startedAt) % refreshInterval)
    }))
  }

  /** Loads every defined key, then starts the refresh timers. Called once, before the server listens. */
  async start (): Promise<void> {
    this.started = true
    await Promise.all([...this.definitions.keys()].map(async (key) => {
      try {
        await this.refresh(key)
      } catch (error) {
        throw new PreloadError(key, error instanceof Error ? error.message : String(error), { cause: error })
      }
    }))
    this.startedAt = Date.now()
    for (const [key, { refreshInterval }] of this.definitions) {
      if (refreshInterval === 0) continue
      const timer = setInterval(() => { this.refreshInBackground(key, refreshInterval) }, refreshInterval)
      timer.unref()
      this.timers.push(timer)
    }
  }

  /** Stops the refresh timers and every wait for another instance's load. */
  stop (): void {
    this.stopped = true
    for (const timer of this.timers) clearInterval(timer)
    this.timers.length = 0
    this.options.lock?.close?.()
  }

  private refreshInBackground (key: string, interval: number): void {
    this.mayRefresh(key, interval).then(async (mine) => { if (mine) await this.refresh(key) }).catch((error: unknown) => {
      this.log.logger.warn({ err: error, cacheLevel: 'app', key: this.log.key(key) }, `appCache: refreshing "${this.log.key(key)}" failed; serving the last good value`)
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

  /** The store's answer; a store that throws instead of rejecting is read as a rejection. */
  private read (key: string): unknown {
    try {
      return this.options.store.get(key)
    } catch (error) {
      return Promise.reject(error)
    }
  }

  private async afterLookup<T> (key: string, found: unknown, loader: Loader<T> | undefined, ttl: number): Promise<T | undefined> {
    let value: unknown
    try {
      value = await found
    } catch (error) {
      // A store that fails or runs out of time is a miss: the loader answers, the app keeps serving.
      this.fault('get', key, error)
    }
    if (value !== undefined) {
      this.stats.hits++
      return value as T
    }
    this.stats.misses++
    this.log.miss(key)
    if (loader === undefined) return undefined
    return await this.loads.loadOnce(key, (flight) => this.load(key, loader, ttl, flight, true))
  }

  /**
   * Runs the loader and stores its value. The callers of a miss get the value as soon as the loader has it, while
   * the write goes on behind them (a memory tier is filled at once): a stalled store costs a miss one time budget,
   * not two. A refresh, and the holder of the cross-instance lock, wait for the write, because others look for the
   * value in the store as soon as they are told. A `cold` load is a miss; otherwise it is a refresh, which fences
   * every load of the key that started before it, on every instance.
   */
  private async load<T> (key: string, loader: Loader<T>, ttl: number, flight: Flight, cold: boolean): Promise<T> {
    const fence = await this.fenceBefore(key, cold)
    const lock = cold ? this.options.lock : undefined
    if (lock === undefined) return await this.loadAndStore(key, loader, ttl, flight, fence, !cold)
    // One lock per key and fence: after a change, the load of the new fence does not wait for one of the old.
    const name = typeof fence === 'string' ? `${key}@${fence}` : key
    const token = await lock.acquire(name).catch((error: unknown) => { this.fault('lock', key, error); return '' })
    if (token === undefined) {
      // Another instance is loading this key: take its value when it lands, or load once it let go without one.
      const landed = await lock.waitFor(this.options.store, key, name).catch((error: unknown) => {
        if (this.stopped) throw error
        this.fault('lock', key, error)
        return undefined
      })
      if (landed !== undefined) return landed as T
      return await this.loadAndStore(key, loader, ttl, flight, fence, false)
    }
    try {
      return await this.loadAndStore(key, loader, ttl, flight, fence, token !== '')
    } finally {
      // At once, whatever the outcome: waiters stop waiting as soon as the lock is free.
      if (token !== '') await lock.release(name, token).catch((error: unknown) => { this.fault('unlock', key, error) })
    }
  }

  private async loadAndStore<T> (key: string, loader: Loader<T>, ttl: number, flight: Flight, fence: string | undefined | null, awaitWrite: boolean): Promise<T> {
    const loaded = await countLoad(this.stats, loader, (ms, error) => { this.log.loaded(key, ms, error) })
    if (loaded === undefined) return loaded
    // The callers get what every later hit will get, on every instance; a value the store cannot keep is refused.
    const { store } = this.options
    let value: T
    try {
      value = (store.stored === undefined ? loaded : store.stored(key, loaded)) as T
    } catch (error) {
      if (!(error instanceof EntryTooLargeError)) throw error
      // Data that outgrew the bound is served uncached, not refused: the next miss loads it again.
      this.tooLarge(key, error)
      return loaded
    }
    if (!flight.fenced && fence !== null) {
      const written = this.write(key, value, ttl, fence)
      if (awaitWrite) await written
    }
    return value
  }

  /**
   * The shared fence a load starts under: read for a miss, moved for a refresh. undefined without shared fences;
   * null when the store could not tell, and then the load writes nothing.
   */
  private async fenceBefore (key: string, cold: boolean): Promise<string | undefined | null> {
    const fences = this.options.store.fences
    if (fences === undefined) return undefined
    try {
      return await (cold ? fences.read(key) : fences.bump(key))
    } catch (error) {
      this.fault('fence', key, error)
      return null
    }
  }

  /**
   * Stores a loaded value, under the fence its load started with where the store keeps fences. Never rejects: a
   * failure is counted and logged, and the next miss loads again.
   */
  private async write (key: string, value: unknown, ttl: number, fence: string | undefined): Promise<void> {
    const { store } = this.options
    try {
      if (fence === undefined || store.fences === undefined) await store.set(key, value, ttl)
      else await store.fences.setIf(key, value, ttl, fence)
    } catch (error) {
      if (error instanceof EntryTooLargeError) this.tooLarge(key, error)
      else this.fault('set', key, error)
    }
  }

  private tooLarge (key: string, error: unknown): void {
    this.stats.oversized++
    this.log.warn({ err: error, key }, `appCache: "${this.log.key(key)}" is too large to cache; it is loaded on every miss`)
  }

  private fault (operation: string, key: string, error: unknown): void {
    this.stats.storeErrors++
    this.log.warn({ err: error, operation, key }, `appCache: the store failed (${operation}); answering from the loader`)
  }
}
