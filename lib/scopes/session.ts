import { randomBytes } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import type { Duration } from '../durations.js'
import type { Logger } from '../burst-log.js'
import { EntryTooLargeError, InvalidOptionError, NoSessionError, SerializeError, UnsupportedError, describe } from '../errors.js'
import { type Defined, KeyRule, assertValue, newSessionId, sessionStoreKey } from '../keys.js'
import { observe, observeLookup, observeDrop, observeLoad, type CacheOperation } from '../events.js'
import { hash32 } from '../key-patterns.js'
import { LevelLog } from '../level-log.js'
import { TTL_CLOCK } from '../lru.js'
import { callDuration, callTtl } from '../options.js'
import { SingleFlight } from '../single-flight.js'
import { LevelStats, countLoad } from '../stats.js'
import { andThen, deleteKeys, emptyRecord, isPromiseLike, type Awaitable, type Group, type GroupChange, type GroupOperations, type Store } from '../store.js'
import { keyedGroups } from '../stores/keyed-groups.js'
import { SessionUsers, type UserSession } from './session-users.js'

export interface SessionLevelOptions {
  /** Inactivity expiry in ms: every request that uses a session restarts it. */
  ttl: number
  /** Most entries one session may hold; past it the oldest written entry is dropped. */
  maxEntriesPerSession: number
  /** Most pages one session may hold for route caching, apart from its entries. Default 10. */
  maxPagesPerSession?: number
  /**
   * Where sessions live, under a hash of their id: sessions that were regenerated (logged in) or whose id the app
   * gives, and every session when `anonymous` is not given.
   */
  store: Store
  /**
   * Where sessions that were never regenerated live, bounded apart, so that a crowd of anonymous visitors cannot push
   * logged-in users out of `store`. The plugin gives one with the memory store.
   */
  anonymous?: Store
  /** Where store faults are reported, once per burst. */
  log?: Logger
  /** Longest key taken, in characters. Default 1,024. */
  maxKeyLength?: number
  /** Ends a session this long after it was created, however active (ms; 0: never). Default 0. */
  absoluteTtl?: number
  /** Default `staleWhileRevalidate` of every entry, in ms. Default 0. */
  staleWhileRevalidate?: number
  /**
   * Where each user's index of sessions lives (see `SessionUsers`); default `store`. Given (the memory store), an index
   * lives exactly as long as a session it lists: the memory pools tell the level of every session they drop
   * (`dropped`). Without it, an index lives `absoluteTtl` after its last link, or twice `ttl` after its user's last
   * request (each instance restarts it at most once per half `ttl`).
   */
  users?: Store
  /** Most sessions of one user: a login past it ends the user's earliest linked session. Default 1,000. */
  maxSessionsPerUser?: number
  /** The name of the cookie that carries the id, when a cookie does: route caching never takes it for an ignorable one. */
  cookieName?: string
  /** false: log lines show a short hash of each key instead of the key. Default true. */
  logKeys?: boolean
}

/** Options of `regenerate()`. */
export interface RegenerateOptions {
  /** Links the new session to this user (see `setUser`). Default: the user the session had, if any. */
  user?: string
}

/** Options of `destroyAllOf()`. */
export interface DestroyAllOptions {
  /** Keep the session of this request (a password change ends the others, not the one it was made in). */
  keepCurrent?: boolean
}

/** Options of a single write. */
export interface SessionSetOptions {
  /** Time to live of this entry: ms or a duration string (it also ends with its session). */
  ttl?: Duration
  /**
   * After `ttl`, how long the entry is still served: at once, while `getOrLoad` loads a new value behind it. Ms or a
   * duration string; default the level's.
   */
  staleWhileRevalidate?: Duration
}

/** Where the request says its session is: the id, and whether the cookie carrying it should be issued again. */
export interface PresentedId {
  id: string
  /** The id's store key (`sessionStoreKey(id)`), when the caller already has it. */
  key?: string
  /** The id was signed with an older secret: re-issue the cookie once the session is known to exist. */
  reissue?: boolean
}

/** How the cookie must change when the response goes out. */
export type CookieChange = 'set' | 'clear' | undefined

/** A user's entry as a group field holds it. */
interface Entry {
  value: unknown
  /** Epoch ms after which the entry is gone; 0 for none. */
  expires: number
  /** Epoch ms of the write: the oldest written goes first when the session is full. */
  at: number
  /** Epoch ms until which it may be served stale, past `expires` (`staleWhileRevalidate`). */
  stale?: number
}

/**
 * Field names: a prefix keeps users' entries apart from the pages route caching keeps in a session, so that no key
 * of a user's can name a page, and each kind has its own bound.
 */
const DATA = 'd:'
const PAGE = 'p:'
/** What describes the session rather than holds its data: kept by `clear()`. */
const META = 'm:'
/** The user a session is linked to (`setUser`, `regenerate({ user })`). */
const USER = META + 'user'
/** The generation of the session's pages, moved by `dropPages()` and `clear()`. */
const PAGES = META + 'pages'

/** Where an entry stands now: served as it is, served while a new value loads, or gone. */
function entryState (entry: Entry | undefined): 'fresh' | 'stale' | 'gone' {
  if (entry === undefined) return 'gone'
  if (entry.expires === 0) return 'fresh'
  const now = Date.now()
  if (now < entry.expires) return 'fresh'
  return entry.stale !== undefined && now < entry.stale ? 'stale' : 'gone'
}

/** An entry's value, while it may be served; undefined once it is gone. */
function valueOf (entry: Entry | undefined): unknown {
  return entryState(entry) === 'gone' ? undefined : (entry as Entry).value
}

/**
 * A page as a session field holds it: one variant of the responses stored under `key`. Each variant is a field of its
 * own, so that the bound on a session's pages counts every variant a client's headers can make.
 */
interface Page {
  generation: string
  key: string
  variant: string
  page: unknown
}

/** The field of one variant of a page: every variant of `key` starts with `pagePrefix(key)`. */
function pageField (key: string, variant: string): string {
  return pagePrefix(key) + variant
}

function pagePrefix (key: string): string {
  return PAGE + key + '\0'
}

/** One of the stores sessions live in, with its group operations (native, or emulated over whole values). */
interface Pool {
  store: Store
  groups: GroupOperations
}

/** A session as read from its pool. */
interface Found {
  pool: Pool
  group: Group
}

/**
 * What all sessions share: the stores, the bounds, the counters and the in-flight loads. A session is a group of
 * fields under a fence (see `GroupOperations`): a request reads its own snapshot, writes field by field under the
 * fence it read, and once the session is ended (destroyed, regenerated) no request can write it back.
 */
export class SessionLevel {
  readonly stats: LevelStats
  readonly keys: KeyRule
  readonly loads = new SingleFlight()
  /**
   * Keys the sessions' tokens on the event stream (`usageOf`): a 32-bit hash of the id under a key of this process's,
   * so that what a subscriber is handed tells sessions apart and leads to none.
   */
  readonly tokenSeed = randomBytes(4).readUInt32LE(0)
  /** Regenerated (logged-in) sessions and app-given ids; every session when there is no separate anonymous pool. */
  readonly known: Pool
  readonly anonymous: Pool
  readonly users: SessionUsers
  readonly log: LevelLog | undefined
  /** Users whose index this instance restarted lately, when indexes live by their users' activity. */
  private readonly touched: LRUCache<string, true> | undefined

  constructor (readonly options: SessionLevelOptions) {
    const { store, anonymous, ttl, absoluteTtl = 0 } = options
    // Without groups a session's head is written once; it lives its absolute lifetime, else a day, or the
    // inactivity ttl if that is longer.
    const lifetime = absoluteTtl > 0 ? absoluteTtl : Math.max(ttl, 86_400_000)
    const pool = (s: Store): Pool => ({ store: s, groups: s.groups ?? keyedGroups(s, lifetime) })
    this.known = pool(store)
    this.anonymous = anonymous === undefined ? this.known : pool(anonymous)
    // An index outlives every session it lists: in memory it goes with its last session; in a shared store, whose
    // sessions expire by themselves, it lives the absolute lifetime of its last linked session, or twice the
    // inactivity ttl from a touch made at least every half ttl while one of its sessions is used.
    const indexLifetime = options.users !== undefined ? 0 : absoluteTtl > 0 ? absoluteTtl : 2 * ttl
    if (options.users === undefined && absoluteTtl === 0) this.touched = new LRUCache({ max: 10_000, ttl: Math.max(1, Math.floor(ttl / 2)), ...TTL_CLOCK })
    this.users = new SessionUsers({
      groups: options.users === undefined ? this.known.groups : pool(options.users).groups,
      lifetime: indexLifetime,
      max: options.maxSessionsPerUser ?? 1000,
      alive: async (keys) => await this.alive(keys),
      end: async (keys) => { await this.end(keys) }
    })
    this.stats = new LevelStats(() => (store.size ?? 0) + (anonymous?.size ?? 0), anonymous !== undefined)
    this.log = options.log === undefined ? undefined : new LevelLog('sessionCache', 'session', options.log, options.logKeys)
    this.keys = new KeyRule(options.maxKeyLength, undefined, store.exactKeys !== true || (anonymous !== undefined && anonymous.exactKeys !== true))
  }

  /**
   * The session handle of one request. `presented` reads the id the request carries; `appOwnsId` means the app
   * identifies users itself (no cookie is issued, the id cannot be regenerated, and without an id nothing is stored).
   * `log`: the request's logger, for the lines this request causes.
   */
  open (presented: () => PresentedId | undefined | PromiseLike<PresentedId | undefined>, appOwnsId = false, log?: Logger): SessionCache {
    return new SessionCache(this, presented, appOwnsId, log)
  }

  /**
   * The session stored under `key` and the pool that holds it, restarting its expiry; undefined when there is none. At
   * once when a memory tier holds it: a request's first call then reads its session without a turn of the event loop.
   */
  read (key: string): Awaitable<Found | undefined> {
    const { ttl } = this.options
    return andThen(this.known.groups.read(key, ttl), (group) => {
      if (group !== undefined) return { pool: this.known, group }
      if (this.anonymous === this.known) return undefined
      return andThen(this.anonymous.groups.read(key, ttl), (anonymous) => anonymous === undefined ? undefined : { pool: this.anonymous, group: anonymous })
    })
  }

  /** The sessions linked to `user` (by `setUser` or `regenerate({ user })`), listed by their store keys. */
  async sessionsOf (user: string): Promise<UserSession[]> {
    return await this.users.sessionsOf(user)
  }

  /**
   * Ends every session linked to `user`, on every instance (after a password change, or "log out everywhere"), but
   * the one stored under `except`. Answers how many there were.
   */
  async destroyAllOf (user: string, except?: string): Promise<number> {
    const keys = await this.users.take(user)
    const ended = keys.filter((key) => key !== except)
    try {
      const alive = await this.alive(ended)
      await this.end(ended)
      return alive.filter(Boolean).length
    } catch (error) {
      // The index is taken: linked again, the sessions that may not have ended are found by a retry, which ends them
      // and tells the other instances. Best effort: the call fails either way.
      await Promise.all(ended.map(async (key) => { await this.users.link(user, key) })).catch(() => {})
      throw error
    } finally {
      if (except !== undefined && keys.includes(except)) await this.users.link(user, except)
    }
  }

  /** Deletes the sessions stored under `keys`, from every pool. */
  async end (keys: readonly string[]): Promise<void> {
    await Promise.all(this.pools().map(async ({ store }) => { await deleteKeys(store, keys) }))
  }

  /** Which of the sessions stored under `keys` exist, in any pool, without restarting their expiry. */
  async alive (keys: readonly string[]): Promise<boolean[]> {
    if (keys.length === 0) return []
    const found = await Promise.all(this.pools().map(async ({ groups }) => {
      if (groups.exists !== undefined) return await groups.exists(keys)
      return await Promise.all(keys.map(async (key) => await groups.read(key, 0) !== undefined))
    }))
    return keys.map((_, i) => found.some((pool) => pool[i] === true))
  }

  /** A session the memory store dropped by itself (evicted, expired) leaves its user's index. */
  dropped (key: string, session: unknown): void {
    const user = (session as Group | undefined)?.fields?.[USER]
    if (typeof user === 'string') this.users.unlink(user, key).catch((error: unknown) => { this.fault('unlink', error) })
  }

  /** A session of `user` is in use: its index must outlive it (restarted at most once per half ttl per instance). */
  using (user: string, log?: Logger): void {
    const touched = this.touched
    if (touched === undefined || touched.has(user)) return
    touched.set(user, true)
    this.users.touch(user).catch((error: unknown) => { this.fault('touch', error, log) })
  }

  private pools (): Pool[] {
    return this.anonymous === this.known ? [this.known] : [this.known, this.anonymous]
  }

  /** A session created before this is over, whatever its activity; 0 without an absolute lifetime. */
  createdBefore (): number {
    const { absoluteTtl = 0 } = this.options
    return absoluteTtl > 0 ? Date.now() - absoluteTtl : 0
  }

  /** Logs a background load that failed (its stale value stays), once per burst. */
  backgroundFailed (key: string, error: unknown, log?: Logger): void {
    this.log?.warn({ err: error, key }, `sessionCache: the background load of "${this.log.key(key)}" failed; its stale value is served until its window ends`, log)
  }

  /** Counts a store operation that failed or ran out of time, and logs the first of a burst (through `log`). */
  fault (operation: string, error: unknown, log?: Logger): void {
    this.stats.storeErrors++
    this.log?.warn({ err: error, operation }, `sessionCache: the store failed (${operation}); reads miss and writes fail until it answers`, log)
  }
}

/** The session a request works with: where it lives, and this request's view of its fields. */
interface Current {
  id: string
  key: string
  fence: string
  pool: Pool
  /**
   * The fields as read, with this request's own changes applied. Never changed in place: as read, it may be the
   * memory store's own object (see `withChange`).
   */
  fields: Readonly<Record<string, unknown>>
  /** Names not in `fields` may still exist in the store (see `Group.partial`). */
  partial: boolean
  /** The group exists in the store: it was found there or created by this request. */
  stored: boolean
}

/**
 * One user's data across that user's requests. Created lazily on the first write: a request that only reads
 * never creates a session. An id that is unknown, expired or forged reads as an empty session. When the store
 * cannot be read, reads miss and loaders answer, but writes fail: a session is never given a new id, and never
 * overwritten, because its store was briefly out of reach.
 *
 * Each request works on its own snapshot of the session. Its writes change only the fields they name, and only
 * while the session it read still exists: after another request destroyed or regenerated it, they go nowhere.
 */
export class SessionCache {
  private current: Current | undefined
  private loading: Promise<void> | undefined
  private loaded = false
  /** A regenerate() under way: calls made after it wait for the new session. */
  private renewing: Promise<void> | undefined
  /** The creation of the session by this request's first write, while a remote store has not answered it. */
  private creating: Promise<void> | undefined
  /** The id the client's cookie carries, valid or not. */
  private held: string | undefined
  private reissue = false
  private destroyed = false
  /** Why the session could not be read, when it could not. */
  private unreadable: unknown

  constructor (
    private readonly level: SessionLevel,
    private readonly presented: () => PresentedId | undefined | PromiseLike<PresentedId | undefined>,
    private readonly appOwnsId: boolean,
    private readonly log?: Logger
  ) {}

  private tokenOf: (() => number | undefined) | undefined

  /**
   * This session's token on the event stream (see `SessionLevel.tokenSeed`), undefined while it has no id; asked for
   * only by a listener. Made on first use: a request whose session is only read, and never observed, allocates nothing.
   */
  private get token (): () => number | undefined {
    this.tokenOf ??= () => {
      const id = this.current?.id
      return id === undefined ? undefined : hash32(id, this.level.tokenSeed)
    }
    return this.tokenOf
  }

  /** The session id, once a call of this request has found or created the session; undefined before. */
  get id (): string | undefined {
    return this.current?.id
  }

  /** How the cookie must change when the response goes out: read by the plugin in `onSend`. */
  get cookie (): CookieChange {
    if (this.appOwnsId) return undefined
    const current = this.current
    if (current?.stored === true) return current.id !== this.held || this.reissue ? 'set' : undefined
    return this.destroyed && this.held !== undefined ? 'clear' : undefined
  }

  get<T = unknown> (key: string): Promise<T | undefined> {
    const op = observeLookup('session', 'get', key, undefined, this.level)
    return op === undefined ? this.lookup(key) : op.within(this.token).run(this, this.lookup<T>, key, op)
  }

  private async lookup<T> (key: string, op?: CacheOperation): Promise<T | undefined> {
    this.level.keys.assert(key)
    // Every method starts so, and awaits a step only when it is a promise: once the session was read, a memory store
    // answers at once and each call runs to its end when it is made, so that calls not awaited one by one still
    // take effect in the order they were made (with a remote store, their commands are sent in that order).
    const ready = this.ready()
    if (ready !== undefined) await ready
    const found = this.entry(DATA + key)
    const entry = isPromiseLike(found) ? await found : found
    const value = valueOf(entry)
    if (value === undefined) {
      if (entry !== undefined) observeDrop('session', key, 'expire', this.level, this.token)
      this.missed(key)
      op?.missed()
    } else {
      this.level.stats.hits++
      op?.found(entryState(entry) === 'stale')
    }
    return value as T | undefined
  }

  async has (key: string): Promise<boolean> {
    this.level.keys.assert(key)
    const ready = this.ready()
    if (ready !== undefined) await ready
    const found = this.value(DATA + key)
    return (isPromiseLike(found) ? await found : found) !== undefined
  }

  set<T> (key: string, value: Defined<T>, options?: SessionSetOptions): Promise<void> {
    const op = observe('session', 'set', key, undefined, this.level)
    return op === undefined ? this.store(key, value, options) : op.within(this.token).holding(value).promise(async () => { await this.store(key, value, options) })
  }

  // Not async: the write's own promise is answered as it is, where an async function would wrap it in two more.
  private store (key: string, value: unknown, options: SessionSetOptions | undefined): Promise<void> {
    try {
      this.level.keys.assert(key)
      assertValue(key, value)
      const ttl = callTtl('sessionCache.set', options, 0)
      const stale = this.staleWindow('sessionCache.set', options)
      const ready = this.ready()
      return ready === undefined ? Promise.resolve(this.writeReady(key, value, ttl, stale)) : ready.then(() => this.writeReady(key, value, ttl, stale))
    } catch (error) {
      return Promise.reject(error)
    }
  }

  /** `write` once the session has been read. */
  private writeReady (key: string, value: unknown, ttl: number, stale: number): Awaitable<void> {
    this.assertWritable()
    return this.write(key, value, ttl, stale)
  }

  delete (key: string): Promise<boolean> {
    const op = observe('session', 'delete', key, undefined, this.level)
    return op === undefined ? this.drop(key) : op.within(this.token).promise(async () => await this.drop(key))
  }

  private async drop (key: string): Promise<boolean> {
    this.level.keys.assert(key)
    const ready = this.ready()
    if (ready !== undefined) await ready
    this.assertWritable()
    const current = this.current
    if (current === undefined) return false
    const found = this.value(DATA + key)
    if ((isPromiseLike(found) ? await found : found) === undefined) return false
    const changed = this.change(current, { remove: [DATA + key] })
    if (isPromiseLike(changed)) await changed
    return true
  }

  /**
   * Drops every entry and page; the session, its id and its link to a user stay. The pages' generation moves, so that a
   * page a request rendered before and stores after is never served.
   */
  clear (): Promise<void> {
    const op = observe('session', 'clear', undefined, undefined, this.level)
    return op === undefined ? this.empty() : op.promise(async () => { await this.empty() })
  }

  private async empty (): Promise<void> {
    const ready = this.ready()
    if (ready !== undefined) await ready
    this.assertWritable()
    const current = this.current
    if (current?.stored !== true) return
    const changed = this.change(current, { clear: true, keep: META, set: { [PAGES]: newGeneration() } })
    if (isPromiseLike(changed)) await changed
  }

  /**
   * The cached value, or the loader's value stored in the session. Concurrent calls for one session and key, from
   * any of its requests, share one loader call. A failing loader stores nothing; `undefined` is not stored. Without a
   * session to store into (the store could not be read, or `getSessionId` gave no id) the loader answers every call.
   */
  getOrLoad<T> (key: string, loader: () => T | PromiseLike<T>, options?: SessionSetOptions): Promise<T> {
    const op = observeLookup('session', 'getOrLoad', key, undefined, this.level)
    return op === undefined ? this.findOrLoad(key, loader, options) : op.within(this.token).run(this, this.findOrLoad<T>, key, loader, options, op)
  }

  private async findOrLoad<T> (key: string, loader: () => T | PromiseLike<T>, options: SessionSetOptions | undefined, op?: CacheOperation): Promise<T> {
    this.level.keys.assert(key)
    const ttl = callTtl('sessionCache.getOrLoad', options, 0)
    const stale = this.staleWindow('sessionCache.getOrLoad', options)
    const ready = this.ready()
    if (ready !== undefined) await ready
    const stats = this.level.stats
    const found = this.entry(DATA + key)
    const entry = isPromiseLike(found) ? await found : found
    const state = entryState(entry)
    if (state !== 'gone') {
      stats.hits++
      op?.found(state === 'stale')
      if (state === 'stale') {
        stats.staleServed++
        this.revalidate(key, loader, ttl, stale)
      }
      return (entry as Entry).value as T
    }
    if (entry !== undefined) observeDrop('session', key, 'expire', this.level, this.token)
    this.missed(key)
    op?.missed()
    if (this.unreadable !== undefined || this.nobody()) return await countLoad(stats, observeLoad('session', key, loader, undefined, this.level, this.token), this.logLoad(key))
    return await this.loadAndWrite(key, loader, ttl, stale)
  }

  /** One load per session and key, from any of its requests at once; its value is written to the session. */
  private async loadAndWrite<T> (key: string, loader: () => T | PromiseLike<T>, ttl: number, stale: number): Promise<T> {
    const current = this.ensure()
    return await this.level.loads.loadOnce(current.key + '\n' + current.fence + '\n' + key, async () => {
      const loaded = await countLoad(this.level.stats, observeLoad('session', key, loader, undefined, this.level, this.token), this.logLoad(key))
      if (loaded !== undefined) await this.write(key, loaded, ttl, stale)
      return loaded
    })
  }

  /** Loads a stale entry again behind the request that served it; a failure keeps the stale value and is logged. */
  private revalidate<T> (key: string, loader: () => T | PromiseLike<T>, ttl: number, stale: number): void {
    this.level.stats.backgroundLoads++
    this.loadAndWrite(key, loader, ttl, stale).catch((error: unknown) => { this.level.backgroundFailed(key, error, this.log) })
  }

  private missed (key: string): void {
    this.level.stats.misses++
    this.level.log?.miss(key, this.log)
  }

  private logLoad (key: string): (ms: number, error?: unknown) => void {
    return (ms, error) => { this.level.log?.loaded(key, ms, error, this.log) }
  }

  private staleWindow (method: string, options: SessionSetOptions | undefined): number {
    return callDuration(method, 'staleWhileRevalidate', options?.staleWhileRevalidate, this.level.options.staleWhileRevalidate ?? 0)
  }

  /**
   * A new id for the same data: call it after login, so that an id known before login is worth nothing. The old
   * session ends at once: a request still running under it can no longer write to it, nor to the new one.
   */
  async regenerate (options?: RegenerateOptions): Promise<void> {
    if (this.appOwnsId) throw new UnsupportedError('sessionCache.regenerate() is not available with getSessionId: the app owns the session id')
    const user = options?.user
    if (user !== undefined) assertUser('regenerate', user, this.level.keys)
    const renewed = this.renew(user)
    // The calls made after this one wait for the new session: a write made after regenerate() goes into the new
    // session, not into the old one as it ends.
    const settled = (): void => { if (this.renewing === renewing) this.renewing = undefined }
    const renewing: Promise<void> = renewed.then(settled, settled)
    this.renewing = renewing
    await renewed
  }

  private async renew (user: string | undefined): Promise<void> {
    const ready = this.ready()
    if (ready !== undefined) await ready
    this.assertWritable()
    // A write made just before may still be creating the session (a remote store): it is carried over once it is.
    if (this.creating !== undefined) await this.creating
    const before = this.current
    // What the old session held at the instant it ended, so that a write that landed just before is carried over;
    // nothing when another request ended it first (a logout in another tab is not undone by a login here).
    const ended = before?.stored === true ? await this.guard('end', () => before.pool.groups.end(before.key, before.fence)) : undefined
    const fields = emptyRecord()
    for (const [name, entry] of Object.entries(ended?.fields ?? {})) {
      if (name.startsWith(DATA) || name === USER) fields[name] = entry
    }
    if (user !== undefined) fields[USER] = user
    const id = newSessionId()
    const key = sessionStoreKey(id)
    const fence = newFence()
    const { known } = this.level
    this.current = undefined
    // A new random id is never taken: create cannot find it. The user's index lists it once it exists.
    await this.guard('create', () => known.groups.create(key, { fence, fields }, this.level.options.ttl))
    this.current = { id, key, fence, pool: known, fields, partial: false, stored: true }
    const linked = fields[USER]
    if (typeof linked === 'string') await this.guard('link', () => this.level.users.link(linked, key))
    const previous = ended?.fields[USER]
    if (before !== undefined && typeof previous === 'string') await this.guard('unlink', () => this.level.users.unlink(previous, before.key))
  }

  /** The user this session is linked to, once a call of this request has read the session; undefined when none. */
  get user (): string | undefined {
    const user = this.current?.fields[USER]
    return typeof user === 'string' ? user : undefined
  }

  /**
   * Links this session to a user (after login, when `regenerate({ user })` is not used), so that `destroyAllOf` can
   * end it with the user's other sessions. Creates the session if there is none yet.
   */
  async setUser (user: string): Promise<void> {
    assertUser('setUser', user, this.level.keys)
    const ready = this.ready()
    if (ready !== undefined) await ready
    this.assertWritable()
    const current = this.ensure()
    await this.change(current, { set: { [USER]: user } })
    await this.guard('link', () => this.level.users.link(user, current.key))
  }

  /** The sessions linked to `user` (default: this session's user), listed by their store keys, never their ids. */
  async sessionsOf (user?: string): Promise<UserSession[]> {
    const who = await this.userOrThis('sessionsOf', user)
    return who === undefined ? [] : await this.guard('sessionsOf', () => this.level.sessionsOf(who))
  }

  /**
   * Ends every session linked to `user` (default: this session's user), on every store and instance: after a password
   * change, or to log out everywhere. With `keepCurrent`, this request's session stays. Answers how many ended.
   */
  async destroyAllOf (user?: string, options?: DestroyAllOptions): Promise<number> {
    const who = await this.userOrThis('destroyAllOf', user)
    if (who === undefined) return 0
    const keep = options?.keepCurrent === true ? this.current?.key : undefined
    const ended = await this.guard('destroyAllOf', () => this.level.destroyAllOf(who, keep))
    if (keep === undefined && this.user === who) {
      this.current = undefined
      this.destroyed = true
    }
    return ended
  }

  private async userOrThis (method: string, user: string | undefined): Promise<string | undefined> {
    if (user !== undefined) assertUser(method, user, this.level.keys)
    const ready = this.ready()
    if (ready !== undefined) await ready
    return user ?? this.user
  }

  /** Drops the session and its data; the cookie is cleared. A request still running under it cannot bring it back. */
  async destroy (): Promise<void> {
    const ready = this.ready()
    if (ready !== undefined) await ready
    this.assertWritable()
    const before = this.current
    const user = this.user
    this.current = undefined
    this.destroyed = true
    if (before?.stored !== true) return
    await this.guard('end', () => before.pool.groups.end(before.key, before.fence))
    if (user !== undefined) await this.guard('unlink', () => this.level.users.unlink(user, before.key))
  }

  /** What a call waits for before it starts, if anything: the first read of the session, or a regenerate() under way. */
  private ready (): Promise<void> | undefined {
    return this.renewing ?? this.load()
  }

  /** Reads the session, once per request: a promise only while it is being read. */
  private load (): Promise<void> | undefined {
    if (this.loaded) return undefined
    if (this.loading === undefined) {
      let found: Awaitable<void>
      try {
        found = this.find()
      } catch (error) {
        found = Promise.reject(error)
      }
      // Done at once (the request presents no id, or a memory tier holds its session): nothing to wait for. Not done,
      // the app may not know the user yet (asked from a hook before authentication): asked again on the next call.
      if (this.loaded || !isPromiseLike(found)) return undefined
      this.loading = Promise.resolve(found).then(() => { if (!this.loaded) this.loading = undefined })
    }
    return this.loading
  }

  /** Refuses to write a session that could not be read, or that has no id to be stored under. */
  private assertWritable (): void {
    if (this.unreadable !== undefined) throw this.unreadable
    if (this.nobody()) throw new NoSessionError()
  }

  /** The app identifies its users and gave no id for this request: there is no session to keep anything in. */
  private nobody (): boolean {
    return this.appOwnsId && this.current === undefined
  }

  /** Reads the session the request presents; at once when nothing it asks for is a promise. */
  private find (): Awaitable<void> {
    return andThen(this.presented(), (presented) => {
      if (presented === undefined) {
        if (!this.appOwnsId) this.loaded = true
        return
      }
      return andThen(this.readSession(presented), () => { this.loaded = true })
    })
  }

  /** Finds the session the request presents, ending it when it is past its absolute lifetime. */
  private readSession (presented: PresentedId): Awaitable<void> {
    this.held = presented.id
    const key = presented.key ?? sessionStoreKey(presented.id)
    const unreadable = (error: unknown): void => {
      this.level.fault('read', error, this.log)
      this.unreadable = error
    }
    let read: Awaitable<Found | undefined>
    try {
      read = this.level.read(key)
    } catch (error) {
      unreadable(error)
      return
    }
    if (isPromiseLike(read)) return Promise.resolve(read).then((found) => this.readFound(presented, key, found), unreadable)
    return this.readFound(presented, key, read)
  }

  private readFound (presented: PresentedId, key: string, found: Found | undefined): Awaitable<void> {
    const createdBefore = this.level.createdBefore()
    if (found === undefined || createdBefore === 0 || createdAt(found.group.fence) >= createdBefore) {
      this.opened(presented, key, found)
      return
    }
    // Past its absolute lifetime: over, whatever its activity. It is ended for every later request too.
    return this.endExpired(presented, key, found)
  }

  private async endExpired (presented: PresentedId, key: string, { pool, group }: Found): Promise<void> {
    try {
      await pool.groups.end(key, group.fence)
    } catch (error) {
      this.level.fault('end', error, this.log)
    }
    this.opened(presented, key, undefined)
  }

  /** This request's view of the session it found, or of the empty one it starts. */
  private opened (presented: PresentedId, key: string, found: Found | undefined): void {
    if (found !== undefined) {
      const { pool, group } = found
      this.current = { id: presented.id, key, fence: group.fence, pool, fields: group.fields, partial: group.partial === true, stored: true }
      this.reissue = presented.reissue === true
      const user = this.user
      if (user !== undefined) this.level.using(user, this.log)
    } else if (this.appOwnsId) {
      // The app's id is authoritative: its session starts empty and is created under that id on first write.
      this.current = { id: presented.id, key, fence: newFence(), pool: this.level.known, fields: {}, partial: false, stored: false }
    }
  }

  /** A field's value as this request sees it; undefined once expired (a stale one is still served). */
  private value (name: string): Awaitable<unknown> {
    return andThen(this.entry(name), valueOf)
  }

  /** A field as this request sees it, reading one the snapshot may lack. */
  private entry (name: string): Awaitable<Entry | undefined> {
    const current = this.current
    if (current === undefined) return undefined
    if (Object.hasOwn(current.fields, name)) return current.fields[name] as Entry | undefined
    return current.partial && current.stored ? this.readField(current, name) : undefined
  }

  /** A field a partial snapshot lacks, from the store; kept in the snapshot, even when absent. */
  private async readField (current: Current, name: string): Promise<Entry | undefined> {
    let entry: Entry | undefined
    try {
      entry = await current.pool.groups.field?.(current.key, current.fence, name) as Entry | undefined
    } catch (error) {
      this.level.fault('read', error, this.log)
    }
    current.fields = withChange(current.fields, { set: { [name]: entry } })
    return entry
  }

  private ensure (): Current {
    if (this.current === undefined) {
      const id = newSessionId()
      this.current = { id, key: sessionStoreKey(id), fence: newFence(), pool: this.level.anonymous, fields: {}, partial: false, stored: false }
    }
    return this.current
  }

  private write (key: string, value: unknown, ttl: number, stale = 0): Awaitable<void> {
    return this.put(this.ensure(), DATA + key, value, ttl, this.level.options.maxEntriesPerSession, stale)
  }

  /**
   * Writes one field, first dropping the expired entries of its kind and, when `max` live ones are held already, the
   * oldest written.
   */
  private put (current: Current, name: string, value: unknown, ttl: number, max: number, stale = 0, drop: readonly string[] = []): Awaitable<void> {
    const now = Date.now()
    const entry: Entry = { value, expires: ttl === 0 ? 0 : now + ttl, at: now }
    if (ttl > 0 && stale > 0) entry.stale = entry.expires + stale
    const { expired, evicted } = this.room(current, name, now, max, drop)
    // Expired entries go in the same step: the store caps the kind by count, and must not drop a live entry for them.
    const remove = drop.length === 0 && evicted === undefined ? expired : [...drop, ...expired, ...(evicted === undefined ? [] : [evicted])]
    // The store caps the kind too, in the same step: requests writing at once each see room in their own snapshot.
    const change: GroupChange = { set: { [name]: entry }, cap: { prefix: name.slice(0, 2), max } }
    if (remove.length > 0) change.remove = remove
    let changed = this.change(current, change)
    if (!name.startsWith(DATA)) return changed
    // Entries that expired unread are found here, when another is written: the stream's drops (`never-read`).
    if (expired.length > 0) changed = andThen(changed, () => { for (const field of expired) observeDrop('session', field.slice(DATA.length), 'expire', this.level, this.token) })
    if (evicted === undefined) return changed
    return andThen(changed, () => {
      this.level.stats.evictions++
      observeDrop('session', evicted.slice(DATA.length), 'evict', this.level, this.token)
    })
  }

  /**
   * What makes room for one more of `name`'s kind: its expired entries, and the oldest live one when `name` is new and
   * `max` live ones of its kind are held.
   */
  private room (current: Current, name: string, now: number, max: number, drop: readonly string[]): { expired: string[], evicted: string | undefined } {
    const kind = name.slice(0, 2)
    const expired: string[] = []
    let live = 0
    let oldest: [string, number] | undefined
    for (const field of Object.keys(current.fields)) {
      const entry = current.fields[field] as Entry | undefined
      if (!field.startsWith(kind) || entry === undefined || field === name || drop.includes(field)) continue
      // An entry still served stale is not expired yet.
      if (entryState(entry) === 'gone') {
        expired.push(field)
        continue
      }
      live++
      if (oldest === undefined || entry.at < oldest[1]) oldest = [field, entry.at]
    }
    return { expired, evicted: live >= max ? oldest?.[0] : undefined }
  }

  /**
   * Applies a change to the store, then to this request's view. A session not stored yet is created by it; a session
   * that ended meanwhile (another request destroyed or regenerated it) takes nothing: the change goes nowhere, and
   * this request goes on with its own view. A change the store refuses leaves the view as it was.
   */
  private change (current: Current, change: GroupChange): Awaitable<void> {
    const { ttl } = this.level.options
    return this.guard('write', () => current.stored ? current.pool.groups.update(current.key, current.fence, change, ttl) : this.create(current, change), () => {
      current.fields = withChange(current.fields, change)
    })
  }

  /** Creates the session with its first change; concurrent first requests of one app-given id join the first's. */
  private create (current: Current, change: GroupChange): Awaitable<void> {
    const fields = Object.assign(emptyRecord(), change.set)
    const done = andThen(current.pool.groups.create(current.key, { fence: current.fence, fields }, this.level.options.ttl), (created) => {
      if (created) current.stored = true
      else return this.join(current, change)
    })
    if (isPromiseLike(done)) this.creating = Promise.resolve(done).catch(() => {})
    return done
  }

  // Route caching keeps whole pages in the session (`config.cache: { level: 'session' }`), apart from the entries:
  // they never create a session, count against `maxPagesPerSession` only, and go with `regenerate()`, `destroy()`
  // and `clear()`.

  // A page is kept with the generation of the session's pages it was made under, and read only under that
  // generation: `dropPages()` moves it, so that a page a request made before the drop and stores after it is never
  // served.

  /**
   * The variants stored under `key`, newest first, as `[variant, page]` (none when there is no session, or it cannot be
   * read). A page written by another request after this one read the session is not among them.
   */
  async pagesOf (key: string): Promise<Array<[variant: string, page: unknown]>> {
    const ready = this.ready()
    if (ready !== undefined) await ready
    const fields = this.current?.fields
    if (fields === undefined) return []
    const prefix = pagePrefix(key)
    const generation = this.pagesGeneration()
    const found: Array<[Page, number]> = []
    for (const name of Object.keys(fields)) {
      if (!name.startsWith(prefix)) continue
      const entry = fields[name] as Entry | undefined
      const held = valueOf(entry) as Page | undefined
      // The key is compared too: a custom key may itself contain the separator.
      if (held?.generation === generation && held.key === key) found.push([held, (entry as Entry).at])
    }
    // Fields are in write order where the store keeps one: reversed first, pages written in the same millisecond are
    // newest first too.
    return found.reverse().sort((a, b) => b[1] - a[1]).map(([held]) => [held.variant, held.page])
  }

  /**
   * Stores one variant of the page `key` for `ttl` ms in the session this request found, dropping the variants named
   * in `drop`; false, storing nothing, when there is no session: a page never creates one. Every variant counts
   * against `maxPagesPerSession`. Rejects when the store fails.
   */
  async setPage (key: string, variant: string, page: unknown, ttl: number, drop: readonly string[] = []): Promise<boolean> {
    const ready = this.ready()
    if (ready !== undefined) await ready
    const current = this.current
    if (current?.stored !== true || this.unreadable !== undefined) return false
    const held: Page = { generation: this.pagesGeneration(), key, variant, page }
    const dropped = drop.filter((other) => other !== variant).map((other) => pageField(key, other))
    await this.put(current, pageField(key, variant), held, ttl, this.level.options.maxPagesPerSession ?? 10, 0, dropped)
    return true
  }

  /** Drops this session's cached pages: call it when what they show has changed (an item added to the cart). */
  async dropPages (): Promise<void> {
    const ready = this.ready()
    if (ready !== undefined) await ready
    this.assertWritable()
    const current = this.current
    if (current?.stored !== true) return
    const pages = Object.keys(current.fields).filter((name) => name.startsWith(PAGE))
    await this.change(current, { remove: pages, set: { [PAGES]: newGeneration() } })
  }

  private pagesGeneration (): string {
    const generation = this.current?.fields[PAGES]
    return typeof generation === 'string' ? generation : ''
  }

  /**
   * Runs a store operation, counting and logging a fault (not a value the store refuses) before it is thrown; given
   * `after`, answers what `after` makes of the result, in the same step.
   */
  private guard<T> (operation: string, run: () => Awaitable<T>): Awaitable<T>
  private guard<T, R> (operation: string, run: () => Awaitable<T>, after: (result: T) => R): Awaitable<R>
  private guard<T, R> (operation: string, run: () => Awaitable<T>, after?: (result: T) => R): Awaitable<T | R> {
    let result: Awaitable<T>
    try {
      result = run()
    } catch (error) {
      return this.failed(operation, error)
    }
    const next = after ?? ((value: T): T | R => value)
    return isPromiseLike(result) ? Promise.resolve(result as PromiseLike<T>).then(next, (error: unknown) => this.failed(operation, error)) : next(result as T)
  }

  private failed (operation: string, error: unknown): never {
    if (error instanceof EntryTooLargeError) this.level.stats.oversized++
    else if (!(error instanceof SerializeError)) this.level.fault(operation, error, this.log)
    throw error
  }

  private async join (current: Current, change: GroupChange): Promise<void> {
    const found = await this.level.read(current.key)
    if (found === undefined) return
    const { pool, group } = found
    Object.assign(current, { fence: group.fence, pool, fields: group.fields, partial: group.partial === true, stored: true })
    await pool.groups.update(current.key, group.fence, change, this.level.options.ttl)
  }
}

/**
 * A request's view of the fields after `change`, as a new object. A removed name stays, as undefined: known to be
 * gone, it is not asked of a partial group again. A plain object is safe here: every field name has a prefix with a
 * colon (`d:`, `p:`, `m:`), so none is `__proto__` or a name `Object.prototype` holds.
 */
function withChange (fields: Readonly<Record<string, unknown>>, change: GroupChange): Record<string, unknown> {
  const next: Record<string, unknown> = {}
  const keep = change.clear === true ? change.keep : ''
  if (keep !== undefined) for (const name of Object.keys(fields)) if (name.startsWith(keep)) next[name] = fields[name]
  for (const name of change.remove ?? []) next[name] = undefined
  const set = change.set ?? {}
  for (const name of Object.keys(set)) next[name] = set[name]
  return next
}

/** A generation of a session's pages: random, so that none is ever taken again. */
function newGeneration (): string {
  return randomBytes(6).toString('base64url')
}

/** A session's fence: random, so that no two sessions, even under one app-given id, ever share one. */
function newFence (): string {
  return Date.now().toString(36) + '.' + randomBytes(12).toString('base64url')
}

/** When the session of a fence was created, in epoch ms. */
function createdAt (fence: string): number {
  return parseInt(fence, 36)
}

/** A user id: the name of its index of sessions in the store, so it is named as keys are (`keys`, see `KeyRule`). */
function assertUser (method: string, user: unknown, keys: KeyRule): void {
  if (typeof user !== 'string' || user === '') throw new InvalidOptionError(`sessionCache.${method}`, 'user', 'must be a non-empty string', describe(user))
  // In a shared store `bob\ud800` would name the index of `bob\ufffd`: its sessions listed, or ended everywhere.
  if (!keys.storable(user)) throw new InvalidOptionError(`sessionCache.${method}`, 'user', 'must be well-formed Unicode, without a lone surrogate (a shared store writes it as UTF-8)', describe(user))
}
