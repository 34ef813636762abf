import { Waiting, bytesOf, withBudget } from '../budget.js'
import { StoreError } from '../errors.js'
import { MAX_ENTRY_BYTES, encodeFor, jsonSerializer, storedAs, type Serializer } from '../serializer.js'
import type { Store, StoreEntry } from '../store.js'

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
  setMany? (entries: Array<{ key: string, value: unknown, ttl?: number }>): Promise<unknown>
  /** The entries of the Keyv's namespace, where its adapter can list them: `[key, value]` pairs. */
  iterator?: ((namespace?: string) => AsyncIterator<unknown[]>) | undefined
}

export interface KeyvStoreOptions {
  keyv: KeyvLike
  /**
   * Namespace of this store's keys inside the Keyv, so that several levels share one Keyv: e.g. `'fmc:app:'`.
   * `clear` then deletes these keys only, which needs an adapter that can list its keys. Default `''`: the whole
   * Keyv is this store's, and `clear` clears it.
   */
  prefix?: string
  /** Time budget of each operation in ms, but `clear`. Default 100. */
  timeout?: number
  /**
   * Time budget of a whole `clear` in ms. Default 30,000. Its own, because a Keyv lists its keys by walking all of its
   * backend (`@keyv/redis` SCANs the whole database for a namespace), so what it costs grows with everything the
   * backend holds, not with this store's keys.
   */
  clearTimeout?: number
  /** Default JSON; values reach Keyv as strings so that every adapter behaves the same. */
  serializer?: Serializer
  /** Largest value taken once serialized, in bytes. Default 1 MiB. */
  maxEntryBytes?: number
}

/** Keys deleted per round trip when `clear` deletes by prefix. */
const CLEAR_BATCH = 500

/**
 * Any Keyv adapter (`@keyv/redis`, `@keyv/postgres`, …) as a store. Keys are `prefix + key` inside the Keyv's own
 * namespace, as in the Redis store, and `clear` clears this prefix only. Values go through our serializer first, so
 * that what a value becomes is the same as with the Redis store.
 */
export class KeyvStore implements Store {
  private readonly keyv: KeyvLike
  private readonly prefix: string
  private readonly timeout: number
  private readonly clearTimeout: number
  private readonly serializer: Serializer
  private readonly maxEntryBytes: number
  private readonly waiting = new Waiting()

  constructor (options: KeyvStoreOptions) {
    this.keyv = options.keyv
    this.prefix = options.prefix ?? ''
    this.timeout = options.timeout ?? 100
    this.clearTimeout = options.clearTimeout ?? 30_000
    this.serializer = options.serializer ?? jsonSerializer
    this.maxEntryBytes = options.maxEntryBytes ?? MAX_ENTRY_BYTES
  }

  /** `withBudget` with this store's budget, counted among its operations waiting (see `Waiting`); `bytes`: what it writes. */
  private budgeted<T> (operation: string, run: () => Promise<T>, ms = this.timeout, bytes = 0): Promise<T> {
    return withBudget(operation, ms, run, this.waiting, bytes)
  }

  async get (key: string): Promise<unknown> {
    return this.decode(await this.budgeted('get', async () => await this.keyv.get(this.prefix + key)))
  }

  async getMany (keys: readonly string[]): Promise<unknown[]> {
    const many = this.keyv.getMany
    const values = many === undefined
      ? await Promise.all(keys.map(async (key) => await this.budgeted('getMany', async () => await this.keyv.get(this.prefix + key))))
      : await this.budgeted('getMany', async () => await many.call(this.keyv, keys.map((key) => this.prefix + key)))
    return values.map((value) => this.decode(value))
  }

  async set (key: string, value: unknown, ttl?: number): Promise<void> {
    const stored = this.text(key, value)
    await this.budgeted('set', async () => await this.keyv.set(this.prefix + key, stored, ttl !== undefined && ttl > 0 ? ttl : undefined), this.timeout, stored.length)
  }

  /** One call of the Keyv's `setMany` where it has one (an adapter may batch it), one `set` per entry otherwise. */
  async setMany (entries: readonly StoreEntry[]): Promise<void> {
    const many = this.keyv.setMany
    const items = entries.map(({ key, value, ttl }) => ({ key: this.prefix + key, value: this.text(key, value), ...(ttl > 0 ? { ttl } : {}) }))
    if (many === undefined) {
      await Promise.all(items.map(async ({ key, value, ttl }) => await this.budgeted('set', async () => await this.keyv.set(key, value, ttl), this.timeout, value.length)))
    } else {
      await this.budgeted('setMany', async () => await many.call(this.keyv, items), this.timeout, bytesOf(items.map(({ value }) => value)))
    }
  }

  async delete (key: string): Promise<boolean> {
    return await this.budgeted('delete', async () => await this.keyv.delete(this.prefix + key)) !== false
  }

  stored (key: string, value: unknown): unknown {
    return storedAs(this.serializer, key, value, this.maxEntryBytes)
  }

  async clear (): Promise<void> {
    await this.budgeted('clear', async () => { await this.clearAll() }, this.clearTimeout)
  }

  private async clearAll (): Promise<void> {
    if (this.prefix === '') {
      await this.keyv.clear()
      return
    }
    // Keyv clears whole namespaces only: list the namespace, as the Redis store SCANs, and delete this prefix's keys.
    const iterator = this.keyv.iterator?.()
    if (iterator === undefined) throw new StoreError('clear', `this Keyv's adapter cannot list its keys, so the keys under "${this.prefix}" cannot be found; give the level a Keyv of its own`)
    const keys: string[] = []
    for (let step = await iterator.next(); step.done !== true; step = await iterator.next()) {
      const key = String(step.value[0])
      // Keyv and its adapters strip the namespace from the keys they list, some too little (Keyv 5 over @keyv/redis
      // leaves part of a namespace that holds ':'). Every part of the key from the prefix on is a key of this store,
      // so deleting each is right, and deleting one that does not exist costs nothing.
      for (let at = key.indexOf(this.prefix); at !== -1; at = key.indexOf(this.prefix, at + 1)) keys.push(key.slice(at))
    }
    for (let start = 0; start < keys.length; start += CLEAR_BATCH) {
      await Promise.all(keys.slice(start, start + CLEAR_BATCH).map(async (key) => await this.keyv.delete(key)))
    }
  }

  /** What the Keyv keeps of `value`: our serializer's text, or its bytes as base64 text. */
  private text (key: string, value: unknown): string {
    const data = this.encode(key, value)
    return typeof data === 'string' ? data : BINARY + data.toString('base64')
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
