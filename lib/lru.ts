// What this package needs of lru-cache beyond its options: a delete in constant time whatever the cache's bound, and
// a clock that sets no timers.
import type { LRUCache } from 'lru-cache'

/** True while `deleteEntry` takes a cache's last entry with `pop()`: what `disposeAfter` is told then is a delete. */
let popping = false

/**
 * `lru.delete(key)` in constant time. lru-cache empties itself when the entry deleted is its last, refilling arrays as
 * long as its `max` (31 µs a delete at a `max` of 10,000 and 4.7 ms at 10⁶ on the EPYC VM of the benchmarks), which a
 * cache holding one entry (a quiet instance, a single session, one key written and invalidated) paid on every change.
 * That entry is taken with `pop()` instead, which frees its slot alone. (An entry lru-cache itself finds expired on a
 * read still goes its way: once per entry's lifetime, not per change.)
 */
export function deleteEntry<V extends NonNullable<unknown>> (lru: LRUCache<string, V>, key: string): boolean {
  if (lru.size !== 1) return lru.delete(key)
  if (lru.peek(key, { allowStale: true }) === undefined) return false
  popping = true
  try {
    lru.pop()
  } finally {
    popping = false
  }
  return true
}

/** The reason a `disposeAfter` is given, as the caller meant it: an entry `deleteEntry` popped was deleted, not evicted. */
export function disposeReason (reason: LRUCache.DisposeReason): LRUCache.DisposeReason {
  return popping ? 'delete' : reason
}

/**
 * The options of a cache with a ttl read about once a request (sessions): lru-cache's clock read at each check. By
 * default lru-cache keeps the time it read for `ttlResolution` (1 ms) and sets a timer to forget it: on a server whose
 * requests come more than a millisecond apart, a timer set and fired, and one more turn of the event loop, for each
 * request that reads a session in memory. A read of the clock (about 50 ns) costs less than that, but not less than a
 * hit: where a request may read a cache many times (the application level), a hit on an entry with a ttl took 2.4
 * times as long with it (228 against 94 ns), and lru-cache's way is kept there.
 */
export const TTL_CLOCK = { ttlResolution: 0 } as const
