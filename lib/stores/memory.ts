import { LRUCache } from 'lru-cache'
import { EntryTooLargeError } from '../errors.js'
import { matches, type Group, type GroupChange, type GroupOperations, type KeyPage, type KeyQuery, type Store } from '../store.js'

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
  onDrop?: (key: string, value: unknown) => void
  /** Most bytes held, as `sizeOf` counts them; off by default (the bound is `max` entries). */
  maxBytes?: number
  /** The size of a value in bytes, for `maxBytes`. Default: the length of its JSON text. */
  sizeOf?: (value: unknown) => number
}

/**
 * The embedded default: a bounded LRU with TTLs (lru-cache). Answers synchronously and keeps references, so a
 * hit costs one map lookup and no serialization. Callers must not mutate what they cached.
 */
export class MemoryStore implements Store {
  readonly groups: GroupOperations
  private readonly lru: LRUCache<string, NonNullable<unknown>>
  /** A read restarts an entry's time to live. */
  readonly rolling: boolean
  private readonly sizeOf: ((value: unknown) => number) | undefined
  private readonly maxBytes: number

  constructor (options: MemoryStoreOptions) {
    const { onEvict, onDrop } = options
    this.rolling = options.rolling === true
    this.lru = new LRUCache<string, NonNullable<unknown>>({
      max: options.max,
      ttl: options.ttl ?? 0,
      updateAgeOnGet: options.rolling === true,
      ...(options.maxBytes === undefined ? {} : { maxSize: options.maxBytes }),
      ...(onEvict === undefined && onDrop === undefined
        ? {}
        : {
            disposeAfter: (value, key, reason) => {
              if (reason === 'evict') onEvict?.()
              if (reason === 'evict' || reason === 'expire') onDrop?.(key, value)
            }
          })
    })
    this.maxBytes = options.maxBytes ?? Infinity
    this.sizeOf = options.maxBytes === undefined ? undefined : options.sizeOf ?? jsonSize
    this.groups = memoryGroups(this.lru)
  }

  get size (): number {
    return this.lru.size
  }

  get (key: string): unknown {
    return this.lru.get(key)
  }

  set (key: string, value: unknown, ttl?: number): void {
    const size = this.sizeOf?.(value)
    // Refused before lru-cache sees it: nothing else is evicted to make room for a value that cannot fit.
    if (size !== undefined && size > this.maxBytes) throw new EntryTooLargeError(key, size, this.maxBytes)
    // null is a legitimate cached value ("known absent"); lru-cache only refuses undefined, which levels reject first.
    this.lru.set(key, value as NonNullable<unknown>, {
      ...(ttl === undefined || ttl === 0 ? {} : { ttl }),
      ...(size === undefined ? {} : { size: Math.max(1, size) })
    })
  }

  delete (key: string): boolean {
    return this.lru.delete(key)
  }

  deleteMany (keys: readonly string[]): void {
    for (const key of keys) this.lru.delete(key)
  }

  clear (): void {
    this.lru.clear()
  }

  /** Keys from the most recently used; the cursor is how many matching keys earlier pages held. */
  keys ({ match, limit, cursor }: KeyQuery): KeyPage {
    const skip = Number(cursor ?? 0)
    const page: KeyPage['keys'] = []
    let seen = 0
    for (const key of this.lru.keys()) {
      if (!matches(key, match) || seen++ < skip) continue
      if (page.length === limit) return { keys: page, cursor: String(skip + limit) }
      const left = this.lru.getRemainingTTL(key)
      page.push({ key, ttl: Number.isFinite(left) ? Math.max(1, left) : 0 })
    }
    return { keys: page, cursor: undefined }
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
      lru.delete(key)
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
  const next: Record<string, unknown> = Object.create(null) as Record<string, unknown>
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
    let over = -max
    for (const name of Object.keys(next)) if (name.startsWith(prefix)) over++
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
