import { LRUCache } from 'lru-cache'
import type { Store } from '../store.js'

export interface MemoryStoreOptions {
  /** Most entries held; the least recently used goes first. */
  max: number
  /** Default time to live in ms; 0 means entries live until evicted. */
  ttl?: number
  /** Reading an entry restarts its time to live (rolling expiry). */
  rolling?: boolean
  /** Called once per entry pushed out by the `max` bound (not for expiry or deletes). */
  onEvict?: () => void
}

/**
 * The embedded default: a bounded LRU with TTLs (lru-cache). Answers synchronously and keeps references, so a
 * hit costs one map lookup and no serialization. Callers must not mutate what they cached.
 */
export class MemoryStore implements Store {
  private readonly lru: LRUCache<string, NonNullable<unknown>>
  /** A read restarts an entry's time to live. */
  readonly rolling: boolean

  constructor (options: MemoryStoreOptions) {
    const onEvict = options.onEvict
    this.rolling = options.rolling === true
    this.lru = new LRUCache<string, NonNullable<unknown>>({
      max: options.max,
      ttl: options.ttl ?? 0,
      updateAgeOnGet: options.rolling === true,
      ...(onEvict === undefined ? {} : { disposeAfter: (_value, _key, reason) => { if (reason === 'evict') onEvict() } })
    })
  }

  get size (): number {
    return this.lru.size
  }

  get (key: string): unknown {
    return this.lru.get(key)
  }

  getMany (keys: readonly string[]): unknown[] {
    return keys.map((key) => this.lru.get(key))
  }

  set (key: string, value: unknown, ttl?: number): void {
    // null is a legitimate cached value ("known absent"); lru-cache only refuses undefined, which levels reject first.
    this.lru.set(key, value as NonNullable<unknown>, ttl === undefined || ttl === 0 ? undefined : { ttl })
  }

  delete (key: string): void {
    this.lru.delete(key)
  }

  deleteMany (keys: readonly string[]): void {
    for (const key of keys) this.lru.delete(key)
  }

  clear (): void {
    this.lru.clear()
  }
}
