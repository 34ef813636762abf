import type { TagOperations } from './store.js'

/**
 * Where an entry keeps the mark of the versions under which its tags were last found current: a symbol property that
 * is not enumerable, so that no serializer sees it.
 */
const CHECKED = Symbol('fastify-multi-cache.tags-checked')
/** Marks come from one counter, so that one instance's mark on an entry never passes for another's (two levels may share a memory store). */
let marks = 0

/**
 * The versions of tags, as this instance knows them. An entry keeps the versions of its tags at the moment its
 * value was loaded; invalidating a tag moves its version, and every entry that holds an older one is gone from then
 * on, found out when it is read: invalidation costs the same for ten tagged keys as for a hundred thousand. With a
 * shared store the versions live there too, and every instance hears of a move on the bus.
 */
export class TagVersions {
  private readonly versions = new Map<string, number>()
  /**
   * The versions are known: always without a shared store; with one, once they were read from it and as long as no
   * message may have been missed. Until then no tagged entry is current: it is loaded again rather than served when
   * it may have been invalidated.
   */
  private known: boolean
  /** Counts `forget()`s, so that a read that was under way when messages were missed does not vouch for them. */
  private forgotten = 0
  /** Drawn anew whenever a version moves: an entry found current under this mark still is. */
  private mark = ++marks

  /** `unknown`: told of each entry refused because the versions are unknown, so that the level counts and logs it. */
  constructor (private readonly shared?: TagOperations, private readonly unknown?: () => void) {
    this.known = shared === undefined
  }

  /** The versions of `tags` now: what an entry loaded now keeps. */
  of (tags: readonly string[]): number[] {
    return tags.map((tag) => this.versions.get(tag) ?? 0)
  }

  /**
   * True while none of `tags` moved past the version an entry kept. Given the entry, it is marked when found current,
   * and its next reads check the mark only until a version moves: a hit on a tagged entry then costs what one on an
   * untagged entry does.
   */
  current (tags: readonly string[], kept: readonly number[], entry?: object): boolean {
    if (!this.known) {
      this.unknown?.()
      return false
    }
    if (entry !== undefined && (entry as Marked)[CHECKED] === this.mark) return true
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
    this.apply(await this.shared.bump(tags))
  }

  /** Takes versions heard from the shared store or another instance; a version never goes back. */
  apply (versions: Readonly<Record<string, number>>): void {
    for (const [tag, version] of Object.entries(versions)) {
      if (version > (this.versions.get(tag) ?? 0)) {
        this.versions.set(tag, version)
        this.mark = ++marks
      }
    }
  }

  /** Messages may have been missed (the bus lost its subscription): the versions are unknown until `load()`. */
  forget (): void {
    if (this.shared === undefined) return
    this.known = false
    this.forgotten++
  }

  /**
   * Reads every version from the shared store (at start, and when messages may have been missed). They are known
   * after it unless the store could not vouch for them, or messages were missed again while they were read.
   */
  async load (): Promise<void> {
    if (this.shared === undefined) return
    const forgotten = this.forgotten
    const versions = await this.shared.read()
    if (versions === undefined) return
    this.apply(versions)
    if (forgotten === this.forgotten) this.known = true
  }
}

interface Marked {
  [CHECKED]?: number
}
