import type { BatchLoad, BatchResult, BatchValue } from './batch.js'
import { BatchLoader } from './batch-loader.js'
import type { Duration } from './durations.js'
import { InvalidOptionError, UnsupportedError, describe } from './errors.js'
import { KeyRule } from './keys.js'
import type { AppCache } from './scopes/application.js'
import type { RequestCache } from './scopes/request.js'
import type { SessionCache } from './scopes/session.js'
import { promiseOf } from './store.js'

/** The level a value is loaded into by `request.cache.getOrLoad`. */
export type CacheLevel = 'request' | 'session' | 'app'

export interface LookupLoadOptions {
  /** Where a loaded value is stored: the lookup reads from the request level up to this one. */
  level: CacheLevel
  /** Time to live at that level (ignored at request level, which lasts one request). */
  ttl?: Duration
  /** After `ttl`, how long the value is still served at once while a new one loads (session and app levels). */
  staleWhileRevalidate?: Duration
  /** At app level: what `getOrLoad` takes besides (`graceOnError`, timeouts, `tags`). */
  graceOnError?: Duration
  softTimeout?: Duration
  hardTimeout?: Duration
  tags?: readonly string[]
}

const LEVELS: readonly CacheLevel[] = ['request', 'session', 'app']
const MANY = 'request.cache.getOrLoadMany'

/**
 * The hierarchical lookup of one request: request → session → application → loader. A value found at a broader
 * level is memoised in the request level, so one request sees one value per key even if a broader level changes
 * while it runs.
 */
export class CacheLookup {
  constructor (
    private readonly request: RequestCache | undefined,
    private readonly session: SessionCache | undefined,
    private readonly app: AppCache | undefined,
    /** The lookup's own key rule (`multiCache`'s `maxKeyLength`): a key it refuses reaches no level. */
    private readonly keys: KeyRule = new KeyRule()
  ) {}

  /** The first value found from the request level up, or undefined. Never calls a loader (but a defined app key's). */
  get<T = unknown> (key: string): Promise<T | undefined> {
    if (!this.keys.valid(key)) return this.keys.reject(key)
    const memo = this.request?.memo<T>(key)
    if (memo !== undefined) return promiseOf(memo)
    return this.fromBroaderLevels(key)
  }

  /** The first value found from the request level up to `level`, or the loader's value stored at `level`. */
  getOrLoad<T> (key: string, loader: () => T | PromiseLike<T>, options: LookupLoadOptions): Promise<T> {
    if (!this.keys.valid(key)) return this.keys.reject(key)
    const level = options?.level
    if (!LEVELS.includes(level)) {
      return Promise.reject(new InvalidOptionError('request.cache.getOrLoad', 'level', `must be one of ${LEVELS.join(', ')}`, describe(level)))
    }
    if (level === 'request') return this.request?.getOrLoad(key, loader) ?? Promise.reject(notRegistered(level))
    const memo = this.request?.memo<T>(key)
    if (memo !== undefined) return promiseOf(memo)
    return this.loadBroader(key, loader, level, options)
  }

  /**
   * `getOrLoad` of each of `keys`, with the loader called once for the keys no level up to `level` holds: it answers
   * their values in their order, or a Map or an object by key (a key it leaves out stays a miss). At the application
   * level the keys the session lacks go to `appCache.getOrLoadMany` together; at the request and session levels each key
   * is the level's own `getOrLoad`, their loads gathered into that one call.
   */
  getOrLoadMany<R extends BatchResult<string, unknown>> (keys: readonly string[], loader: BatchLoad<string, R>, options: LookupLoadOptions): Promise<Array<BatchValue<R>>> {
    let checked: string[]
    try {
      checked = this.keys.checkedKeys(MANY, keys)
      if (!LEVELS.includes(options?.level)) {
        throw new InvalidOptionError(MANY, 'level', `must be one of ${LEVELS.join(', ')}`, describe(options?.level))
      }
    } catch (error) {
      return Promise.reject(error)
    }
    return this.loadMany(checked, loader, options) as Promise<Array<BatchValue<R>>>
  }

  private async loadMany (keys: readonly string[], loader: BatchLoad<string, BatchResult<string, unknown>>, options: LookupLoadOptions): Promise<unknown[]> {
    const { level, ...rest } = options
    if (level === 'request') {
      const request = this.enabled(this.request, level, MANY)
      const batch = this.batchOf(loader)
      return await Promise.all(keys.map(async (key) => await request.getOrLoad(key, async () => await batch.load(key))))
    }
    const values = new Map<string, unknown>()
    const missing: string[] = []
    for (const key of new Set(keys)) {
      const memo = this.request?.memo(key)
      if (memo === undefined) missing.push(key)
      else values.set(key, memo)
    }
    if (missing.length > 0) {
      const loaded = level === 'session' ? await this.sessionMany(missing, loader, rest) : await this.appMany(missing, loader, rest)
      missing.forEach((key, i) => { values.set(key, this.memoise(key, loaded[i])) })
    }
    return keys.map((key) => values.get(key))
  }

  private async sessionMany (keys: readonly string[], loader: BatchLoad<string, BatchResult<string, unknown>>, options: Omit<LookupLoadOptions, 'level'>): Promise<unknown[]> {
    const session = this.enabled(this.session, 'session', MANY)
    const batch = this.batchOf(loader)
    return await Promise.all(keys.map(async (key) => await session.getOrLoad(key, async () => await batch.load(key), options)))
  }

  private async appMany (keys: readonly string[], loader: BatchLoad<string, BatchResult<string, unknown>>, options: Omit<LookupLoadOptions, 'level'>): Promise<unknown[]> {
    const app = this.enabled(this.app, 'app', MANY)
    const session = this.session
    const fromSession = session === undefined ? [] : await Promise.all(keys.map(async (key) => await session.get(key)))
    const rest = keys.filter((_, i) => fromSession[i] === undefined)
    const fromApp = rest.length === 0 ? [] : await app.getOrLoadMany(rest, loader, options)
    let next = 0
    return keys.map((_, i) => fromSession[i] !== undefined ? fromSession[i] : fromApp[next++])
  }

  /** The loader of one call, for levels that load key by key: their loads of this tick become one call of it. */
  private batchOf (loader: BatchLoad<string, BatchResult<string, unknown>>): BatchLoader<string, unknown> {
    return new BatchLoader(MANY, loader, { keys: this.keys, maxEntries: this.keys.maxKeys })
  }

  private async fromBroaderLevels<T> (key: string): Promise<T | undefined> {
    let value = await this.session?.get<T>(key)
    if (value === undefined) value = await this.app?.get<T>(key)
    return this.memoise(key, value)
  }

  private async loadBroader<T> (key: string, loader: () => T | PromiseLike<T>, level: 'session' | 'app', options: LookupLoadOptions): Promise<T> {
    const { level: _level, ...rest } = options
    if (level === 'session') return this.memoise(key, await this.enabled(this.session, level).getOrLoad(key, loader, rest))
    const app = this.enabled(this.app, level)
    const fromSession = await this.session?.get<T>(key)
    return this.memoise(key, fromSession !== undefined ? fromSession : await app.getOrLoad(key, loader, rest))
  }

  private memoise<T> (key: string, value: T): T {
    if (value !== undefined) this.request?.memoize<unknown>(key, value)
    return value
  }

  private enabled<L> (level: L | undefined, name: CacheLevel, method = 'request.cache.getOrLoad'): L {
    if (level === undefined) throw notRegistered(name, method)
    return level
  }
}

function notRegistered (name: CacheLevel, method = 'request.cache.getOrLoad'): Error {
  return new UnsupportedError(`${method}: the ${name} level is not registered`)
}
