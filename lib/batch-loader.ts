import { frozen, perKey, type BatchLoad, type BatchResult } from './batch.js'
import { InvalidOptionError, describe } from './errors.js'
import type { KeyRule } from './keys.js'
import { countLoad, type LevelStats } from './stats.js'

/** Options of `request.reqCache.loader()`. */
export interface BatchLoaderOptions<K> {
  /** Most keys in one call of the batch function: the loads of one tick past it go in further calls. Default: `maxKeysPerCall`. */
  maxBatchSize?: number
  /** What a key is remembered by, for keys that are objects: keys with one cache key are loaded once. Default: the key. */
  cacheKey?: (key: K) => unknown
}

/** What a loader takes from the level it serves. */
export interface BatchLoaderLimits {
  /** Cache keys that are strings must pass it; `loadMany` takes at most its `maxKeys` keys. */
  keys: KeyRule
  /** Most keys remembered: past it the earliest remembered goes (and is loaded again if asked for). */
  maxEntries: number
  /** Where the level counts hits, misses, loads and evictions, when it does. */
  stats?: LevelStats
}

interface Queued<K, V> {
  key: K
  id: unknown
  promise: Promise<V>
  resolve: (value: V) => void
  reject: (error: unknown) => void
}

const resolved = Promise.resolve()

/**
 * Runs `dispatch` once the promise jobs of this tick have run: loads made in the continuations of loads that settled
 * together (the brand of each product of a `Promise.all`) still join one batch, as DataLoader schedules it.
 */
function afterThisTick (dispatch: () => void): void {
  resolved.then(() => { process.nextTick(dispatch) }, () => {})
}

/**
 * DataLoader's contract, small: the loads made in one tick become one call of the batch function, and each key is
 * loaded at most once while the loader lives (its value, or the `Error` the batch function gave in its place, is
 * remembered; a call that failed whole is not, so that a later load tries again). Made per request by the request
 * level, it is dropped with the request, so nothing it remembers is ever seen by another.
 */
export class BatchLoader<K, V> {
  private readonly remembered = new Map<unknown, Promise<V>>()
  private queue: Array<Queued<K, V>> = []
  private readonly maxBatchSize: number
  private readonly cacheKey: ((key: K) => unknown) | undefined

  /** `method` names the loader in errors, e.g. `reqCache.loader("products")`. */
  constructor (private readonly method: string, private readonly batch: BatchLoad<K, BatchResult<K, unknown>>, private readonly limits: BatchLoaderLimits, options: BatchLoaderOptions<K> = {}) {
    if (typeof batch !== 'function') throw new InvalidOptionError(method, 'batchFn', 'must be a function', describe(batch))
    const { maxBatchSize = limits.keys.maxKeys, cacheKey } = options
    if (!Number.isSafeInteger(maxBatchSize) || maxBatchSize < 1) throw new InvalidOptionError(method, 'maxBatchSize', 'must be a positive integer', describe(maxBatchSize))
    if (cacheKey !== undefined && typeof cacheKey !== 'function') throw new InvalidOptionError(method, 'cacheKey', 'must be a function', describe(cacheKey))
    this.maxBatchSize = maxBatchSize
    this.cacheKey = cacheKey
  }

  /** The value of `key`: remembered, or loaded with the other keys asked for in this tick. */
  load (key: K): Promise<V> {
    let id: unknown
    try {
      id = this.idOf(key)
    } catch (error) {
      return Promise.reject(error)
    }
    const stats = this.limits.stats
    const known = this.remembered.get(id)
    if (known !== undefined) {
      if (stats !== undefined) stats.hits++
      return known
    }
    if (stats !== undefined) stats.misses++
    let settle: Pick<Queued<K, V>, 'resolve' | 'reject'> | undefined
    const promise = new Promise<V>((resolve, reject) => { settle = { resolve, reject } })
    if (this.queue.length === 0) afterThisTick(() => { this.dispatch() })
    this.queue.push({ key, id, promise, ...settle as Pick<Queued<K, V>, 'resolve' | 'reject'> })
    this.remember(id, promise)
    return promise
  }

  /** The values of `keys` in their order, each an `Error` in place where its key failed (the call never rejects for one). */
  async loadMany (keys: readonly K[]): Promise<Array<V | Error>> {
    this.limits.keys.assertCount(`${this.method}.loadMany`, keys)
    return await Promise.all(keys.map(async (key) => await this.load(key).catch((error: unknown) => error instanceof Error ? error : new Error(String(error)))))
  }

  /** Remembers `value` (an `Error`: a failure) for `key`, unless it is known already: `clear` it first to replace it. */
  prime (key: K, value: V | Error): this {
    const id = this.idOf(key)
    if (this.remembered.has(id)) return this
    const promise = value instanceof Error ? Promise.reject(value) : Promise.resolve(value)
    // A primed failure nobody loads is no unhandled rejection; whoever loads it still gets it.
    promise.catch(() => {})
    this.remember(id, promise)
    return this
  }

  /** Forgets `key`: the next load of it loads it again. */
  clear (key: K): this {
    this.remembered.delete(this.idOf(key))
    return this
  }

  /** What `key` is remembered by; a string must be a key the level takes (length included). */
  private idOf (key: K): unknown {
    const id = this.cacheKey === undefined ? key : this.cacheKey(key)
    if (typeof id === 'string' || id === undefined || id === null) this.limits.keys.assert(id)
    return id
  }

  private remember (id: unknown, promise: Promise<V>): void {
    if (this.remembered.size >= this.limits.maxEntries) {
      this.remembered.delete(this.remembered.keys().next().value)
      if (this.limits.stats !== undefined) this.limits.stats.evictions++
    }
    this.remembered.set(id, promise)
  }

  private dispatch (): void {
    const queue = this.queue
    this.queue = []
    for (let start = 0; start < queue.length; start += this.maxBatchSize) {
      this.run(queue.slice(start, start + this.maxBatchSize)).catch(() => {})
    }
  }

  /** One call of the batch function; settles every load of `batch`, and never rejects. */
  private async run (batch: Array<Queued<K, V>>): Promise<void> {
    const keys = batch.map(({ key }) => key)
    const call = async (): Promise<unknown[]> => perKey(this.method, keys, await this.batch(frozen(keys)))
    let values: unknown[]
    try {
      values = this.limits.stats === undefined ? await call() : await countLoad(this.limits.stats, call, undefined, keys.length)
    } catch (error) {
      for (const { id, promise, reject } of batch) {
        if (this.remembered.get(id) === promise) this.remembered.delete(id)
        reject(error)
      }
      return
    }
    batch.forEach(({ resolve, reject }, i) => {
      const value = values[i]
      if (value instanceof Error) reject(value)
      else resolve(value as V)
    })
  }
}
