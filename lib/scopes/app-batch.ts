import { frozen, perKey, type BatchLoad, type BatchResult } from '../batch.js'
import { EntryTooLargeError } from '../errors.js'
import { hold, plain, stateOf, storeTtl, type Freshness, type Held, type State } from '../freshness.js'
import type { LevelLog } from '../level-log.js'
import type { Flight, SingleFlight } from '../single-flight.js'
import { countLoad, type LevelStats } from '../stats.js'
import { observeLoad, type CacheOperation } from '../events.js'
import { isPromiseLike, readKeys, type Awaitable, type FencedEntry, type Store } from '../store.js'
import type { TagVersions } from '../tags.js'
import type { LoadLock } from './application.js'

/** What batch reads need of the application level they read for; see `AppCache`, whose parts these are. */
export interface AppLevelParts {
  /** The level, as its operations name it on the event stream. */
  readonly origin: object
  readonly store: Store
  readonly lock: LoadLock | undefined
  readonly loads: SingleFlight
  readonly tags: TagVersions
  readonly stats: LevelStats
  readonly log: LevelLog
  /** A defined key that is not fresh, as `get` answers it (loaded by its own loader); undefined for any other key. */
  defined: (key: string) => Promise<unknown> | undefined
  /** Waits for a load within its timeouts, a grace value standing in for its failure. */
  wait: (key: string, load: Promise<unknown>, freshness: Freshness, grace: Held | undefined) => Promise<unknown>
  /** Stores one loaded value under its fence; never rejects. */
  write: (key: string, held: Held, ttl: number, fence: string | undefined) => Promise<void>
  fault: (operation: string, key: string | undefined, error: unknown) => void
  tooLarge: (key: string, error: unknown) => void
  /** True once the level stopped: a wait for another instance's value then rejects instead of loading. */
  stopped: () => boolean
}

/** A key as one batch read found it. */
interface Found {
  held: Held | undefined
  state: State
  /** False when the store failed to answer for it: its load then writes nowhere, as `get`'s does. */
  reached: boolean
}

/** A key this batch loads, and what its callers wait for. */
interface Pending {
  key: string
  flight: Flight
  reached: boolean
  /** The shared fence its load starts under: undefined without shared fences, null when unknown (nothing is written). */
  fence: string | undefined | null
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
}

type AnyBatchLoad = BatchLoad<string, BatchResult<string, unknown>>

const GONE_UNREACHED: Found = { held: undefined, state: 'gone', reached: false }

/**
 * `getMany` and `getOrLoadMany` of the application level: what `get` and `getOrLoad` do for one key, for many keys at
 * the cost of about one key. The store is read once for all of them (the memory tier at once, the shared store in one
 * round trip for what it lacks); each key is then checked as `get` checks it (tags, staleness, grace). The keys whose
 * load is in flight are awaited; the others are loaded together, by one call of the loader, under their fences read
 * in one round trip, and written back in one. Per key, everything else is as in `getOrLoad`: the single flight, the
 * lock across instances, fences, timeouts, a grace value standing in for a failure, a stale value served while the
 * stale keys are loaded again together in the background.
 */
export class AppBatches {
  constructor (private readonly level: AppLevelParts) {}

  async getMany (keys: readonly string[], op?: CacheOperation): Promise<unknown[]> {
    const unique = [...new Set(keys)]
    const read = this.read(unique)
    const found = isPromiseLike(read) ? await read : read
    const { stats, log } = this.level
    const values = new Map<string, unknown>()
    const defined: Array<Promise<void>> = []
    unique.forEach((key, i) => {
      const { held, state } = found[i] as Found
      const reloaded = state === 'fresh' ? undefined : this.level.defined(key)
      if (reloaded !== undefined) {
        defined.push(reloaded.then((value) => { values.set(key, value) }))
      } else if (state === 'fresh' || state === 'stale') {
        stats.hits++
        if (state === 'stale') stats.staleServed++
        values.set(key, (held as Held).v)
      } else {
        stats.misses++
        log.miss(key)
      }
    })
    if (defined.length > 0) await Promise.all(defined)
    if (op !== undefined) op.hits = values.size
    return keys.map((key) => values.get(key))
  }

  async getOrLoadMany (keys: readonly string[], loader: AnyBatchLoad, freshness: Freshness, op?: CacheOperation): Promise<unknown[]> {
    const unique = [...new Set(keys)]
    const read = this.read(unique)
    const found = isPromiseLike(read) ? await read : read
    const { stats, log } = this.level
    const values = new Map<string, unknown>()
    const misses: Array<{ key: string, reached: boolean, grace: Held | undefined }> = []
    const stale: string[] = []
    unique.forEach((key, i) => {
      const { held, state, reached } = found[i] as Found
      if (state === 'fresh' || state === 'stale') {
        stats.hits++
        values.set(key, (held as Held).v)
        if (state === 'stale') {
          stats.staleServed++
          stale.push(key)
        }
      } else {
        stats.misses++
        log.miss(key)
        misses.push({ key, reached, grace: state === 'grace' ? held : undefined })
      }
    })
    if (op !== undefined) op.hits = values.size
    if (stale.length > 0) this.revalidate(stale, loader, freshness)
    if (misses.length > 0) {
      const loads = this.load(misses, loader, freshness, false)
      await Promise.all(misses.map(async ({ key, grace }, i) => {
        values.set(key, await this.level.wait(key, loads[i] as Promise<unknown>, freshness, grace))
      }))
    }
    return keys.map((key) => values.get(key))
  }

  /** Every key as the store has it: at once when it answers at once (memory), else from one batch read. */
  private read (keys: readonly string[]): Awaitable<Found[]> {
    let answer: Awaitable<unknown[]>
    try {
      answer = readKeys(this.level.store, keys)
    } catch (error) {
      answer = Promise.reject(error)
    }
    if (!isPromiseLike(answer)) return answer.map((held) => this.found(held))
    return Promise.resolve(answer).then((values) => values.map((held) => this.found(held)), async (error: unknown) => await this.keyByKey(keys, error))
  }

  private found (value: unknown): Found {
    const held = value as Held | undefined
    if (held?.v === undefined) return { held: undefined, state: 'gone', reached: true }
    return { held, state: plain(held) ? 'fresh' : stateOf(held, this.level.tags), reached: true }
  }

  /**
   * A batch read that failed is tried key by key: a memory tier in front still serves what it holds (a batch read of a
   * tier fails whole), and only what the store cannot answer for is loaded without it.
   */
  private async keyByKey (keys: readonly string[], error: unknown): Promise<Found[]> {
    this.level.fault('getMany', undefined, error)
    return await Promise.all(keys.map(async (key) => {
      try {
        return this.found(await this.level.store.get(key))
      } catch (failed) {
        this.level.fault('get', key, failed)
        return GONE_UNREACHED
      }
    }))
  }

  /** The stale keys no load is running for, loaded together in the background; a failure keeps their stale values. */
  private revalidate (keys: readonly string[], loader: AnyBatchLoad, freshness: Freshness): void {
    const idle = keys.filter((key) => !this.level.loads.has(key))
    if (idle.length === 0) return
    this.level.stats.backgroundLoads += idle.length
    Promise.all(this.load(idle.map((key) => ({ key, reached: true })), loader, freshness, true)).catch((error: unknown) => {
      this.level.log.warn({ err: error }, `appCache: the background load of ${idle.length} stale keys failed; their stale values are served until their windows end`)
    })
  }

  /**
   * A promise per key: the load in flight for it, or the one this call starts for every key that has none. `background`
   * loads stay in flight until their values are written, as a lock holder's do.
   */
  private load (keys: ReadonlyArray<{ key: string, reached: boolean }>, loader: AnyBatchLoad, freshness: Freshness, background: boolean): Array<Promise<unknown>> {
    const mine: Pending[] = []
    const loads = keys.map(({ key, reached }) => this.level.loads.join(key, (flight) => new Promise((resolve, reject) => {
      mine.push({ key, flight, reached, fence: undefined, resolve, reject })
    }), freshness.tags).value)
    if (mine.length > 0) {
      // It settles every key of the batch, whatever happens: an error of its own fails them all.
      this.run(mine, loader, freshness, background).catch((error: unknown) => { for (const pending of mine) pending.reject(error) })
    }
    return loads
  }

  /**
   * Reads the fences, takes the locks where there is a lock, and loads what it must: the keys whose lock this
   * instance holds (or could not ask for) at once, in one call of the loader; the keys another instance is loading
   * once it has written them, and in a second call those it let go without a value.
   */
  private async run (batch: Pending[], loader: AnyBatchLoad, freshness: Freshness, background: boolean): Promise<void> {
    await this.readFences(batch)
    const lock = this.level.lock
    if (lock === undefined) return await this.loadAndStore(batch, loader, freshness, background)
    const tokens = await Promise.all(batch.map(async (pending) => pending.reached ? await this.claim(lock, pending) : ''))
    const holding: Array<{ pending: Pending, token: string }> = []
    const waiting: Pending[] = []
    batch.forEach((pending, i) => {
      const token = tokens[i]
      if (token === undefined) waiting.push(pending)
      else holding.push({ pending, token })
    })
    const left = this.waitForOthers(lock, waiting)
    try {
      await this.loadAndStore(holding.map(({ pending }) => pending), loader, freshness, background || holding.some(({ token }) => token !== ''))
    } finally {
      // At once, whatever the outcome: waiters stop waiting as soon as the lock is free.
      await Promise.all(holding.map(async ({ pending, token }) => {
        if (token !== '') await lock.release(lockName(pending), token).catch((error: unknown) => { this.level.fault('unlock', pending.key, error) })
      }))
    }
    await this.loadAndStore(await left, loader, freshness, background)
  }

  /** The fence of each key the store answered for, in one round trip; what it cannot tell is null (written nowhere). */
  private async readFences (batch: Pending[]): Promise<void> {
    const fences = this.level.store.fences
    const reached = batch.filter((pending) => pending.reached)
    for (const pending of batch) if (!pending.reached) pending.fence = null
    if (fences === undefined || reached.length === 0) return
    const keys = reached.map((pending) => pending.key)
    try {
      const read = fences.readMany === undefined ? await Promise.all(keys.map(async (key) => await fences.read(key))) : await fences.readMany(keys)
      reached.forEach((pending, i) => { pending.fence = read[i] as string })
    } catch (error) {
      this.level.fault('fence', undefined, error)
      for (const pending of reached) pending.fence = null
    }
  }

  /** The lock of one key and fence: a token when this instance holds it, undefined when another does, '' when it failed. */
  private async claim (lock: LoadLock, pending: Pending): Promise<string | undefined> {
    return await lock.acquire(lockName(pending)).catch((error: unknown) => { this.level.fault('lock', pending.key, error); return '' })
  }

  /** Waits for the instances holding these keys' locks to write their values; answers the keys it must load itself. */
  private async waitForOthers (lock: LoadLock, waiting: readonly Pending[]): Promise<Pending[]> {
    const fresh = (value: unknown): boolean => (value as Held).v !== undefined && stateOf(value as Held, this.level.tags) === 'fresh'
    const left: Pending[] = []
    await Promise.all(waiting.map(async (pending) => {
      try {
        const landed = await lock.waitFor(this.level.store, pending.key, lockName(pending), fresh) as Held | undefined
        if (landed === undefined) left.push(pending)
        else pending.resolve(landed.v)
      } catch (error) {
        if (this.level.stopped()) {
          pending.reject(error)
        } else {
          this.level.fault('lock', pending.key, error)
          left.push(pending)
        }
      }
    }))
    return left
  }

  /**
   * One call of the loader for `batch`, and its values stored: each caller gets what every later hit will get, as soon as
   * the loader answered (the writes go on behind), or once they are written with `awaitWrite`. Never rejects: a failure
   * fails the keys of the batch, an `Error` in place of a value fails its key alone.
   */
  private async loadAndStore (batch: readonly Pending[], loader: AnyBatchLoad, freshness: Freshness, awaitWrite: boolean): Promise<void> {
    if (batch.length === 0) return
    const { stats, log, store } = this.level
    const keys = batch.map((pending) => pending.key)
    // The tags' versions before the loader reads anything: an invalidation during the load makes its values old.
    const kept = this.level.tags.of(freshness.tags)
    let values: unknown[]
    try {
      values = await countLoad(stats, observeLoad('app', undefined, async () => perKey('appCache.getOrLoadMany', keys, await loader(frozen(keys))), keys, this.level.origin), (ms, error) => { log.loadedMany(keys, ms, error) }, keys.length)
    } catch (error) {
      for (const pending of batch) pending.reject(error)
      return
    }
    const ttl = storeTtl(freshness)
    const writes: Array<{ key: string, value: Held, ttl: number, fence: string | undefined }> = []
    const answers: Array<() => void> = []
    batch.forEach((pending, i) => {
      const value = values[i]
      if (value instanceof Error) {
        stats.loadErrors++
        pending.reject(value)
        return
      }
      if (value === undefined) {
        pending.resolve(undefined)
        return
      }
      let held = hold(value, freshness, kept)
      try {
        if (store.stored !== undefined) held = store.stored(pending.key, held) as Held
      } catch (error) {
        // Data that outgrew the bound is served uncached, not refused: the next miss loads it again.
        if (error instanceof EntryTooLargeError) {
          this.level.tooLarge(pending.key, error)
          pending.resolve(value)
        } else {
          pending.reject(error)
        }
        return
      }
      if (!pending.flight.fenced && pending.fence !== null) writes.push({ key: pending.key, value: held, ttl, fence: pending.fence })
      if (awaitWrite) answers.push(() => { pending.resolve(held.v) })
      else pending.resolve(held.v)
    })
    const written = this.write(writes)
    if (!awaitWrite) return
    await written
    for (const answer of answers) answer()
  }

  /**
   * Stores loaded values in one round trip where the store writes batches (each under its own fence where it keeps
   * fences), one by one otherwise. Never rejects: a failure is counted and logged, and the next miss loads again.
   */
  private async write (entries: ReadonlyArray<{ key: string, value: Held, ttl: number, fence: string | undefined }>): Promise<void> {
    if (entries.length === 0) return
    const { store } = this.level
    const { fences } = store
    const batched = fences === undefined ? store.setMany?.bind(store) : fences.setManyIf?.bind(fences)
    if (batched === undefined) {
      await Promise.all(entries.map(async ({ key, value, ttl, fence }) => { await this.level.write(key, value, ttl, fence) }))
      return
    }
    try {
      // With shared fences, every key the store answered for has one: the others were left out (fence null).
      await batched(entries as FencedEntry[])
    } catch (error) {
      this.level.fault('set', undefined, error)
    }
  }
}

/** One lock per key and fence: after a change, the load of the new fence does not wait for one of the old. */
function lockName ({ key, fence }: Pending): string {
  return typeof fence === 'string' ? `${key}@${fence}` : key
}
