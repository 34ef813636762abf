import type { Awaitable, GroupOperations } from '../../index.js'

// #region readme
interface Store {
  get (key: string): Awaitable<unknown> // undefined: absent
  set (key: string, value: unknown, ttl?: number): Awaitable<void> // ttl in ms; 0 or omitted: the store's default
  delete (key: string): Awaitable<void>
  clear (): Awaitable<void> // this store's namespace only
  getMany? (keys: readonly string[]): Awaitable<unknown[]>
  deleteMany? (keys: readonly string[]): Awaitable<void>
  getTimed? (key: string): Awaitable<{ value: unknown, ttl: number } | undefined> // the value and its remaining ttl
  readonly groups?: GroupOperations // fields under one key that expire together: one hash per session
  readonly size?: number
  close? (): Awaitable<void>
}
// #endregion

// types/readme.tst.ts checks that this is the `Store` the package exports.
export type { Store as ReadmeStore }
