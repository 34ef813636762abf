import { createHash, randomBytes } from 'node:crypto'
import type { GroupOperations } from '../store.js'

/** One session of a user, as `sessionsOf` lists it. */
export interface UserSession {
  /** The session's store key: a hash of its id, never the id (it cannot be presented as a cookie). */
  key: string
  /** Epoch ms when the session was linked to the user. */
  linkedAt: number
}

/** Most sessions one user's index keeps; past it the earliest linked goes (its session is no longer listed). */
const MAX_SESSIONS_PER_USER = 1000

/**
 * Which sessions belong to which user, so that all of them can be ended at once (after a password change, or "log
 * out everywhere", OWASP ASVS 3.3.3 and 3.3.4). Each user has one group, under a hash of the user id, whose fields
 * are the store keys of the user's sessions; adding a session is one atomic field write, so logins on several
 * instances at once never lose one another.
 *
 * The index lives `lifetime` ms after the user's last login (0: until the user's sessions are ended): give sessions
 * an absolute lifetime at most as long, so that no linked session outlives its index.
 */
export class SessionUsers {
  constructor (private readonly groups: GroupOperations, private readonly lifetime: number) {}

  /** Records that the session stored under `session` belongs to `user`. */
  async link (user: string, session: string): Promise<void> {
    const key = indexKey(user)
    const change = { set: { [session]: Date.now() }, cap: { prefix: '', max: MAX_SESSIONS_PER_USER } }
    for (let attempt = 0; attempt < 3; attempt++) {
      const index = await this.groups.read(key, this.lifetime)
      if (index !== undefined && await this.groups.update(key, index.fence, change, this.lifetime)) return
      if (index === undefined && await this.groups.create(key, { fence: randomBytes(12).toString('base64url'), fields: change.set }, this.lifetime)) return
      // Another instance created or ended the index between the read and the write: read it again.
    }
  }

  /** The sessions linked to `user`, as the index holds them (some may have expired since). */
  async sessionsOf (user: string): Promise<UserSession[]> {
    const index = await this.groups.read(indexKey(user), 0)
    return Object.entries(index?.fields ?? {}).map(([key, linkedAt]) => ({ key, linkedAt: Number(linkedAt) }))
  }

  /**
   * Ends the index of `user` and answers the sessions it listed, for the caller to end: the index goes first, so that
   * a login that links a new session meanwhile starts a new index rather than one about to be dropped.
   */
  async take (user: string): Promise<string[]> {
    const key = indexKey(user)
    const index = await this.groups.read(key, 0)
    if (index === undefined) return []
    const ended = await this.groups.end(key, index.fence)
    return Object.keys(ended?.fields ?? {})
  }
}

function indexKey (user: string): string {
  return 'user:' + createHash('sha256').update(user).digest('base64url')
}
