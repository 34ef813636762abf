import type { KeptVersions, TagVersions } from './tags.js'

/**
 * A value as the application level keeps it, with what decides how long it may be served. Only what is set is
 * there: a value with no staleness, grace or tags is `{ v }`, and a hit on it checks nothing else.
 */
export interface Held {
  /** The value. */
  v: unknown
  /** Epoch ms until which it is fresh; absent, it is fresh until the store drops it. */
  f?: number
  /** Epoch ms until which it may be served stale, while a new value loads in the background. */
  s?: number
  /** Epoch ms until which it may stand in for a load that failed or took too long. */
  g?: number
  /** Its tags, their versions when its value was loaded, and the epoch those count in (with a shared store). */
  t?: string[]
  tv?: number[]
  te?: string
}

/** How long values live, resolved from the level's defaults and the options of one call, in ms. */
export interface Freshness {
  ttl: number
  staleWhileRevalidate: number
  graceOnError: number
  softTimeout: number
  hardTimeout: number
  tags: readonly string[]
}

/** Fresh, stale (served while a new value loads), grace (served only in place of a failed load) or gone. */
export type State = 'fresh' | 'stale' | 'grace' | 'gone'

/** The envelope of a value loaded now, under the tag versions its load started with. */
export function hold (value: unknown, freshness: Freshness, kept: KeptVersions): Held {
  const held: Held = { v: value }
  const { ttl, staleWhileRevalidate, graceOnError, tags } = freshness
  if (ttl > 0 && (staleWhileRevalidate > 0 || graceOnError > 0)) {
    const fresh = Date.now() + ttl
    held.f = fresh
    if (staleWhileRevalidate > 0) held.s = fresh + staleWhileRevalidate
    if (graceOnError > 0) held.g = fresh + graceOnError
  }
  if (tags.length > 0) {
    held.t = [...tags]
    held.tv = kept.versions
    if (kept.epoch !== undefined) held.te = kept.epoch
  }
  return held
}

/** How long the store keeps a value: its ttl, and as long again as it may still be served stale or in grace. */
export function storeTtl ({ ttl, staleWhileRevalidate, graceOnError }: Freshness): number {
  return ttl === 0 ? 0 : ttl + Math.max(staleWhileRevalidate, graceOnError)
}

/** True for a value with nothing to check: a hit on it is served as it is. */
export function plain (held: Held): boolean {
  return held.f === undefined && held.t === undefined
}

/** Where a held value stands now. */
export function stateOf (held: Held, tags: TagVersions): State {
  if (held.t !== undefined && !tags.current(held.t, held.tv ?? [], held.te, held)) return 'gone'
  if (held.f === undefined) return 'fresh'
  const now = Date.now()
  if (now < held.f) return 'fresh'
  if (held.s !== undefined && now < held.s) return 'stale'
  if (held.g !== undefined && now < held.g) return 'grace'
  return 'gone'
}
