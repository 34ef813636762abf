import { withBudget } from '../budget.js'
import { MAX_ENTRY_BYTES, encodeFor, jsonSerializer, type Serializer } from '../serializer.js'
import type { Store } from '../store.js'

/**
 * Marks bytes stored as base64 text, so that every adapter can keep them; text (JSON's, or a custom serializer's)
 * is stored as it is, readable by other tools. No JSON text starts with it.
 */
const BINARY = ':base64:'

/** The part of a Keyv instance (5 or 6) the store uses. */
export interface KeyvLike {
  get (key: string): Promise<unknown>
  set (key: string, value: unknown, ttl?: number): Promise<unknown>
  delete (key: string): Promise<unknown>
  clear (): Promise<unknown>
  getMany? (keys: string[]): Promise<unknown[]>
}

export interface KeyvStoreOptions {
  keyv: KeyvLike
  /** Time budget of each operation in ms. Default 100. */
  timeout?: number
  /** Default JSON; values reach Keyv as strings so that every adapter behaves the same. */
  serializer?: Serializer
  /** Largest value taken once serialized, in bytes. Default 1 MiB. */
  maxEntryBytes?: number
}

/**
 * Any Keyv adapter (`@keyv/redis`, `@keyv/postgres`, …) as a store. Keyv's namespace keeps levels apart and
 * `clear` clears that namespace only. Values go through our serializer first, so that what a value becomes is
 * the same as with the Redis store.
 */
export class KeyvStore implements Store {
  private readonly keyv: KeyvLike
  private readonly timeout: number
  private readonly serializer: Serializer
  private readonly maxEntryBytes: number

  constructor (options: KeyvStoreOptions) {
    this.keyv = options.keyv
    this.timeout = options.timeout ?? 100
    this.serializer = options.serializer ?? jsonSerializer
    this.maxEntryBytes = options.maxEntryBytes ?? MAX_ENTRY_BYTES
  }

  async get (key: string): Promise<unknown> {
    return this.decode(await withBudget('get', this.timeout, async () => await this.keyv.get(key)))
  }

  async getMany (keys: readonly string[]): Promise<unknown[]> {
    const many = this.keyv.getMany
    const values = many === undefined
      ? await Promise.all(keys.map(async (key) => await withBudget('getMany', this.timeout, async () => await this.keyv.get(key))))
      : await withBudget('getMany', this.timeout, async () => await many.call(this.keyv, [...keys]))
    return values.map((value) => this.decode(value))
  }

  async set (key: string, value: unknown, ttl?: number): Promise<void> {
    const data = this.encode(key, value)
    const stored = typeof data === 'string' ? data : BINARY + data.toString('base64')
    await withBudget('set', this.timeout, async () => await this.keyv.set(key, stored, ttl !== undefined && ttl > 0 ? ttl : undefined))
  }

  async delete (key: string): Promise<boolean> {
    return await withBudget('delete', this.timeout, async () => await this.keyv.delete(key)) !== false
  }

  stored (key: string, value: unknown): unknown {
    return this.serializer.decode(this.encode(key, value))
  }

  async clear (): Promise<void> {
    await withBudget('clear', this.timeout, async () => await this.keyv.clear())
  }

  private encode (key: string, value: unknown): string | Buffer {
    return encodeFor(this.serializer, key, value, this.maxEntryBytes)
  }

  private decode (value: unknown): unknown {
    if (value === undefined || value === null) return undefined
    const text = String(value)
    return this.serializer.decode(text.startsWith(BINARY) ? Buffer.from(text.slice(BINARY.length), 'base64') : text)
  }
}
