import { InvalidOptionError, describe } from './errors.js'

/** A value or a promise of it: the memory store answers synchronously, remote stores asynchronously. */
export type Awaitable<T> = T | PromiseLike<T>

/**
 * The one contract every backend implements. Keys are strings the level has already validated and prefixed;
 * values are whatever the level stores (a memory store keeps references, a remote one serializes).
 * `undefined` from `get` means absent. `ttl` is in milliseconds; 0 or omitted means the store's default.
 */
export interface Store {
  get (key: string): Awaitable<unknown>
  set (key: string, value: unknown, ttl?: number): Awaitable<void>
  /** Resolves false when there was nothing to delete, where the store can tell. */
  delete (key: string): Awaitable<boolean | void>
  clear (): Awaitable<void>
  /**
   * The value as this store will give it back once written: what a serializing store decodes from what it encodes.
   * Throws a `SerializeError` for a value it cannot keep. A memory tier in front holds this, not the caller's object,
   * so that the instance that wrote a value sees it with the same shape and contents as every other.
   */
  stored? (key: string, value: unknown): unknown
  /**
   * Reads several keys at once where the backend can batch them: a value (or undefined) per key, in their order. Fails
   * whole: a memory tier in front answers at once only when it holds every key.
   */
  getMany? (keys: readonly string[]): Awaitable<unknown[]>
  /** A value with the time it has left, where the backend tells both at once: a memory tier in front never outlives it. */
  getTimed? (key: string): Awaitable<TimedValue | undefined>
  /** `getTimed` of several keys in one round trip, in their order: what a memory tier in front fills itself from. */
  getTimedMany? (keys: readonly string[]): Awaitable<Array<TimedValue | undefined>>
  /** Writes several entries at once where the backend can batch them (`ttl` as in `set`). */
  setMany? (entries: readonly StoreEntry[]): Awaitable<void>
  /** Deletes several keys at once where the backend can batch them. */
  deleteMany? (keys: readonly string[]): Awaitable<void>
  /**
   * Deletes `keys` and resolves once no instance can serve a copy of them any more: every other instance's memory tier
   * has dropped them and its level has fenced its loads of them (each acknowledges on the bus). Rejects with
   * `FST_MULTICACHE_UNCONFIRMED` when some did not within `within` ms; the keys are deleted all the same. Absent where
   * the store cannot tell (another instance may hold a copy it is not told of): then `invalidate(…, { wait })` is refused.
   */
  deleteAcknowledged? (keys: readonly string[], within: number): Awaitable<void>
  /**
   * Optional grouped fields under one key that expire together, changed only under a fence (a Redis hash, a memory
   * entry). The session level uses them when present: writing one entry touches one field, concurrent requests of
   * one session cannot overwrite each other's entries, and a request that still holds an ended session cannot bring
   * it back. Stores without them get the same contract emulated over whole values (see `lib/sessions/keyed.ts`).
   */
  readonly groups?: GroupOperations
  /**
   * Fences shared by every instance, where the store keeps them (Redis, for the application level). Its `set`,
   * `delete`, `deleteMany` and `clear` move the fence of every key they change, atomically with the change, so
   * that a load that started before cannot write its older value after it (see `FenceOperations`).
   */
  readonly fences?: FenceOperations
  /** Entries currently held, where the backend knows it cheaply. */
  readonly size?: number
  /**
   * Holds every key as the string it is (a JavaScript Map). A store that writes keys as UTF-8 (Redis, a Keyv backend)
   * writes a lone surrogate as U+FFFD, so that `a\ud800` and `a\ufffd` would name one entry: a level on such a store
   * takes only well-formed keys.
   */
  readonly exactKeys?: boolean
  /**
   * Keeps `key` out of the store's size bound, where it has one of its own (the memory store, a memory tier): no other
   * key's entry pushes it out, while its ttl, `delete` and `clear` apply as before. The application level pins its
   * `define`d keys, so that keys clients choose cannot evict them. Called before the app serves.
   */
  pin? (key: string): void
  /** Entries of pinned keys held now (`size` counts them too). */
  readonly pinned?: number
  /**
   * Tells `listener` of every change another instance made (a memory tier hears them on its bus), so that a level
   * can fence its own loads of those keys. `{ clear: true }` means anything may have changed.
   */
  watch? (listener: (change: Invalidation) => void): void
  /** Versions of tags shared by every instance, where the store keeps them (Redis); see `TagOperations`. */
  readonly tags?: TagOperations
  /** Releases what the store opened; called on `fastify.close()` for stores the plugin created. */
  close? (): Awaitable<void>
  /**
   * One page of the keys containing `match`, with their remaining time to live, for the admin API; never values. A
   * property that may hold undefined, so that a store in front of another (the tiers) answers with the other's.
   */
  keys?: ((query: KeyQuery) => Awaitable<KeyPage>) | undefined
}

/** What `Store.keys` lists: keys containing `match`, about `limit` of them, from `cursor` (a previous page's). */
export interface KeyQuery {
  match: string
  limit: number
  cursor?: string | undefined
}

/** A page of keys; `cursor` names the next page, undefined after the last. */
export interface KeyPage {
  /** Each key with its remaining time to live in ms (0: none). */
  keys: Array<{ key: string, ttl: number }>
  cursor: string | undefined
}

/** One entry of a batch write: `ttl` in ms, 0 for the store's default. */
export interface StoreEntry {
  key: string
  value: unknown
  ttl: number
}

/** An entry written only while the fence of its key is still `fence` (see `FenceOperations.setManyIf`). */
export interface FencedEntry extends StoreEntry {
  fence: string
}

/** A value and what remains of its time to live. */
export interface TimedValue {
  value: unknown
  /** Remaining ms; 0 when the entry does not expire. */
  ttl: number
}

/** A group as one read saw it: its fence and its fields. Never mutated: a change makes a new one. */
export interface Group {
  /** Random, set when the group is created and never changed: a write that names another fence is refused. */
  readonly fence: string
  readonly fields: Readonly<Record<string, unknown>>
  /** Some fields may be missing from `fields`: ask `GroupOperations.field` for a name that is not there. */
  readonly partial?: boolean
  /** Where the store versions its groups: moves with every change, so that a copy can be checked (see `read`). */
  readonly version?: string
}

/** What one update does to a group's fields, in this order: drop all (but `keep`'s), remove some, set some, cap a kind. */
export interface GroupChange {
  clear?: boolean
  /** With `clear`, the fields whose names start with this stay (what describes the group rather than holds its data). */
  keep?: string
  remove?: readonly string[]
  /** Fields to write; a field written again counts as written last. */
  set?: Readonly<Record<string, unknown>>
  /**
   * Then, while more than `max` fields start with `prefix`, the earliest written of them goes (in the store's own
   * order where it keeps none): a bound that holds however many requests write at once.
   */
  cap?: { prefix: string, max: number }
}

/**
 * Field-level access to groups; see `Store.groups`. Every operation is atomic in the store, so that a check of the
 * fence and the change it guards cannot be split by another instance's write. Every change restarts the group's
 * expiry (`ttl` ms; 0: the group does not expire).
 */
export interface GroupOperations {
  /**
   * The group, or undefined when it does not exist. Restarts its expiry (to `ttl` ms), without writing any field; a
   * `ttl` of 0 only looks. Given `known`, a copy read before, a store that versions its groups answers `known` itself
   * when the group has not changed since, without sending its fields again.
   */
  read (key: string, ttl: number, known?: Group): Awaitable<Group | undefined>
  /** Creates the group unless `key` exists: false when it did, and then nothing was written. */
  create (key: string, group: Group, ttl: number): Awaitable<boolean>
  /**
   * Applies `change` if the group exists under `fence`: false when it does not, and then nothing was written. Given
   * `base`, the copy the change was made on, a store that versions its groups may answer the group as it is after the
   * change (true otherwise), when nothing else changed it since `base`: a memory tier keeps that instead of reading it.
   */
  update (key: string, fence: string, change: GroupChange, ttl: number, base?: Group): Awaitable<boolean | Group>
  /**
   * `update` that, once the change is made (not when the fence refused it), publishes `announcement` in the same
   * atomic step: a memory tier's bus message that would otherwise follow as a round trip of its own. For a bus whose
   * channel is on the store's own server. `announced` is false when the store would not publish it (an ACL without
   * the channel): the change stands, and the caller tells of it another way.
   */
  updateAnnounced? (key: string, fence: string, change: GroupChange, ttl: number, base: Group | undefined, announcement: Announcement): Awaitable<AnnouncedChange>
  /** Deletes the group if it exists under `fence`, returning it as it was at that instant; undefined otherwise. */
  end (key: string, fence: string): Awaitable<Group | undefined>
  /** One field of a partial group, read on its own. */
  field? (key: string, fence: string, name: string): Awaitable<unknown>
  /** Which of these groups exist, in one step where the store can, without restarting their expiry. */
  exists? (keys: readonly string[]): Awaitable<boolean[]>
}

/** A bus message as a store publishes it itself: the channel, and the text the bus would have published. */
export interface Announcement {
  channel: string
  message: string
  /**
   * Publish only while an instance other than `origin` holds a lease in the sorted set `registry` (member: an
   * origin, score: when its lease ends, in the server's ms), and answer which do (see `InvalidationBus`'s `lease`).
   */
  leases?: { registry: string, origin: string }
}

/** What `updateAnnounced` answers: what `update` would, and whether the message went out with the change. */
export interface AnnouncedChange<T = boolean | Group> {
  changed: T
  /** False when the store could not publish the announcement (an ACL without the channel). */
  announced: boolean
  /** With `leases`: the other instances that held one, as origin and ms left, in turn. */
  holders?: string[]
}

/**
 * A change one instance tells the others of: these keys changed, everything may have, or these tags moved to these
 * versions within `epoch` (every entry tagged with one of them and written under an older version is gone).
 */
export type Invalidation = { keys: string[] } | { clear: true } | { tags: Record<string, number>, epoch: string }

/**
 * The epoch of a move of tags whose versions are not known: its command failed, and may still have landed (one that ran
 * out of its time budget runs once the store answers). An instance told of it reads every version again.
 */
export const UNKNOWN_EPOCH = ''

/**
 * Versions of tags and the epoch they count in. A store that lost its versions (a Redis restarted empty, flushed, or
 * failed over to a replica that missed writes) counts them again from the start: in a new epoch, so that no version
 * of before the loss passes for one of after it.
 */
export interface TagEpoch {
  /** Drawn at random by the store when it has none, and never drawn twice. */
  epoch: string
  /** Tags and their versions in `epoch`; a tag not listed is at version 0. */
  versions: Record<string, number>
}

/** Tag versions kept by the store, for every instance; see `Store.tags`. */
export interface TagOperations {
  /**
   * Every tag that was ever invalidated in the store's epoch, with its version, and the epoch (drawn now if there was
   * none); `undefined` while the versions read could not be kept current (a bus that is not subscribed), until
   * `watch` listeners are told `{ clear: true }`.
   */
  read (): Awaitable<TagEpoch | undefined>
  /**
   * Moves each tag to its next version and answers them with the epoch they count in (drawn now if there was none); a
   * memory tier in front tells the others. `stale`: an epoch whose versions went back (a failover that lost writes):
   * if the store is still at it, it draws a new one first, so that versions counted again never meet the lost ones.
   */
  bump (tags: readonly string[], stale?: string): Awaitable<TagEpoch>
}

/**
 * A per-key fence kept by the store; see `Store.fences`. Fences are values that never repeat, not counters, so that a
 * store that forgot them (a Redis restarted empty, or flushed) cannot give a load the fence it started under again.
 */
export interface FenceOperations {
  /** The fence of `key` now: read by a load before it starts. */
  read (key: string): Awaitable<string>
  /** Moves the fence of `key` and returns the new one: a refresh fences the loads before it, then loads itself. */
  bump (key: string): Awaitable<string>
  /**
   * Writes only while the fence of `key` is still `fence`: false when it moved, or the store lost it since, and then
   * nothing was written.
   */
  setIf (key: string, value: unknown, ttl: number, fence: string): Awaitable<boolean>
  /** `read` of several keys in one round trip, in their order: what a batch load starts under. */
  readMany? (keys: readonly string[]): Awaitable<string[]>
  /** `setIf` of several entries in one round trip: each is written only under its own fence; true for those written. */
  setManyIf? (entries: readonly FencedEntry[]): Awaitable<boolean[]>
}

const REQUIRED = ['get', 'set', 'delete', 'clear'] as const

/**
 * A record that inherits nothing, so that every string is a field like any other (`__proto__`, `constructor`,
 * `toString`): what `Object.create(null)` makes, but V8 keeps an object made by a constructor in its fast mode, where
 * one from `Object.create(null)` starts as a dictionary, and writing, reading and listing the fields of a session's
 * group took three times as long.
 */
const Bare = function () {} as unknown as new () => Record<string, unknown>
Bare.prototype = Object.create(null) as object

/** An empty record that inherits nothing (see `Bare`). */
export function emptyRecord<T = unknown> (): Record<string, T> {
  return new Bare() as Record<string, T>
}

/**
 * A promise of `value`, as `Promise.resolve(value)` gives it, for a hit's answer: V8 resolves an async function's
 * promise in the caller's compiled code, where `Promise.resolve` is a call of its own. An appCache hit ran 32
 * instructions fewer (1,461 to 1,429) and, timed by hand against its floor, 1.20 became 1.15 (EPYC VM).
 */
export async function promiseOf<T> (value: T): Promise<T> {
  return value
}

/** True for a thenable: the signal that a store answered asynchronously. */
export function isPromiseLike (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function'
}

/**
 * `next(value)`: at once when the value is at hand (a memory store's answer), once it settles when it is a promise.
 * Spares the memory path the microtask an `await` costs at each step.
 */
export function andThen<T, R> (value: Awaitable<T>, next: (value: T) => Awaitable<R>): Awaitable<R> {
  return isPromiseLike(value) ? Promise.resolve(value as PromiseLike<T>).then(next) : next(value as T)
}

/** Whether `key` is listed by a `Store.keys` query for `match`. */
export function matches (key: string, match: string): boolean {
  return match === '' || key.includes(match)
}

/** Reads keys in one batch where the store can, one by one where it cannot: at once when every answer is at hand. */
export function readKeys (store: Store, keys: readonly string[]): Awaitable<unknown[]> {
  if (store.getMany !== undefined) return store.getMany(keys)
  const found = keys.map((key) => store.get(key))
  return found.some(isPromiseLike) ? Promise.all(found) : found
}

/** Writes entries in one batch where the store can, one by one where it cannot. */
export async function setKeys (store: Store, entries: readonly StoreEntry[]): Promise<void> {
  if (store.setMany !== undefined) await store.setMany(entries)
  else await Promise.all(entries.map(async ({ key, value, ttl }) => { await store.set(key, value, ttl) }))
}

/** Writes fenced entries in one batch where the store can, one by one where it cannot; true for those written. */
export async function setKeysIf (fences: FenceOperations, entries: readonly FencedEntry[]): Promise<boolean[]> {
  if (fences.setManyIf !== undefined) return await fences.setManyIf(entries)
  return await Promise.all(entries.map(async ({ key, value, ttl, fence }) => await fences.setIf(key, value, ttl, fence)))
}

/** Deletes keys in one batch where the store can, one by one where it cannot. */
export async function deleteKeys (store: Store, keys: readonly string[]): Promise<void> {
  if (store.deleteMany !== undefined) await store.deleteMany(keys)
  else await Promise.all(keys.map(async (key) => { await store.delete(key) }))
}

/** Checks a custom store up front, so that a missing method fails registration rather than the first request. */
export function assertStore (plugin: string, value: unknown): Store {
  const missing = value !== null && typeof value === 'object'
    ? REQUIRED.filter((method) => typeof (value as Record<string, unknown>)[method] !== 'function')
    : REQUIRED
  if (missing.length > 0) {
    throw new InvalidOptionError(plugin, 'store', `must be 'memory' or an object with the methods ${REQUIRED.join(', ')} (missing: ${missing.join(', ')})`, describe(value))
  }
  return value as Store
}
