import { randomBytes } from 'node:crypto'
import { digest } from '../digest.js'
import type { GroupOperations } from '../store.js'

/** One session of a user, as `sessionsOf` lists it. */
export interface UserSession {
  /** The session's store key: a hash of its id, never the id (it cannot be presented as a cookie). */
  key: string
  /** Epoch ms when the session was linked to the user. */
  linkedAt: number
}

export interface SessionUsersOptions {
  /** Where the indexes live. */
  groups: GroupOperations
  /**
   * How long an index lives after its last link or `touch`, in ms; 0: as long as the store keeps it (the memory store,
   * where the level unlinks every session the store drops).
   */
  lifetime: number
  /** Most sessions of one user: a link past it ends the user's earliest linked sessions. */
  max: number
  /** Which of these sessions still exist (by store key). */
  alive: (sessions: readonly string[]) => Promise<boolean[]>
  /** Ends these sessions, wherever they live. */
  end: (sessions: readonly string[]) => Promise<void>
}

/**
 * Which sessions belong to which user, so that all of them can be ended at once (after a password change, or "log
 * out everywhere", OWASP ASVS 3.3.3 and 3.3.4). Each user has one group, under a hash of the user id, whose fields
 * are the store keys of the user's sessions; adding a session is one atomic field write, so logins on several
 * instances at once never lose one another.
 *
 * The index is complete: a session leaves it only once it has ended (or no longer exists), never while it lives,
 * so that `take` ends every one. Its size is bounded by ending sessions, not by forgetting them: a link past `max`
 * ends the user's earliest linked sessions, as a "most concurrent sessions per user" policy does.
 */
export class SessionUsers {
  constructor (private readonly options: SessionUsersOptions) {}

  /**
   * Records that the session stored under `session` belongs to `user`; then, when the index holds more than `max`,
   * the sessions that no longer exist leave it and the earliest linked beyond `max` are ended. Answers how many were
   * ended.
   */
  async link (user: string, session: string): Promise<number> {
    const { groups, lifetime } = this.options
    const key = indexKey(user)
    const set = { [session]: linkTime() }
    for (let attempt = 0; attempt < 3; attempt++) {
      const index = await groups.read(key, lifetime)
      const linked = index === undefined
        ? await groups.create(key, { fence: newFence(), fields: set }, lifetime)
        : await groups.update(key, index.fence, { set }, lifetime)
      if (linked !== false) break
      // Another instance created or ended the index between the read and the write: read it again.
    }
    return await this.trim(key, session)
  }

  /**
   * Bounds the index as the store holds it now, after this login's own write: logins at the same instant each look
   * after writing, so the last to look sees them all, and the bound holds once they are done.
   */
  private async trim (key: string, session: string): Promise<number> {
    const { groups, lifetime, max } = this.options
    const index = await groups.read(key, 0)
    if (index === undefined) return 0
    const listed = Object.entries(index.fields).filter(([name]) => name !== session)
    if (listed.length < max) return 0
    const alive = await this.options.alive(listed.map(([name]) => name))
    // Earliest linked first; a login never ends its own session.
    const live = listed.filter((_, i) => alive[i] === true).sort((a, b) => Number(a[1]) - Number(b[1]))
    const surplus = live.slice(0, Math.max(0, live.length + 1 - max)).map(([name]) => name)
    // Ended before they leave the index: a session is never unlisted while it can still be used.
    if (surplus.length > 0) await this.options.end(surplus)
    const gone = listed.filter((_, i) => alive[i] !== true).map(([name]) => name)
    if (gone.length + surplus.length > 0) await groups.update(key, index.fence, { remove: [...gone, ...surplus] }, lifetime)
    return surplus.length
  }

  /** Takes an ended session out of `user`'s index; the index goes with its last session. */
  async unlink (user: string, session: string): Promise<void> {
    const { groups, lifetime } = this.options
    const key = indexKey(user)
    const index = await groups.read(key, 0)
    if (index === undefined || !Object.hasOwn(index.fields, session)) return
    if (Object.keys(index.fields).length > 1) {
      await groups.update(key, index.fence, { remove: [session] }, lifetime)
      return
    }
    const ended = await groups.end(key, index.fence)
    // A link landed between the read and the end: its session is put back in a new index.
    const rest = Object.fromEntries(Object.entries(ended?.fields ?? {}).filter(([name]) => name !== session))
    if (Object.keys(rest).length > 0) await groups.create(key, { fence: newFence(), fields: rest }, lifetime)
  }

  /** Restarts the lifetime of `user`'s index: one of its sessions is in use. */
  async touch (user: string): Promise<void> {
    await this.options.groups.read(indexKey(user), this.options.lifetime)
  }

  /** The sessions linked to `user` that still exist. */
  async sessionsOf (user: string): Promise<UserSession[]> {
    const index = await this.options.groups.read(indexKey(user), 0)
    const listed = Object.entries(index?.fields ?? {})
    const alive = await this.options.alive(listed.map(([key]) => key))
    return listed.filter((_, i) => alive[i] === true).map(([key, linkedAt]) => ({ key, linkedAt: Math.floor(Number(linkedAt)) }))
  }

  /**
   * Ends the index of `user` and answers the sessions it listed, for the caller to end: the index goes first, so that
   * a login that links a new session meanwhile starts a new index rather than one about to be dropped.
   */
  async take (user: string): Promise<string[]> {
    const { groups } = this.options
    const key = indexKey(user)
    const index = await groups.read(key, 0)
    if (index === undefined) return []
    const ended = await groups.end(key, index.fence)
    return Object.keys(ended?.fields ?? {})
  }
}

function indexKey (user: string): string {
  return 'user:' + digest('sha256', user, 'base64url')
}

let lastLink = 0

/**
 * The epoch ms of a link, made strictly increasing within this process by fractions of a millisecond: logins in one
 * millisecond must still end in their order, and a Redis hash keeps no order of its own to fall back on.
 */
function linkTime (): number {
  const now = Date.now()
  lastLink = now > Math.floor(lastLink) ? now : lastLink + 0.001
  return lastLink
}

function newFence (): string {
  return randomBytes(12).toString('base64url')
}
