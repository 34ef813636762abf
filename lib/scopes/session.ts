import type { Duration } from '../durations.js'
import { UnsupportedError } from '../errors.js'
import { assertKey, assertValue, newSessionId, sessionStoreKey } from '../keys.js'
import { callTtl } from '../options.js'
import { SingleFlight } from '../single-flight.js'
import { LevelStats, countLoad } from '../stats.js'
import type { Store } from '../store.js'

export interface SessionLevelOptions {
  /** Inactivity expiry in ms: every read or write of a session restarts it. */
  ttl: number
  /** Most entries one session may hold; past it the oldest written entry is dropped. */
  maxEntriesPerSession: number
  /** Where sessions live; one value per session, under a hash of its id. */
  store: Store
}

/** Options of a single write. */
export interface SessionSetOptions {
  /** Time to live of this entry: ms or a duration string (it also ends with its session). */
  ttl?: Duration
}

/** Where the request says its session is: the id, and whether the cookie carrying it should be issued again. */
export interface PresentedId {
  id: string
  /** The id was signed with an older secret: re-issue the cookie once the session is known to exist. */
  reissue?: boolean
}

/** How the cookie must change when the response goes out. */
export type CookieChange = 'set' | 'clear' | undefined

interface Entry {
  value: unknown
  /** Epoch ms after which the entry is gone; 0 for none. */
  expires: number
}

/** One session's data. Kept by reference in the memory store, so concurrent requests of one session share it. */
export type SessionRecord = Map<string, Entry>

/** What all sessions share: the store, the bounds, the counters and the in-flight loads. */
export class SessionLevel {
  readonly stats: LevelStats
  readonly loads = new SingleFlight()

  constructor (readonly options: SessionLevelOptions) {
    this.stats = new LevelStats(() => options.store.size ?? 0)
  }

  /**
   * The session handle of one request. `presented` reads the id the request carries; `appOwnsId` means the app
   * identifies users itself (no cookie is issued and the id cannot be regenerated).
   */
  open (presented: () => PresentedId | undefined | PromiseLike<PresentedId | undefined>, appOwnsId = false): SessionCache {
    return new SessionCache(this, presented, appOwnsId)
  }
}

/**
 * One user's data across that user's requests. Created lazily on the first write: a request that only reads
 * never creates a session. An id that is unknown, expired or forged reads as an empty session.
 */
export class SessionCache {
  private current: { id: string, key: string, record: SessionRecord } | undefined
  private loading: Promise<void> | undefined
  /** The id the client's cookie carries, valid or not. */
  private held: string | undefined
  /** `current` exists in the store (found there or saved). */
  private stored = false
  private reissue = false
  private destroyed = false

  constructor (
    private readonly level: SessionLevel,
    private readonly presented: () => PresentedId | undefined | PromiseLike<PresentedId | undefined>,
    private readonly appOwnsId: boolean
  ) {}

  /** The session id, once a call of this request has found or created the session; undefined before. */
  get id (): string | undefined {
    return this.current?.id
  }

  /** How the cookie must change when the response goes out: read by the plugin in `onSend`. */
  get cookie (): CookieChange {
    if (this.appOwnsId) return undefined
    const current = this.current
    if (current !== undefined && this.stored) return current.id !== this.held || this.reissue ? 'set' : undefined
    return this.destroyed && this.held !== undefined ? 'clear' : undefined
  }

  async get<T = unknown> (key: string): Promise<T | undefined> {
    assertKey(key)
    await this.load()
    const value = this.read(key)
    if (value === undefined) this.level.stats.misses++
    else this.level.stats.hits++
    return value as T | undefined
  }

  async has (key: string): Promise<boolean> {
    assertKey(key)
    await this.load()
    return this.read(key) !== undefined
  }

  async set<T> (key: string, value: T, options?: SessionSetOptions): Promise<void> {
    assertKey(key)
    assertValue(key, value)
    await this.load()
    await this.write(key, value, callTtl('sessionCache.set', options, 0))
  }

  async delete (key: string): Promise<boolean> {
    assertKey(key)
    await this.load()
    const current = this.current
    if (current === undefined || !current.record.delete(key)) return false
    await this.save()
    return true
  }

  /** Drops every entry; the session and its id stay. */
  async clear (): Promise<void> {
    await this.load()
    if (this.current === undefined || this.current.record.size === 0) return
    this.current.record.clear()
    await this.save()
  }

  /**
   * The cached value, or the loader's value stored in the session. Concurrent calls for one session and key, from
   * any of its requests, share one loader call. A failing loader stores nothing; `undefined` is not stored.
   */
  async getOrLoad<T> (key: string, loader: () => T | PromiseLike<T>, options?: SessionSetOptions): Promise<T> {
    assertKey(key)
    const ttl = callTtl('sessionCache.getOrLoad', options, 0)
    await this.load()
    const stats = this.level.stats
    const cached = this.read(key)
    if (cached !== undefined) {
      stats.hits++
      return cached as T
    }
    stats.misses++
    const current = this.ensure()
    return await this.level.loads.loadOnce(current.key + '\n' + key, async () => {
      const loaded = await countLoad(stats, loader)
      if (loaded !== undefined) await this.write(key, loaded, ttl)
      return loaded
    })
  }

  /** A new id for the same data: call it after login, so that an id known before login is worth nothing. */
  async regenerate (): Promise<void> {
    if (this.appOwnsId) throw new UnsupportedError('sessionCache.regenerate() is not available with getSessionId: the app owns the session id')
    await this.load()
    const before = this.current
    const id = newSessionId()
    // A copy, so that a request still running under the old id cannot write into the new session.
    this.current = { id, key: sessionStoreKey(id), record: new Map(before?.record) }
    if (before !== undefined) await this.level.options.store.delete(before.key)
    await this.save()
  }

  /** Drops the session and its data; the cookie is cleared. */
  async destroy (): Promise<void> {
    await this.load()
    const before = this.current
    this.current = undefined
    this.stored = false
    this.destroyed = true
    if (before !== undefined) await this.level.options.store.delete(before.key)
  }

  private load (): Promise<void> {
    this.loading ??= this.find()
    return this.loading
  }

  private async find (): Promise<void> {
    const presented = await this.presented()
    if (presented === undefined) return
    this.held = presented.id
    const key = sessionStoreKey(presented.id)
    const record = await this.level.options.store.get(key) as SessionRecord | undefined
    if (record !== undefined) {
      this.current = { id: presented.id, key, record }
      this.stored = true
      this.reissue = presented.reissue === true
    } else if (this.appOwnsId) {
      // The app's id is authoritative: its session starts empty and is created under that id on first write.
      this.current = { id: presented.id, key, record: new Map() }
    }
  }

  private read (key: string): unknown {
    const record = this.current?.record
    const entry = record?.get(key)
    if (entry === undefined) return undefined
    if (entry.expires !== 0 && entry.expires <= Date.now()) {
      record?.delete(key)
      return undefined
    }
    return entry.value
  }

  private ensure (): { id: string, key: string, record: SessionRecord } {
    if (this.current === undefined) {
      const id = newSessionId()
      this.current = { id, key: sessionStoreKey(id), record: new Map() }
    }
    return this.current
  }

  private async write (key: string, value: unknown, ttl: number | undefined): Promise<void> {
    const record = this.ensure().record
    const bound = this.level.options.maxEntriesPerSession
    if (record.has(key)) {
      record.delete(key)
    } else if (record.size >= bound) {
      record.delete(record.keys().next().value as string)
      this.level.stats.evictions++
    }
    record.set(key, { value, expires: ttl === undefined || ttl === 0 ? 0 : Date.now() + ttl })
    await this.save()
  }

  private async save (): Promise<void> {
    const current = this.current as { key: string, record: SessionRecord }
    await this.level.options.store.set(current.key, current.record, this.level.options.ttl)
    this.stored = true
  }
}
