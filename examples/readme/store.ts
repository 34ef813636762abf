import type { Awaitable, FenceOperations, GroupOperations, Invalidation, KeyPage, KeyQuery, StoreEntry, TagOperations } from 'fastify-multi-cache'

export interface Store {
  get (key: string): Awaitable<unknown> // undefined: absent
  set (key: string, value: unknown, ttl?: number): Awaitable<void> // ttl in ms; 0 or omitted: the store's default
  delete (key: string): Awaitable<boolean | void> // false: there was nothing to delete
  clear (): Awaitable<void> // this store's namespace only
  getMany? (keys: readonly string[]): Awaitable<unknown[]> // a value or undefined per key, in their order
  setMany? (entries: readonly StoreEntry[]): Awaitable<void> // { key, value, ttl } each: batch writes
  deleteMany? (keys: readonly string[]): Awaitable<void>
  deleteAcknowledged? (keys: readonly string[], within: number): Awaitable<void> // resolves once no instance holds a copy
  getTimed? (key: string): Awaitable<{ value: unknown, ttl: number } | undefined> // the value and its remaining ttl
  getTimedMany? (keys: readonly string[]): Awaitable<Array<{ value: unknown, ttl: number } | undefined>> // getTimed of each, at once
  stored? (key: string, value: unknown): unknown // the value as the store gives it back (decoded from its bytes)
  readonly groups?: GroupOperations // fields under one key and a fence, changed atomically: one hash per session
  readonly fences?: FenceOperations // per-key fences shared by every instance (Redis)
  watch? (listener: (change: Invalidation) => void): void // changes other instances made (keys, all, tag versions)
  readonly tags?: TagOperations // tag versions shared by every instance (Redis)
  readonly size?: number
  readonly exactKeys?: boolean // keys held as the strings they are (a Map): no lone-surrogate check (see the table above)
  pin? (key: string): void // keep key out of the store's own size bound (memory store, memory tier): define'd keys
  readonly pinned?: number // entries of pinned keys held (size counts them too)
  close? (): Awaitable<void>
  keys?: ((query: KeyQuery) => Awaitable<KeyPage>) | undefined // keys containing query.match, with their ttl: the admin API lists them
}
