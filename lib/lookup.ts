import type { Duration } from './durations.js'
import { InvalidOptionError, UnsupportedError, describe } from './errors.js'
import { KeyRule } from './keys.js'
import type { AppCache } from './scopes/application.js'
import type { RequestCache } from './scopes/request.js'
import type { SessionCache } from './scopes/session.js'

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
    const memo = this.request?.get<T>(key)
    if (memo !== undefined) return Promise.resolve(memo)
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
    const memo = this.request?.get<T>(key)
    if (memo !== undefined) return Promise.resolve(memo)
    return this.loadBroader(key, loader, level, options)
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
    if (value !== undefined) this.request?.set<unknown>(key, value)
    return value
  }

  private enabled<L> (level: L | undefined, name: CacheLevel): L {
    if (level === undefined) throw notRegistered(name)
    return level
  }
}

function notRegistered (name: CacheLevel): Error {
  return new UnsupportedError(`request.cache.getOrLoad: the ${name} level is not registered`)
}
