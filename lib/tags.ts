import type { TagEpoch, TagOperations } from './store.js'

/**
 * Where an entry keeps the mark of the versions under which its tags were last found current: a symbol property that
 * is not enumerable, so that no serializer sees it.
 */
const CHECKED = Symbol('fastify-multi-cache.tags-checked')
/** Marks come from one counter, so that one instance's mark on an entry never passes for another's (two levels may share a memory store). */
let marks = 0

/** How long after a failed read of the shared store's versions the next one is tried, in ms. */
const RETRY = 1000

/** What an entry keeps of its tags' versions when its value is loaded: they are current while these still are. */
export interface KeptVersions {
  /** The epoch the versions count in; none without a shared store. */
  epoch: string | undefined
  versions: number[]
}

/** What the level is told: entries refused while the versions are unknown, and reads of them that failed. */
export interface TagVersionsEvents {
  unknown?: () => void
  failed?: (error: unknown) => void
}

/**
 * The versions of tags, as this instance knows them. An entry keeps the versions of its tags at the moment its
 * value was loaded; invalidating a tag moves its version, and every entry that holds an older one is gone from then
 * on, found out when it is read: invalidation costs the same for ten tagged keys as for a hundred thousand. With a
 * shared store the versions live there too, and every instance hears of a move on the bus.
 *
 * A shared store may lose them (a Redis restarted empty, flushed, or failed over to a replica that missed writes) and
 * count them from the start again, so a version alone says nothing: versions count within an epoch, which the store
 * draws anew when it has none, and an entry keeps the epoch too. An instance that meets another epoch (in a move it
 * made or heard of) reads every version again, and serves no tagged entry until then; what it hears of that epoch
 * meanwhile is kept for the read, so that a read landing in it needs no other. One that reads versions lower than it
 * knew in the same epoch (the writes a failover lost) has the store draw a new epoch, so that versions counted again
 * never meet those of the entries loaded before.
 */
export class TagVersions {
  private versions = new Map<string, number>()
  /** The epoch `versions` count in: undefined without a shared store, and until it was read from one. */
  private epoch: string | undefined
  /**
   * The versions are known: always without a shared store; with one, once they were read from it and as long as no
   * message may have been missed. Until then no tagged entry is current: it is loaded again rather than served when
   * it may have been invalidated.
   */
  private known: boolean
  /** Counts `forget()`s, so that a read that was under way when messages were missed does not vouch for them. */
  private forgotten = 0
  /** Drawn anew whenever a version or the epoch moves: an entry found current under this mark still is. */
  private mark = ++marks
  /** The read under way; `again` when it began before something it cannot vouch for. */
  private reading: Promise<void> | undefined
  private again = false
  /** Reads started so far: the number of the one under way. */
  private reads = 0
  /**
   * Versions heard in an epoch other than `epoch`, kept for the read that tells where the store is: merged if it
   * lands in that epoch. `since`: the number of the last read started before they were heard, which cannot vouch
   * for them.
   */
  private heard: { epoch: string, versions: Map<string, number>, since: number } | undefined
  private retry: NodeJS.Timeout | undefined
  private stopped = false

  constructor (private readonly shared?: TagOperations, private readonly events: TagVersionsEvents = {}) {
    this.known = shared === undefined
  }

  /** The versions of `tags` now, and their epoch: what an entry loaded now keeps. */
  of (tags: readonly string[]): KeptVersions {
    return { epoch: this.epoch, versions: tags.map((tag) => this.versions.get(tag) ?? 0) }
  }

  /**
   * True while none of `tags` moved past the version an entry kept, in the epoch it kept. Given the entry, it is marked
   * when found current, and its next reads check the mark only until a version moves: a hit on a tagged entry then
   * costs what one on an untagged entry does.
   */
  current (tags: readonly string[], kept: readonly number[], epoch: string | undefined, entry?: object): boolean {
    if (!this.known) {
      this.events.unknown?.()
      return false
    }
    if (entry !== undefined && (entry as Marked)[CHECKED] === this.mark) return true
    if (epoch !== this.epoch) return false
    for (let i = 0; i < tags.length; i++) {
      if ((this.versions.get(tags[i] as string) ?? 0) !== kept[i]) return false
    }
    // Refused, and the entry checked again next time, where it cannot take a property (a store froze it).
    if (entry !== undefined) Reflect.defineProperty(entry, CHECKED, { value: this.mark, writable: true, configurable: true })
    return true
  }

  /** Moves `tags` to their next version, in the shared store first when there is one. */
  async invalidate (tags: readonly string[]): Promise<void> {
    if (this.shared === undefined) {
      for (const tag of tags) this.versions.set(tag, (this.versions.get(tag) ?? 0) + 1)
      this.mark = ++marks
      return
    }
    const { epoch } = this
    const before = tags.map((tag) => this.versions.get(tag) ?? 0)
    let moved: TagEpoch
    try {
      moved = await this.shared.bump(tags)
    } catch (error) {
      // It may still land, and then no entry loaded before it may pass: the versions are unknown until read after it.
      this.forget()
      throw error
    }
    // A move in the epoch this instance knows answers more than it knew before, unless the store went back.
    if (moved.epoch === epoch && tags.some((tag, i) => (moved.versions[tag] ?? 0) <= (before[i] as number))) this.forget()
    else this.apply(moved)
  }

  /**
   * Takes versions heard from the shared store or another instance. In the epoch this instance knows, a version never
   * goes back (a message may arrive after a later one). In another, what it knows is no measure: no tagged entry is
   * current until a read tells which epoch the store is at, and what was heard is kept for that read.
   */
  apply ({ epoch, versions }: TagEpoch): void {
    if (epoch === this.epoch) {
      if (raise(this.versions, Object.entries(versions))) this.mark = ++marks
      return
    }
    if (this.shared === undefined) return
    this.known = false
    if (this.heard?.epoch !== epoch) this.heard = { epoch, versions: new Map(), since: this.reads }
    raise(this.heard.versions, Object.entries(versions))
    // A read under way decides itself whether it can vouch for what was heard.
    if (this.reading === undefined) this.load().catch(() => {})
  }

  /**
   * Messages may have been missed (the bus lost its subscription, or has just subscribed), or the store lost the
   * versions: they are unknown until read again, which starts now.
   */
  forget (): void {
    if (this.shared === undefined) return
    this.known = false
    this.forgotten++
    this.load().catch(() => {})
  }

  /**
   * Reads every version from the shared store (at start, and whenever they may be unknown), tried again every second
   * while the store fails, until `stop()`. Resolves once this read is done, whatever came of it: the versions are
   * known after it unless the store could not vouch for them (a bus that is not subscribed: it says so when it is), or
   * they may have changed unseen while they were read (then they are read again).
   */
  async load (): Promise<void> {
    if (this.shared === undefined || this.stopped) return
    if (this.reading !== undefined) {
      this.again = true
      await this.reading
      return
    }
    clearTimeout(this.retry)
    this.reading = this.readOnce(this.shared)
    try {
      await this.reading
    } finally {
      this.reading = undefined
      if (this.again) {
        this.again = false
        this.load().catch(() => {})
      }
    }
  }

  /** Ends the retries. */
  stop (): void {
    this.stopped = true
    clearTimeout(this.retry)
  }

  private async readOnce (shared: TagOperations): Promise<void> {
    const number = ++this.reads
    const forgotten = this.forgotten
    // What was known before the read began: the store holds at least that, unless it lost it.
    const epoch = this.epoch
    const before = new Map(this.versions)
    try {
      const read = await shared.read()
      if (read === undefined) return
      if (read.epoch === epoch && wentBack(before, read.versions)) {
        // The new epoch this answers is heard like another instance's, and read.
        this.apply(await shared.bump([], read.epoch))
        this.again = true
        return
      }
      const { heard } = this
      // Heard of another epoch while this read was under way: it may be newer than what the read found.
      if (heard !== undefined && heard.epoch !== read.epoch && heard.since >= number) {
        this.again = true
        return
      }
      if (read.epoch === epoch) {
        if (raise(this.versions, Object.entries(read.versions))) this.mark = ++marks
      } else {
        this.epoch = read.epoch
        this.versions = new Map(Object.entries(read.versions))
        this.mark = ++marks
      }
      // Versions heard of the epoch read came after the read, or were in it; those of another are older than it.
      if (heard?.epoch === read.epoch && raise(this.versions, heard.versions)) this.mark = ++marks
      this.heard = undefined
      if (forgotten === this.forgotten) this.known = true
    } catch (error) {
      this.events.failed?.(error)
      if (this.stopped) return
      this.retry = setTimeout(() => { this.load().catch(() => {}) }, RETRY)
      this.retry.unref()
    }
  }
}

/** Raises each of `versions` to the one given where that is higher; true when one moved. */
function raise (versions: Map<string, number>, to: Iterable<[string, number]>): boolean {
  let moved = false
  for (const [tag, version] of to) {
    if (version > (versions.get(tag) ?? 0)) {
      versions.set(tag, version)
      moved = true
    }
  }
  return moved
}

/** True when a version read is lower than one known before: the store lost writes, in an epoch it still holds. */
function wentBack (before: ReadonlyMap<string, number>, read: Readonly<Record<string, number>>): boolean {
  for (const [tag, version] of before) if ((read[tag] ?? 0) < version) return true
  return false
}

interface Marked {
  [CHECKED]?: number
}
