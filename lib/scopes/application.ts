import { DefineError, PreloadError } from '../errors.js'
import { assertKey, assertValue } from '../keys.js'
import { callTtl } from '../options.js'
import { SingleFlight } from '../single-flight.js'
import { LevelStats, countLoad } from '../stats.js'
import { isPromiseLike, type Store } from '../store.js'
import type { Duration } from '../durations.js'

export interface AppLevelOptions {
  store: Store
  /** Default time to live in ms; 0 means entries live until evicted. */
  ttl: number
  log: Logger
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

/** The part of a pino-style logger the level uses; `fastify.log` fits. */
export interface Logger {
  warn (details: object, message: string): void
}

interface Definition {
  loader: Loader<unknown>
  ttl: number
  refreshInterval: number
}

/**
 * Global data shared by every user. A miss on one key loads it once however many callers wait; keys declared
 * with `define()` are loaded before the app serves, refreshed in the background and reloaded when they expire.
 */
export class AppCache {
  readonly stats: LevelStats
  private readonly loads = new SingleFlight()
  private readonly definitions = new Map<string, Definition>()
  private readonly timers: NodeJS.Timeout[] = []
  private started = false

  constructor (private readonly options: AppLevelOptions) {
    this.stats = new LevelStats(() => options.store.size ?? 0)
  }

  get<T = unknown> (key: string): Promise<T | undefined> {
    assertKey(key)
    const found = this.options.store.get(key)
    if (found !== undefined && !isPromiseLike(found)) {
      this.stats.hits++
      return Promise.resolve(found as T)
    }
    const definition = this.definitions.get(key)
    return this.afterLookup(key, found, definition?.loader as Loader<T> | undefined, definition?.ttl ?? 0)
  }

  async has (key: string): Promise<boolean> {
    assertKey(key)
    return (await this.options.store.get(key)) !== undefined
  }

  async set<T> (key: string, value: T, options?: AppSetOptions): Promise<void> {
    assertKey(key)
    assertValue(key, value)
    await this.options.store.set(key, value, callTtl('appCache.set', options, this.options.ttl))
  }

  async delete (key: string): Promise<void> {
    assertKey(key)
    await this.options.store.delete(key)
  }

  async clear (): Promise<void> {
    await this.options.store.clear()
  }

  /**
   * The cached value, or the loader's value cached under `key`. However many callers miss at once, the loader runs
   * once and all of them get its value or its error. A failing loader caches nothing; neither does `undefined`.
   */
  getOrLoad<T> (key: string, loader: Loader<T>, options?: AppSetOptions): Promise<T> {
    assertKey(key)
    const found = this.options.store.get(key)
    if (found !== undefined && !isPromiseLike(found)) {
      this.stats.hits++
      return Promise.resolve(found as T)
    }
    return this.afterLookup(key, found, loader, callTtl('appCache.getOrLoad', options, this.options.ttl)) as Promise<T>
  }

  /**
   * Declares a global dataset: loaded before the server listens (a failure fails startup), reloaded every
   * `refreshInterval` (a failure keeps the last good value and logs a warning), and reloaded on a miss.
   */
  define<T> (key: string, loader: Loader<T>, options?: DefineOptions): void {
    assertKey(key)
    if (typeof loader !== 'function') throw new DefineError(key, 'the loader must be a function')
    if (this.started) throw new DefineError(key, 'must be called before the server is ready (use getOrLoad for keys found later)')
    if (this.definitions.has(key)) throw new DefineError(key, 'the key is already defined')
    const refreshInterval = callTtl('appCache.define', { ttl: options?.refreshInterval }, 0)
    this.definitions.set(key, { loader, ttl: callTtl('appCache.define', options, this.options.ttl), refreshInterval })
  }

  /** Reloads a defined key now and returns its new value. */
  async refresh<T = unknown> (key: string): Promise<T> {
    assertKey(key)
    const definition = this.definitions.get(key)
    if (definition === undefined) throw new DefineError(key, 'refresh() needs a key declared with define()')
    return await this.loads.loadOnce(key, () => this.load(key, definition.loader, definition.ttl)) as T
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
    for (const [key, { refreshInterval }] of this.definitions) {
      if (refreshInterval === 0) continue
      const timer = setInterval(() => { this.refreshInBackground(key) }, refreshInterval)
      timer.unref()
      this.timers.push(timer)
    }
  }

  /** Stops the refresh timers. */
  stop (): void {
    for (const timer of this.timers) clearInterval(timer)
    this.timers.length = 0
  }

  private refreshInBackground (key: string): void {
    this.refresh(key).catch((error: unknown) => {
      this.options.log.warn({ err: error, key }, `appCache: refreshing "${key}" failed; serving the last good value`)
    })
  }

  private async afterLookup<T> (key: string, found: unknown, loader: Loader<T> | undefined, ttl: number): Promise<T | undefined> {
    const value = await found
    if (value !== undefined) {
      this.stats.hits++
      return value as T
    }
    this.stats.misses++
    if (loader === undefined) return undefined
    return await this.loads.loadOnce(key, () => this.load(key, loader, ttl))
  }

  private async load<T> (key: string, loader: Loader<T>, ttl: number): Promise<T> {
    const value = await countLoad(this.stats, loader)
    if (value !== undefined) await this.options.store.set(key, value, ttl)
    return value
  }
}
