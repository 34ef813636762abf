import { LRUCache } from 'lru-cache'
import { EntryTooLargeError } from '../errors.js'
import { TTL_CLOCK, deleteEntry, disposeReason } from '../lru.js'
import { emptyRecord, matches, type Group, type GroupChange, type GroupOperations, type KeyPage, type KeyQuery, type Store } from '../store.js'

export interface MemoryStoreOptions {
  /** Most entries held; the least recently used goes first. */
  max: number
  /** Default time to live in ms; 0 means entries live until evicted. */
  ttl?: number
  /** Reading an entry restarts its time to live (rolling expiry). */
  rolling?: boolean
  /** Called once per entry pushed out by the `max` bound (not for expiry or deletes). */
  onEvict?: () => void
  /** Called with each entry the store drops by itself: pushed out by the bound, or found expired (not deletes). */
  onDrop?: (key: string, value: unknown, reason: 'evict' | 'expire') => void
  /** Most bytes held, as `sizeOf` counts them; off by default (the bound is `max` entries). */
  maxBytes?: number
  /** The size of a value in bytes, for `maxBytes`. Default: the length of its JSON text. */
  sizeOf?: (value: unknown) => number
  /**
   * Reads the clock at each expiry check (`TTL_CLOCK`), for a store read about once a request, as sessions are, where
   * lru-cache's own way sets a timer for each request of a quiet server. Off, a hit costs no clock read: for stores a
   * request may read many times. Default: `rolling`.
   */
  exactClock?: boolean
}

/**
 * The embedded default: a bounded LRU with TTLs (lru-cache). Answers synchronously and keeps references, so a
 * hit costs one map lookup and no serialization. Callers must not mutate what they cached.
 *
 * Pinned keys (`pin`) live in a second lru-cache, as large as the number of pinned keys, so that the bound of the
 * first never evicts them; it is asked only when the first misses, so a hit on any other key costs what it did.
 */
export class MemoryStore implements Store {
  readonly groups: GroupOperations
  readonly exactKeys = true
  private readonly lru: LRUCache<string, NonNullable<unknown>>
  /** A read restarts an entry's time to live. */
  readonly rolling: boolean
  private readonly sizeOf: ((value: unknown) => number) | undefined
  private readonly maxBytes: number
  private readonly ttl: number
  /** lru-cache's clock options: `TTL_CLOCK` with `exactClock`. */
  private readonly clock: Partial<typeof TTL_CLOCK>
  /** Keys kept out of the bound, whether or not they hold a value now. */
  private readonly pinnedKeys = new Set<string>()
  /** The entries of pinned keys: one slot per pinned key, so it never evicts. None until a key is pinned. */
  private pinnedEntries: LRUCache<string, NonNullable<unknown>> | undefined

  constructor (options: MemoryStoreOptions) {
    const { onEvict, onDrop } = options
    this.rolling = options.rolling === true
    this.clock = (options.exactClock ?? this.rolling) ? TTL_CLOCK : {}
    this.ttl = options.ttl ?? 0
    this.lru = new LRUCache<string, NonNullable<unknown>>({
      max: options.max,
      ttl: this.ttl,
      updateAgeOnGet: this.rolling,
      ...this.clock,
      ...(options.maxBytes === undefined ? {} : { maxSize: options.maxBytes }),
      ...(onEvict === undefined && onDrop === undefined
        ? {}
        : {
            disposeAfter: (value, key, given) => {
              const reason = disposeReason(given)
              if (reason === 'evict') onEvict?.()
              if (reason === 'evict' || reason === 'expire') onDrop?.(key, value, reason)
            }
          })
    })
    this.maxBytes = options.maxBytes ?? Infinity
    this.sizeOf = options.maxBytes === undefined ? undefined : options.sizeOf ?? jsonSize
    this.groups = memoryGroups(this.lru)
  }

  /** Entries held, pinned ones included. */
  get size (): number {
    return this.lru.size + (this.pinnedEntries?.size ?? 0)
  }

  /** Entries of pinned keys held, apart from the bound. */
  get pinned (): number {
    return this.pinnedEntries?.size ?? 0
  }

  get (key: string): unknown {
    const hit = this.lru.get(key)
    return hit !== undefined || this.pinnedEntries === undefined ? hit : this.pinnedEntries.get(key)
  }

  set (key: string, value: unknown, ttl?: number): void {
    const size = this.sizeOf?.(value)
    // Refused before lru-cache sees it: nothing else is evicted to make room for a value that cannot fit.
    if (size !== undefined && size > this.maxBytes) throw new EntryTooLargeError(key, size, this.maxBytes)
    // null is a legitimate cached value ("known absent"); lru-cache only refuses undefined, which levels reject first.
    const lifetime = ttl === undefined || ttl === 0 ? {} : { ttl }
    const cache = this.cacheOf(key)
    if (cache === this.lru) {
      this.lru.set(key, value as NonNullable<unknown>, size === undefined ? lifetime : { ...lifetime, size: Math.max(1, size) })
    } else {
      // A pinned entry is held apart from the bounds, its bytes included: the cache of pinned keys counts none.
      cache.set(key, value as NonNullable<unknown>, lifetime)
    }
  }

  delete (key: string): boolean {
    return deleteEntry(this.cacheOf(key), key)
  }

  deleteMany (keys: readonly string[]): void {
    for (const key of keys) deleteEntry(this.cacheOf(key), key)
  }

  /** One process holds every copy: deleting them is all it takes. */
  deleteAcknowledged (keys: readonly string[]): void {
    this.deleteMany(keys)
  }

  clear (): void {
    this.lru.clear()
    this.pinnedEntries?.clear()
  }

  /**
   * Keeps `key` out of the `max` and `maxBytes` bounds: no other key's entry pushes it out (a value larger than
   * `maxBytes` is still refused). It still expires, and is deleted and cleared like any other. A value it holds already
   * moves with it, with the time it has left.
   */
  pin (key: string): void {
    if (this.pinnedKeys.has(key)) return
    this.pinnedKeys.add(key)
    // lru-cache's bound is fixed when it is made: a new one a slot larger takes the entries of the old. Keys are
    // pinned before the app serves (`define`), so this happens a few times at start-up.
    const entries = new LRUCache<string, NonNullable<unknown>>({ max: this.pinnedKeys.size, ttl: this.ttl, updateAgeOnGet: this.rolling, ...this.clock })
    if (this.pinnedEntries !== undefined) entries.load(this.pinnedEntries.dump())
    const held = this.lru.info(key)
    if (held !== undefined) {
      deleteEntry(this.lru, key)
      entries.set(key, held.value, held.ttl === undefined ? {} : { ttl: Math.max(1, Math.ceil(held.ttl)) })
    }
    this.pinnedEntries = entries
  }

  /** Keys from the most recently used, pinned ones first; the cursor is how many matching keys earlier pages held. */
  keys ({ match, limit, cursor }: KeyQuery): KeyPage {
    const skip = Number(cursor ?? 0)
    const page: KeyPage['keys'] = []
    let seen = 0
    for (const cache of this.pinnedEntries === undefined ? [this.lru] : [this.pinnedEntries, this.lru]) {
      for (const key of cache.keys()) {
        if (!matches(key, match) || seen++ < skip) continue
        if (page.length === limit) return { keys: page, cursor: String(skip + limit) }
        const left = cache.getRemainingTTL(key)
        page.push({ key, ttl: Number.isFinite(left) ? Math.max(1, left) : 0 })
      }
    }
    return { keys: page, cursor: undefined }
  }

  /** The cache that holds `key`'s entry: the pinned one for a pinned key. */
  private cacheOf (key: string): LRUCache<string, NonNullable<unknown>> {
    return this.pinnedEntries !== undefined && this.pinnedKeys.has(key) ? this.pinnedEntries : this.lru
  }
}

/**
 * Groups held as `Group` objects that are never mutated: a change stores a new one, so a request keeps the snapshot
 * it read however others change the group after. Synchronous, hence atomic: nothing runs between the fence check
 * and the change.
 */
function memoryGroups (lru: LRUCache<string, NonNullable<unknown>>): GroupOperations {
  const held = (key: string): Group | undefined => lru.get(key) as Group | undefined
  return {
    read: (key, ttl) => (ttl > 0 ? lru.get(key, { updateAgeOnGet: true }) : lru.peek(key)) as Group | undefined,
    create: (key, group, ttl) => {
      if (lru.has(key)) return false
      lru.set(key, group, { ttl })
      return true
    },
    update: (key, fence, change, ttl) => {
      const group = held(key)
      if (group?.fence !== fence) return false
      lru.set(key, { fence, fields: changed(group.fields, change) }, { ttl })
      return true
    },
    exists: (keys) => keys.map((key) => lru.has(key)),
    end: (key, fence) => {
      const group = lru.peek(key) as Group | undefined
      if (group?.fence !== fence) return undefined
      deleteEntry(lru, key)
      return group
    }
  }
}

/** A value's size as the length of its JSON text: an estimate of what it holds, cheap to explain. */
function jsonSize (value: unknown): number {
  const text = JSON.stringify(value)
  return text === undefined ? 0 : Buffer.byteLength(text)
}

/** The fields after `change`, as a new prototype-less object: `__proto__` is a field name like any other. */
export function changed (fields: Readonly<Record<string, unknown>>, change: GroupChange): Record<string, unknown> {
  const next = emptyRecord()
  const set = change.set ?? {}
  // A set, not the array: a session full of expired entries removes them all in one change.
  const removed = change.remove === undefined || change.remove.length === 0 ? undefined : new Set(change.remove)
  const keep = change.clear === true ? change.keep : ''
  if (keep !== undefined) {
    for (const name of Object.keys(fields)) {
      // A field written again is left out here and added below: insertion order is write order, and the cap drops
      // the earliest written.
      if (name.startsWith(keep) && !Object.hasOwn(set, name) && removed?.has(name) !== true) next[name] = fields[name]
    }
  }
  for (const name of Object.keys(set)) next[name] = set[name]
  if (change.cap !== undefined) {
    const { prefix, max } = change.cap
    let over = countPrefixed(next, prefix) - max
    for (const name of Object.keys(next)) {
      if (over <= 0) break
      if (name.startsWith(prefix)) {
        delete next[name]
        over--
      }
    }
  }
  return next
}

/** How many of `fields`' names start with `prefix`. */
export function countPrefixed (fields: Readonly<Record<string, unknown>>, prefix: string): number {
  let count = 0
  for (const name in fields) if (name.startsWith(prefix)) count++
  return count
}
