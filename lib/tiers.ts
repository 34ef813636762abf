import type { InvalidationBus } from './bus.js'
import { deleteKeys, isPromiseLike, readKeys, setKeys, setKeysIf, type AnnouncedChange, type Awaitable, type FencedEntry, type FenceOperations, type Group, type GroupChange, type GroupOperations, type Invalidation, type KeyPage, type KeyQuery, type TagOperations, type Store, type StoreEntry, type TagEpoch, type TimedValue, UNKNOWN_EPOCH } from './store.js'
import { MemoryStore } from './stores/memory.js'

export interface TieredStoreOptions {
  /** The shared tier (Redis, Keyv, or any store). */
  l2: Store
  /**
   * Most entries in the memory tier; the least recently used goes first. 0: no memory tier, every read goes to L2,
   * and the bus still tells the others of each change and this instance of theirs (fences, tags).
   */
  max: number
  /** Longest an entry stays in the memory tier, in ms. */
  ttl: number
  /** The memory tier reads the clock at each check (see `MemoryStoreOptions.exactClock`): a session level's. */
  exactClock?: boolean
  /**
   * Tells the other instances what changed here; without one, staleness is bounded by `ttl` alone. Its channel is on
   * `l2`'s server, where `l2` has one: `l2` may publish its messages itself (`GroupOperations.updateAnnounced`).
   */
  bus?: InvalidationBus
  /** Told of an announcement that failed: the change itself stands, other tiers may serve the old value for `ttl`. */
  onFault?: (operation: string, error: unknown) => void
  /**
   * Every read of a group asks L2 whether the copy in L1 is still current (one small round trip where L2 versions its
   * groups), so that a change another instance made is seen by the next read here, bus or no bus.
   */
  verify?: boolean
}

/**
 * A bounded memory tier (L1) in front of a shared store (L2). An L1 hit answers synchronously, with no network
 * round trip. An entry never stays in L1 longer than `ttl`, nor longer than it has left in L2. Writes go to L1,
 * then L2, then the bus; a bus message drops the named L1 entries. While the bus is not listening, L1 is bypassed
 * (reads go to L2 and nothing is added to L1) and it was emptied when the bus lost its subscription, so an
 * instance that cannot hear invalidations never serves what another instance changed.
 *
 * Groups (one session's fields) are tiered whole: L1 keeps the group as the last read saw it, and every change,
 * made here or heard of, drops it, so that the fence checks of L2 decide every write. A read served from L1 does not
 * reach L2, so it does not restart the group's expiry there: reads restart it at least once per `ttl`, and every
 * write does.
 */
export class TieredStore implements Store {
  readonly groups?: GroupOperations
  readonly fences?: FenceOperations
  readonly tags?: TagOperations
  /** With a bus: deletes, then waits until every other instance has applied the message (see `Store`). */
  readonly deleteAcknowledged?: (keys: readonly string[], within: number) => Promise<void>
  /** The memory tier; none with `max: 0`. */
  private readonly l1: MemoryStore | undefined
  /**
   * Counts changes, received or made here, so that a value read from L2 before one is not put in L1 after it: a read
   * in flight may answer with what a concurrent delete or set of this very instance has just replaced.
   */
  private epoch = 0
  /** The same, key by key, for answers of L2 about one key: a change of another key does not make them old. */
  private readonly moves = new KeyMoves()
  private readonly watchers: Array<(message: Invalidation) => void> = []

  constructor (private readonly options: TieredStoreOptions) {
    this.l1 = options.max > 0 ? new MemoryStore({ max: options.max, exactClock: options.exactClock === true }) : undefined
    const groups = options.l2.groups
    if (groups !== undefined) this.groups = this.tierGroups(groups)
    const fences = options.l2.fences
    if (fences !== undefined) this.fences = this.tierFences(fences)
    const bus = options.bus
    if (bus !== undefined) {
      // Unlike `announce`, a publish that fails fails the call: its caller asked to know that every instance heard.
      this.deleteAcknowledged = async (keys, within) => {
        this.changing(keys)
        this.l1?.deleteMany(keys)
        await this.announcedIfFailed({ keys: [...keys] }, async () => { await deleteKeys(this.options.l2, keys) })
        await bus.publishAcknowledged({ keys: [...keys] }, within)
      }
    }
    const tags = options.l2.tags
    if (tags !== undefined) {
      this.tags = {
        // Versions read while the bus is deaf could miss a move announced before it hears again; watchers are told
        // `{ clear: true }` once it does, and read them then. The epoch read is told to the others: one that did not
        // hear the store lose its versions (a flush) would otherwise go on counting in the old epoch, and refuse every
        // entry this instance writes, as this instance would refuse its own.
        read: async () => {
          if (!this.hearing()) return undefined
          const read = await tags.read()
          if (read !== undefined) await this.announce({ tags: {}, epoch: read.epoch })
          return read
        },
        bump: async (names, stale) => {
          let moved: TagEpoch
          try {
            moved = await tags.bump(names, stale)
          } catch (error) {
            // It may still land: the others read the versions again, told after it on the same connection.
            await this.announce({ tags: Object.fromEntries(names.map((name) => [name, 0])), epoch: UNKNOWN_EPOCH })
            throw error
          }
          await this.announce({ tags: moved.versions, epoch: moved.epoch })
          return moved
        }
      }
    }
  }

  /** Entries held in memory. */
  get size (): number {
    return this.l1?.size ?? 0
  }

  /** Entries of pinned keys held in memory. */
  get pinned (): number {
    return this.l1?.pinned ?? 0
  }

  /** Keeps `key` out of the memory tier's bound; the shared store has none of ours (Redis has its own `maxmemory`). */
  pin (key: string): void {
    this.l1?.pin(key)
  }

  /** Applies an invalidation received from another instance, and tells the watchers. */
  invalidate (message: Invalidation): void {
    this.changing('clear' in message ? undefined : 'keys' in message ? message.keys : [])
    // Tagged entries check their tags' versions when read: a tag message drops nothing here.
    if ('clear' in message) this.l1?.clear()
    else if ('keys' in message) this.l1?.deleteMany(message.keys)
    for (const watcher of this.watchers) watcher(message)
  }

  watch (listener: (message: Invalidation) => void): void {
    this.watchers.push(listener)
  }

  get (key: string): unknown {
    // Without a memory tier a read is L2's own: there is nothing to keep, so no remaining lifetime to ask for.
    if (this.l1 === undefined) return this.options.l2.get(key)
    const l1 = this.memory()
    const hit = l1?.get(key)
    if (hit !== undefined) return hit
    return this.fill(key, l1, async () => await this.timedFromL2(key))
  }

  /**
   * What L1 holds at once; the rest from L2 in one round trip, kept in L1 as `get` keeps it. Answers at once when L1
   * holds every key; fails whole when L2 fails.
   */
  getMany (keys: readonly string[]): Awaitable<unknown[]> {
    if (this.l1 === undefined) return readKeys(this.options.l2, keys)
    const l1 = this.memory()
    const values: unknown[] = []
    const missing: number[] = []
    for (let i = 0; i < keys.length; i++) {
      const hit = l1?.get(keys[i] as string)
      values.push(hit)
      if (hit === undefined) missing.push(i)
    }
    return missing.length === 0 ? values : this.fillMany(keys, values, missing, l1)
  }

  /**
   * L1 first, synchronously, so that this instance serves the value at once even while L2 is slow; if L2 refuses
   * it, L1 lets it go too.
   */
  async set (key: string, value: unknown, ttl?: number): Promise<void> {
    this.changing([key])
    const l1 = this.memory()
    const held = l1 === undefined ? undefined : this.stored(key, value)
    l1?.set(key, held, this.l1Ttl(ttl ?? 0))
    await this.announced({ keys: [key] }, async () => {
      try {
        await this.options.l2.set(key, value, ttl)
      } catch (error) {
        if (held !== undefined && this.l1?.get(key) === held) this.l1.delete(key)
        throw error
      }
    })
  }

  /** What L2 would give back: the copy every other instance reads, kept in L1 here too. */
  stored (key: string, value: unknown): unknown {
    const { l2 } = this.options
    return l2.stored === undefined ? value : l2.stored(key, value)
  }

  /** `set` of several entries: L1 at once, L2 in one batch where it can, and one message to the others. */
  async setMany (entries: readonly StoreEntry[]): Promise<void> {
    this.changing(entries.map(({ key }) => key))
    const l1 = this.memory()
    const held = entries.map(({ key, value, ttl }) => {
      if (l1 === undefined) return undefined
      const copy = this.stored(key, value)
      l1.set(key, copy, this.l1Ttl(ttl))
      return copy
    })
    await this.announced({ keys: entries.map(({ key }) => key) }, async () => {
      try {
        await setKeys(this.options.l2, entries)
      } catch (error) {
        entries.forEach(({ key }, i) => { if (held[i] !== undefined && this.l1?.get(key) === held[i]) this.l1.delete(key) })
        throw error
      }
    })
  }

  async delete (key: string): Promise<boolean | void> {
    this.changing([key])
    this.l1?.delete(key)
    return await this.announced({ keys: [key] }, async () => await this.options.l2.delete(key))
  }

  async deleteMany (keys: readonly string[]): Promise<void> {
    this.changing(keys)
    this.l1?.deleteMany(keys)
    await this.announced({ keys: [...keys] }, async () => { await deleteKeys(this.options.l2, keys) })
  }

  async clear (): Promise<void> {
    this.changing()
    this.l1?.clear()
    await this.announced({ clear: true }, async () => { await this.options.l2.clear() })
  }

  async close (): Promise<void> {
    await this.options.bus?.close()
  }

  /** The shared store's keys, where it can list them: it holds every key, the memory tier a few. */
  get keys (): ((query: KeyQuery) => Awaitable<KeyPage>) | undefined {
    const { l2 } = this.options
    return l2.keys?.bind(l2)
  }

  /**
   * Runs a change of L2, then tells the other instances of it, whether it succeeded or failed: a command that timed
   * out may still land, and its message, sent after it on the same connection, then reaches them after it does (a
   * logout whose command came late would otherwise stay untold, and a retry finds nothing left to end).
   */
  private async announced<T> (message: Invalidation, change: () => Promise<T>): Promise<T> {
    try {
      return await change()
    } finally {
      await this.announce(message)
    }
  }

  /** `announced` for a change that tells of itself when it succeeds (only what it wrote). */
  private async announcedIfFailed<T> (message: Invalidation, change: () => Promise<T>): Promise<T> {
    try {
      return await change()
    } catch (error) {
      await this.announce(message)
      throw error
    }
  }

  /**
   * Tells the other instances of a change that already happened in L2. A failure does not fail the change (it is
   * stored, and the caller would only retry it): it is reported, and the other tiers drop their copy within `ttl`.
   */
  private async announce (message: Invalidation): Promise<void> {
    const { bus, onFault } = this.options
    if (bus === undefined) return
    // With leases, the call returns once every instance that may serve the old value has dropped it: or it fails.
    if (bus.leases !== undefined) {
      await bus.publishLeased(message)
      return
    }
    try {
      await bus.publish(message)
    } catch (error) {
      onFault?.('publish', error)
    }
  }

  /** `update` with its bus message in the same step; told the usual way when L2 would not publish it. */
  private updateAnnounced (l2: GroupOperations, key: string, fence: string, change: GroupChange, ttl: number, base: Group | undefined): Promise<boolean | Group> {
    const update = l2.updateAnnounced as NonNullable<GroupOperations['updateAnnounced']>
    const bus = this.options.bus as InvalidationBus
    if (bus.leases !== undefined) return bus.tellLeased({ keys: [key] }, (leased) => update(key, fence, change, ttl, base, leased))
    return this.told(bus, key, update(key, fence, change, ttl, base, bus.announcement({ keys: [key] })))
  }

  /** What an update that carried its bus message changed; announced the usual way when L2 could not publish it. */
  private async told (bus: InvalidationBus, key: string, updated: Awaitable<AnnouncedChange>): Promise<boolean | Group> {
    const { changed, announced } = await updated
    if (!announced) await this.announce({ keys: [key] })
    else if (changed !== false) bus.announced()
    return changed
  }

  /** The memory tier, while it may be used: there is one, and the bus (if any) is listening. */
  private memory (): MemoryStore | undefined {
    return this.hearing() ? this.l1 : undefined
  }

  /** True unless there is a bus and it is not subscribed. */
  private hearing (): boolean {
    return this.options.bus === undefined || this.options.bus.hears()
  }

  /**
   * Reads through to L2 and keeps what it found in L1 for what it has left there, unless the bus cannot be heard or
   * something changed while it was read. Serves plain values and groups alike.
   */
  private async fill (key: string, l1: MemoryStore | undefined, load: () => Promise<TimedValue | undefined>): Promise<unknown> {
    const mark = this.moves.start(key)
    let timed: TimedValue | undefined
    try {
      timed = await load()
    } finally {
      if (this.moves.end(mark) && timed !== undefined) l1?.set(key, timed.value, this.l1Ttl(timed.ttl))
    }
    return timed?.value
  }

  /** A change made or heard here, of `keys` (of every key when not given): L2's answers in flight about them are old. */
  private changing (keys?: readonly string[]): void {
    this.epoch++
    if (keys === undefined) this.moves.clearedAll()
    else for (const key of keys) this.moves.moved(key)
  }

  /** `fill` of several keys: the values of `missing` (indexes of `keys`) from one read of L2 go into `values`. */
  private async fillMany (keys: readonly string[], values: unknown[], missing: readonly number[], l1: MemoryStore | undefined): Promise<unknown[]> {
    const epoch = this.epoch
    const timed = await this.timedManyFromL2(missing.map((i) => keys[i] as string))
    const keep = epoch === this.epoch ? l1 : undefined
    missing.forEach((at, i) => {
      const found = timed[i]
      if (found === undefined) return
      values[at] = found.value
      keep?.set(keys[at] as string, found.value, this.l1Ttl(found.ttl))
    })
    return values
  }

  private async timedManyFromL2 (keys: readonly string[]): Promise<Array<TimedValue | undefined>> {
    const { l2 } = this.options
    if (l2.getTimedMany !== undefined) return await l2.getTimedMany(keys)
    if (l2.getMany !== undefined) return (await l2.getMany(keys)).map((value) => value === undefined ? undefined : { value, ttl: 0 })
    return await Promise.all(keys.map(async (key) => await this.timedFromL2(key)))
  }

  /** A value of L2 with what it has left, where L2 can tell (0, no expiry known, where it cannot). */
  private async timedFromL2 (key: string): Promise<TimedValue | undefined> {
    const { l2 } = this.options
    if (l2.getTimed !== undefined) return await l2.getTimed(key)
    const found = l2.get(key)
    const value = isPromiseLike(found) ? await found : found
    return value === undefined ? undefined : { value, ttl: 0 }
  }

  /** The L1 lifetime of an entry that has `remaining` ms left in L2 (0: no expiry there). */
  private l1Ttl (remaining: number): number {
    return remaining > 0 ? Math.min(remaining, this.options.ttl) : this.options.ttl
  }

  /** L2 decides; a value it took enters L1 unless something changed meanwhile, and the others are told. */
  private tierFences (l2: FenceOperations): FenceOperations {
    const { readMany } = l2
    return {
      read: (key) => l2.read(key),
      bump: (key) => l2.bump(key),
      setIf: async (key, value, ttl, fence) => (await this.setWritten([{ key, value, ttl, fence }], async () => [await l2.setIf(key, value, ttl, fence)]))[0] as boolean,
      ...(readMany === undefined ? {} : { readMany: (keys: readonly string[]) => readMany.call(l2, keys) }),
      // One round trip where L2 batches; one message to the others either way.
      setManyIf: async (entries) => await this.setWritten(entries, async () => await setKeysIf(l2, entries))
    }
  }

  /** Keeps in L1 the entries `write` says L2 took, unless something changed meanwhile, and tells the others of them. */
  private async setWritten (entries: readonly FencedEntry[], write: () => Promise<boolean[]>): Promise<boolean[]> {
    const epoch = this.epoch
    const written = await this.announcedIfFailed({ keys: entries.map(({ key }) => key) }, write)
    const taken = entries.filter((_, i) => written[i] === true)
    if (taken.length === 0) return written
    const l1 = this.memory()
    if (epoch === this.epoch && l1 !== undefined) for (const { key, value, ttl } of taken) l1.set(key, this.stored(key, value), this.l1Ttl(ttl))
    this.changing(taken.map(({ key }) => key))
    await this.announce({ keys: taken.map(({ key }) => key) })
    return written
  }

  /** The copy of a group L1 holds, once L2 has said it is current; what L2 holds instead, or nothing, otherwise. */
  private async check (key: string, ttl: number, held: Group, l2: GroupOperations): Promise<Group | undefined> {
    const mark = this.moves.start(key)
    let group: Group | undefined
    try {
      group = await l2.read(key, ttl, held)
    } catch (error) {
      this.moves.end(mark)
      throw error
    }
    const unmoved = this.moves.end(mark)
    if (group === held) return held
    // Replaced or gone: L1 takes what L2 said, unless a change of the group made or heard here meanwhile makes that
    // answer old too.
    if (unmoved && group !== undefined) this.l1?.set(key, group, this.l1Ttl(ttl))
    else this.l1?.delete(key)
    return group
  }

  private tierGroups (l2: GroupOperations): GroupOperations {
    // Even a change that failed (a timeout) may have landed in L2: the L1 copy goes either way.
    // Told of even when it failed: see `announced`. A change whose store publishes its message (`announced`) is told
    // by itself if it lands.
    const settled = (key: string): Promise<void> => {
      this.changing([key])
      this.l1?.delete(key)
      return this.announce({ keys: [key] })
    }
    const changed = async <T> (key: string, change: () => Awaitable<T>): Promise<T> => {
      try {
        return await change()
      } finally {
        await settled(key)
      }
    }
    const verify = this.options.verify === true
    return {
      read: (key, ttl) => {
        const l1 = this.memory()
        const hit = l1?.get(key) as Group | undefined
        if (hit !== undefined && verify) return this.check(key, ttl, hit, l2)
        if (hit !== undefined) return hit
        // A read restarts the group's expiry: it has its whole `ttl` left.
        return this.fill(key, l1, async () => {
          const group = await l2.read(key, ttl)
          return group === undefined ? undefined : { value: group, ttl }
        }) as Promise<Group | undefined>
      },
      // What exists is L2's to say: a copy in L1 may be of a group another instance ended.
      ...(l2.exists === undefined ? {} : { exists: l2.exists.bind(l2) }),
      create: async (key, group, ttl) => await changed(key, () => l2.create(key, group, ttl)),
      update: async (key, fence, change, ttl) => {
        // L2 may vouch for the group as the change left it, when the change was made on the copy L1 holds.
        const base = this.memory()?.get(key) as Group | undefined
        // Where L2 can, the bus's message goes out in the step that makes the change: one round trip, not two.
        const announcing = l2.updateAnnounced !== undefined && this.options.bus?.inScripts === true
        const mark = this.moves.start(key)
        let result: boolean | Group = false
        try {
          result = await (announcing ? this.updateAnnounced(l2, key, fence, change, ttl, base) : l2.update(key, fence, change, ttl, base))
        } finally {
          // The message went out with the change (`announcing`): nothing runs between the change and the keep below,
          // so the old copy is written over rather than deleted first.
          if (announcing) this.changing([key])
          else await settled(key)
          // Kept when the group moved once meanwhile, by this very change: another request's change of it, or a message
          // about it, may have come after the answer L2 vouched for.
          const kept = this.moves.end(mark, 1) && typeof result === 'object' ? this.memory() : undefined
          if (kept !== undefined) kept.set(key, result, this.l1Ttl(ttl))
          else if (announcing) this.l1?.delete(key)
        }
        return result
      },
      end: async (key, fence) => await changed(key, () => l2.end(key, fence))
    }
  }
}

interface KeyMark { readonly key: string, readonly moves: number, readonly cleared: number }

/**
 * Which keys changed while an operation of the tier on them was in flight, so that an answer of L2 goes into L1 only
 * if nothing changed its key meanwhile. Finer than the tier's epoch, which a change of any key moves: under load a
 * session read or written while other sessions change would never be kept, and every request would read it again.
 * A key is held only while an operation on it runs.
 */
class KeyMoves {
  private cleared = 0
  private readonly watched = new Map<string, { running: number, moves: number }>()

  /** Starts watching `key`; every `start` has its `end`. */
  start (key: string): KeyMark {
    let watched = this.watched.get(key)
    if (watched === undefined) {
      watched = { running: 0, moves: 0 }
      this.watched.set(key, watched)
    }
    watched.running++
    return { key, moves: watched.moves, cleared: this.cleared }
  }

  /** Stops watching: true when the key moved just `own` times since `mark` (its operation's own changes). */
  end (mark: KeyMark, own = 0): boolean {
    const watched = this.watched.get(mark.key) as { running: number, moves: number }
    if (--watched.running === 0) this.watched.delete(mark.key)
    return watched.moves - mark.moves === own && this.cleared === mark.cleared
  }

  moved (key: string): void {
    const watched = this.watched.get(key)
    if (watched !== undefined) watched.moves++
  }

  clearedAll (): void {
    this.cleared++
  }
}
