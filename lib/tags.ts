import type { TagOperations } from './store.js'

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

  constructor (private readonly shared?: TagOperations) {
    this.known = shared === undefined
  }

  /** The versions of `tags` now: what an entry loaded now keeps. */
  of (tags: readonly string[]): number[] {
    return tags.map((tag) => this.versions.get(tag) ?? 0)
  }

  /** True while none of `tags` moved past the version an entry kept. */
  current (tags: readonly string[], kept: readonly number[]): boolean {
    if (!this.known) return false
    for (let i = 0; i < tags.length; i++) {
      if ((this.versions.get(tags[i] as string) ?? 0) !== kept[i]) return false
    }
    return true
  }

  /** Moves `tags` to their next version, in the shared store first when there is one. */
  async invalidate (tags: readonly string[]): Promise<void> {
    if (this.shared === undefined) {
      for (const tag of tags) this.versions.set(tag, (this.versions.get(tag) ?? 0) + 1)
      return
    }
    this.apply(await this.shared.bump(tags))
  }

  /** Takes versions heard from the shared store or another instance; a version never goes back. */
  apply (versions: Readonly<Record<string, number>>): void {
    for (const [tag, version] of Object.entries(versions)) {
      if (version > (this.versions.get(tag) ?? 0)) this.versions.set(tag, version)
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
