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
  delete (key: string): Awaitable<void>
  clear (): Awaitable<void>
  /** Reads several keys at once where the backend can batch them. */
  getMany? (keys: readonly string[]): Awaitable<unknown[]>
  /** A value with the time it has left, where the backend tells both at once: a memory tier in front never outlives it. */
  getTimed? (key: string): Awaitable<TimedValue | undefined>
  /** Deletes several keys at once where the backend can batch them. */
  deleteMany? (keys: readonly string[]): Awaitable<void>
  /**
   * Optional grouped fields under one key that expire together (a Redis hash). The session level uses them when
   * present: writing one entry then touches one field, and concurrent requests of one session cannot overwrite
   * each other's entries. Every call restarts the group's expiry (`ttl` ms); `delete(key)` drops the group.
   */
  readonly groups?: GroupOperations
  /** Entries currently held, where the backend knows it cheaply. */
  readonly size?: number
  /** Releases what the store opened; called on `fastify.close()` for stores the plugin created. */
  close? (): Awaitable<void>
}

/** A value and what remains of its time to live. */
export interface TimedValue {
  value: unknown
  /** Remaining ms; 0 when the entry does not expire. */
  ttl: number
}

/** Field-level access to a group; see `Store.groups`. */
export interface GroupOperations {
  /** Every field of the group, or undefined when the group does not exist. Restarts its expiry. */
  read (key: string, ttl: number): Awaitable<Record<string, unknown> | undefined>
  /** Writes fields (creating the group if needed) and restarts its expiry. */
  write (key: string, fields: Readonly<Record<string, unknown>>, ttl: number): Awaitable<void>
  /** Removes fields and restarts the group's expiry. */
  remove (key: string, fields: readonly string[], ttl: number): Awaitable<void>
}

const REQUIRED = ['get', 'set', 'delete', 'clear'] as const

/** True for a thenable: the signal that a store answered asynchronously. */
export function isPromiseLike (value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | undefined)?.then === 'function'
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
