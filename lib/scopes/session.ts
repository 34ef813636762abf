import type { Duration } from '../durations.js'
import { BurstLog, type Logger } from '../burst-log.js'
import { SerializeError, UnsupportedError } from '../errors.js'
import { assertKey, assertValue, newSessionId, sessionStoreKey } from '../keys.js'
import { callTtl } from '../options.js'
import { SingleFlight } from '../single-flight.js'
import { LevelStats, countLoad } from '../stats.js'
import type { Store } from '../store.js'
import { MemoryStore } from '../stores/memory.js'

export interface SessionLevelOptions {
  /** Inactivity expiry in ms: every request that uses a session restarts it. */
  ttl: number
  /** Most entries one session may hold; past it the oldest written entry is dropped. */
  maxEntriesPerSession: number
  /** Route caching (issue 8): most pages one session may hold, apart from its entries. Default 10. */
  maxPagesPerSession?: number
  /** Where sessions live, under a hash of their id: one hash per session where the store has `groups`. */
  store: Store
  /** Where store faults are reported, once per burst. */
  log?: Logger
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

/**
 * Marks a session in a grouped store (a Redis hash), so that a session whose entries are all gone still exists and
 * keeps its id. The empty string can never be a user's key.
 */
const MARKER = ''

/**
 * Route caching (issue 8): pages live in the session's record under names that start with this, which no user key may
 * (`set` and `getOrLoad` refuse them), so that they are counted apart from the entries and found by `regenerate`.
 */
const PAGE = '\u0000page:'

function isPage (name: string): boolean {
  return name.startsWith(PAGE)
}

/** Refuses a user key in the pages' namespace. */
function assertDataKey (key: string): void {
  if (isPage(key)) throw new UnsupportedError(`sessionCache: keys starting with ${JSON.stringify(PAGE)} are reserved for cached pages`)
}

/** What all sessions share: the store, the bounds, the counters, the in-flight loads, and how records are kept. */
export class SessionLevel {
  readonly stats: LevelStats
  readonly loads = new SingleFlight()
  /** The memory store keeps the record itself; any other store gets a plain object it can serialize. */
  private readonly byReference: boolean
  /** The store restarts a session's expiry when it is read; any other store is written again on read. */
  private readonly rolling: boolean

  private readonly faults: BurstLog | undefined

  constructor (readonly options: SessionLevelOptions) {
    this.stats = new LevelStats(() => options.store.size ?? 0)
    this.faults = options.log === undefined ? undefined : new BurstLog(options.log)
    this.byReference = options.store instanceof MemoryStore
    this.rolling = options.store instanceof MemoryStore && options.store.rolling
  }

  /**
   * The session handle of one request. `presented` reads the id the request carries; `appOwnsId` means the app
   * identifies users itself (no cookie is issued and the id cannot be regenerated).
   */
  open (presented: () => PresentedId | undefined | PromiseLike<PresentedId | undefined>, appOwnsId = false): SessionCache {
    return new SessionCache(this, presented, appOwnsId)
  }

  /** A session's record, restarting its expiry; undefined when it does not exist. */
  async read (key: string): Promise<SessionRecord | undefined> {
    const { store, ttl } = this.options
    if (store.groups !== undefined) {
      const fields = await store.groups.read(key, ttl)
      if (fields === undefined) return undefined
      const record: SessionRecord = new Map()
      for (const [name, entry] of Object.entries(fields)) if (name !== MARKER) record.set(name, entry as Entry)
      return record
    }
    const stored = await store.get(key)
    if (stored === undefined) return undefined
    // A store without groups that does not roll by itself only restarts an entry's expiry when it is written again.
    if (!this.rolling) await store.set(key, stored, ttl)
    return stored instanceof Map ? stored as SessionRecord : new Map(Object.entries(stored as Record<string, Entry>))
  }

  /** Stores the changes of `names` (written or removed), or the whole record when `names` is undefined. */
  async save (key: string, record: SessionRecord, names?: readonly string[]): Promise<void> {
    const { store, ttl } = this.options
    if (store.groups === undefined) {
      await store.set(key, this.byReference ? record : Object.fromEntries(record), ttl)
      return
    }
    // No prototype: `__proto__` is a user's key like any other, and must be written as a field, not as a prototype.
    const written: Record<string, unknown> = Object.create(null) as Record<string, unknown>
    written[MARKER] = 1
    const removed: string[] = []
    for (const name of names ?? record.keys()) {
      const entry = record.get(name)
      if (entry === undefined) removed.push(name)
      else written[name] = entry
    }
    if (removed.length > 0) await store.groups.remove(key, removed, ttl)
    await store.groups.write(key, written, ttl)
  }

  async drop (key: string): Promise<void> {
    await this.options.store.delete(key)
  }

  /** Counts a store operation that failed or ran out of time, and logs the first of a burst. */
  fault (operation: string, error: unknown): void {
    this.stats.storeErrors++
    this.faults?.warn({ err: error, operation }, `sessionCache: the store failed (${operation}); reads miss and writes fail until it answers`)
  }

  /**
   * The record the memory store holds now, read synchronously; undefined for other stores. Lets a request that
   * found no session join the one a concurrent request of the same app-given id has just created.
   */
  held (key: string): SessionRecord | undefined {
    return this.byReference ? this.options.store.get(key) as SessionRecord | undefined : undefined
  }
}

/**
 * The oldest-written entry of one kind (pages, or the user's entries) once that kind holds `max`: what a new one
 * replaces. Only counts when the record is that full at all, so that a write below the bounds scans nothing.
 */
function oldestBeyond (record: SessionRecord, pages: boolean, max: number): [string, Entry] | undefined {
  if (record.size < max) return undefined
  let count = 0
  let oldest: [string, Entry] | undefined
  for (const held of record) {
    if (isPage(held[0]) !== pages) continue
    oldest ??= held
    count++
  }
  return count >= max ? oldest : undefined
}

interface Current {
  id: string
  key: string
  record: SessionRecord
}

/**
 * One user's data across that user's requests. Created lazily on the first write: a request that only reads
 * never creates a session. An id that is unknown, expired or forged reads as an empty session. When the store
 * cannot be read, reads miss and loaders answer, but writes fail: a session is never given a new id, and never
 * overwritten, because its store was briefly out of reach.
 */
export class SessionCache {
  private current: Current | undefined
  private loading: Promise<void> | undefined
  /** The id the client's cookie carries, valid or not. */
  private held: string | undefined
  /** `current` exists in the store (found there or saved). */
  private stored = false
  private reissue = false
  private destroyed = false
  /** Why the session could not be read, when it could not. */
  private unreadable: unknown

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
    assertDataKey(key)
    assertValue(key, value)
    const ttl = callTtl('sessionCache.set', options, 0)
    await this.writable()
    await this.write(key, value, ttl)
  }

  async delete (key: string): Promise<boolean> {
    assertKey(key)
    await this.writable()
    const current = this.current
    if (current === undefined || !current.record.delete(key)) return false
    await this.level.save(current.key, current.record, [key])
    return true
  }

  /** Drops every entry; the session and its id stay. */
  async clear (): Promise<void> {
    await this.writable()
    const current = this.current
    if (current === undefined || current.record.size === 0) return
    const names = [...current.record.keys()]
    current.record.clear()
    await this.level.save(current.key, current.record, names)
  }

  /**
   * The cached value, or the loader's value stored in the session. Concurrent calls for one session and key, from
   * any of its requests, share one loader call. A failing loader stores nothing; `undefined` is not stored.
   */
  async getOrLoad<T> (key: string, loader: () => T | PromiseLike<T>, options?: SessionSetOptions): Promise<T> {
    assertKey(key)
    assertDataKey(key)
    const ttl = callTtl('sessionCache.getOrLoad', options, 0)
    await this.load()
    const stats = this.level.stats
    const cached = this.read(key)
    if (cached !== undefined) {
      stats.hits++
      return cached as T
    }
    stats.misses++
    if (this.unreadable !== undefined) return await countLoad(stats, loader)
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
    await this.writable()
    const before = this.current
    const id = newSessionId()
    // A copy, so that a request still running under the old id cannot write into the new session. Cached pages stay
    // behind (issue 8): they were made for whoever used the session before, and the next user must not see them.
    const kept: SessionRecord = new Map()
    for (const [name, entry] of before?.record ?? []) if (!isPage(name)) kept.set(name, entry)
    this.current = { id, key: sessionStoreKey(id), record: kept }
    await this.level.save(this.current.key, this.current.record)
    this.stored = true
    if (before !== undefined) await this.level.drop(before.key)
  }

  /** Drops the session and its data; the cookie is cleared. */
  async destroy (): Promise<void> {
    await this.writable()
    const before = this.current
    this.current = undefined
    this.stored = false
    this.destroyed = true
    if (before !== undefined) await this.level.drop(before.key)
  }

  private load (): Promise<void> {
    this.loading ??= this.find()
    return this.loading
  }

  /** Loads, then refuses to write a session that could not be read. */
  private async writable (): Promise<void> {
    await this.load()
    if (this.unreadable !== undefined) throw this.unreadable
  }

  private async find (): Promise<void> {
    const presented = await this.presented()
    if (presented === undefined) return
    this.held = presented.id
    const key = sessionStoreKey(presented.id)
    let record: SessionRecord | undefined
    try {
      record = await this.level.read(key)
    } catch (error) {
      this.level.fault('read', error)
      this.unreadable = error
      return
    }
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

  private ensure (): Current {
    if (this.current === undefined) {
      const id = newSessionId()
      this.current = { id, key: sessionStoreKey(id), record: new Map() }
    }
    return this.current
  }

  private async write (key: string, value: unknown, ttl: number): Promise<void> {
    const current = this.ensure()
    if (!this.stored && this.appOwnsId) this.join(current)
    const record = current.record
    const changed = [key]
    const previous = record.get(key)
    let evicted: [string, Entry] | undefined
    if (previous !== undefined) {
      record.delete(key)
    } else {
      // Pages and entries have bounds of their own (issue 8): one kind never pushes out the other.
      const { maxEntriesPerSession, maxPagesPerSession = 10 } = this.level.options
      const page = isPage(key)
      evicted = oldestBeyond(record, page, page ? maxPagesPerSession : maxEntriesPerSession)
      if (evicted !== undefined) {
        record.delete(evicted[0])
        changed.push(evicted[0])
      }
    }
    record.set(key, { value, expires: ttl === 0 ? 0 : Date.now() + ttl })
    try {
      // A session first written here is stored whole (its marker included); later writes touch their fields only.
      await this.level.save(current.key, record, this.stored ? changed : undefined)
    } catch (error) {
      // Nothing was stored (a value the serializer refuses, a store fault): the request must not see it either.
      record.delete(key)
      if (previous !== undefined) record.set(key, previous)
      if (evicted !== undefined) record.set(...evicted)
      if (!(error instanceof SerializeError)) this.level.fault('write', error)
      throw error
    }
    if (evicted !== undefined) this.level.stats.evictions++
    this.stored = true
  }

  // ---- Route caching (issue 8): the session's cached pages --------------------------------------------------------
  // A minimal page store for `config.cache: { level: 'session' }`, apart from the data API. Pages never create a
  // session, count against `maxPagesPerSession` only, and go with `regenerate()`, `destroy()` and `clear()`.

  /** The page stored under `key`, or undefined (also when there is no session, or it cannot be read). */
  async getPage (key: string): Promise<unknown> {
    await this.load()
    return this.read(PAGE + key)
  }

  /**
   * Stores a page for `ttl` ms in the session this request found; false, storing nothing, when there is none: a page
   * never creates a session. Rejects when the store fails.
   */
  async setPage (key: string, page: unknown, ttl: number): Promise<boolean> {
    await this.load()
    if (this.current === undefined || !this.stored) return false
    await this.write(PAGE + key, page, ttl)
    return true
  }

  /** Drops this session's cached pages: call it when what they show has changed (an item added to the cart). */
  async dropPages (): Promise<void> {
    await this.writable()
    const current = this.current
    if (current === undefined || !this.stored) return
    const names = [...current.record.keys()].filter(isPage)
    if (names.length === 0) return
    for (const name of names) current.record.delete(name)
    await this.level.save(current.key, current.record, names)
  }

  /**
   * Concurrent first requests of one app-given id each found no session: the first write creates it, and the others
   * join that record rather than overwrite it with their own. Synchronous up to the save, so nothing runs between.
   */
  private join (current: Current): void {
    const created = this.level.held(current.key)
    if (created === undefined || created === current.record) return
    for (const [name, entry] of current.record) created.set(name, entry)
    current.record = created
  }
}
