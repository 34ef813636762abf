// What the advisor counts for one level and key pattern, and the rules that turn those counts into findings. The
// thresholds are here, named, and the README's table is written from them.

/** The levels the advisor watches: route caching is the application level's store seen through responses. */
export type AdvisorLevel = 'request' | 'session' | 'app' | 'route'

/** What a finding says is wrong with a pattern at a level. */
export type AdviceKind = 'no-reuse' | 'same-in-every-session' | 'volatile' | 'ttl-too-short' | 'too-small' | 'never-read'

export const ADVICE_KINDS: readonly AdviceKind[] = ['no-reuse', 'same-in-every-session', 'volatile', 'ttl-too-short', 'too-small', 'never-read']

/** One finding of `fastify.multiCache.advice()`. */
export interface AdviceFinding {
  level: AdvisorLevel
  /** The key pattern (`item:*`), not a key. */
  key: string
  kind: AdviceKind
  message: string
  /** The counts that led to it, as observed (of the keys sampled), and `sampleRate`. */
  evidence: Record<string, number>
}

/**
 * How much evidence each kind needs, and where it starts. Counts are of observations (keys outside the sample are not
 * seen, see `sampleRate`); ratios do not depend on the rate, since a key is watched whole or not at all.
 */
export const THRESHOLDS = {
  /** Request level: request-and-key pairs ended, and reads per pair at or below which the level buys nothing. */
  noReuse: { minPairs: 20, maxReadsPerRequest: 1.2 },
  /** Session level: sessions given the same value (set or loaded), and their share of the values given to that pattern. */
  sameInEverySession: { minSessions: 20, minShare: 0.8 },
  /**
   * Not the request level: reads plus changes seen, and changes (writes, invalidations; at the session level deletes
   * only) per read from which it is volatile; `minSampledOperations` when they are counted at a rate below 1. Sampled
   * reads come in runs of up to 16 (lib/advisor-feed.ts), so their counts move in steps of 16: at 1 in 400, a minimum of 50
   * or 100 made a key read three times per write volatile in 1 or 2 simulated apps of 20 to 40, 300 in none of 20
   * (the mix that had failed most), while a key read once per two writes was found in 10 of 10.
   */
  volatile: { minOperations: 100, minSampledOperations: 300, minChangesPerRead: 0.8 },
  /** Loads (or writes) within `windowMs` after their key expired, and the share of them that brought the same value. */
  ttlTooShort: { minReloads: 10, minUnchangedShare: 0.8, windowMs: 60_000 },
  /** Keys loaded (or written) again after the size bound evicted them, and their share of the evictions. */
  tooSmall: { minReloads: 10, minShare: 0.2 },
  /**
   * Entries written by `set` then dropped (expired or evicted), and the share of them never read in between; and the
   * pattern's hits per `set` at most, over all its keys. Fed from the event stream, hits are sampled per operation, so
   * an entry followed can look unread when its reads were not drawn; the hits per set, counted in totals, hold the
   * finding back then: at most 0.2 of them means at least 80 % of the entries went unread (none can have less than one).
   * Sampled hits come in runs of 16, so the guard needs `minSampledWrites` counted when they are: at 1 in 400, a key
   * read once per write with no other lookups was found never-read in 7 simulated apps of 40 at 40 writes counted
   * (10 of 40 before this guard had a minimum, at 1 in 100), in 1 of 40 at 120, in none of 40 at 200. The minimums
   * hold at every rate below 1, though runs are shorter above 1 in 25 (one operation at a time from about 0.43): there
   * they are only cautious.
   */
  neverRead: { minDrops: 20, minUnreadShare: 0.8, maxHitsPerWrite: 0.2, minSampledWrites: 200 }
} as const

/**
 * The most distinct values a session pattern's counter follows. Space-saving finds every value held by more than 1/8 of the
 * writes, far below the share `same-in-every-session` asks for.
 */
export const TOP_VALUES = 8

interface ValueCount { count: number, error: number, bytes: number }

/**
 * The values most often written to sessions under one pattern, within `TOP_VALUES` counters: a new value past that
 * takes the place of the least counted one and inherits its count as its error (Metwally et al., "space-saving"), so a
 * value held by many sessions is found however many distinct ones came first.
 */
export class TopValues {
  private readonly counts = new Map<string | number, ValueCount>()

  add (hash: string | number, bytes: number): void {
    const seen = this.counts.get(hash)
    if (seen !== undefined) {
      seen.count++
      if (bytes > 0) seen.bytes = bytes
      return
    }
    if (this.counts.size < TOP_VALUES) {
      this.counts.set(hash, { count: 1, error: 0, bytes })
      return
    }
    let least: [string | number, ValueCount] | undefined
    for (const entry of this.counts) if (least === undefined || entry[1].count < least[1].count) least = entry
    const [leastHash, { count }] = least as [string | number, ValueCount]
    this.counts.delete(leastHash)
    this.counts.set(hash, { count: count + 1, error: count, bytes })
  }

  /** The most frequent value's guaranteed count (its count less its error), and its size. */
  top (): { sessions: number, bytes: number } {
    let best = { sessions: 0, bytes: 0 }
    for (const { count, error, bytes } of this.counts.values()) if (count - error > best.sessions) best = { sessions: count - error, bytes }
    return best
  }
}

/** What the advisor has counted for one level and pattern. */
export class PatternStats {
  reads = 0
  hits = 0
  writes = 0
  loads = 0
  invalidations = 0
  evictions = 0
  expirations = 0
  /** Request level: request-and-key pairs whose request ended, and the reads they made. */
  requestPairs = 0
  requestReads = 0
  /** Loads or writes soon after their key expired, and those that brought the value it had. */
  expiredReloads = 0
  unchangedReloads = 0
  /** Loads or writes of a key the size bound had evicted. */
  evictedReloads = 0
  /** Entries written by `set` and then dropped, and those never read in between. */
  writtenDrops = 0
  unreadDrops = 0
  /** Session level: distinct (session, value) writes and loads, and the values among them. */
  sessionValues = 0
  values: TopValues | undefined
  /**
   * While on probation: a hash of the entry (key, and session) the pattern was first seen with, and the operations
   * seen of it, one bit each (see `Advisor`'s `statsAt`).
   */
  firstEntry: { entry: number, operations: number } | undefined = undefined
  /** The kinds already handed to `onFinding`: each is told once while the pattern is tracked. */
  told: Set<AdviceKind> | undefined

  constructor (readonly level: AdvisorLevel, readonly pattern: string) {}
}

/**
 * The rates a pattern's counts were drawn at: `counted`, of the operations in its totals and of the requests read
 * whole; `followed`, of its entries.
 */
export interface SampleRates { counted: number, followed: number }

/** The findings of one pattern, in the order of `ADVICE_KINDS`; each one's evidence with the rate of its counts. */
export function findingsOf (stats: PatternStats, rates: SampleRates): AdviceFinding[] {
  const findings: AdviceFinding[] = []
  const { level, pattern: key } = stats
  const found = (kind: AdviceKind, message: string, evidence: Record<string, number>, sampleRate: number): void => {
    findings.push({ level, key, kind, message, evidence: { ...evidence, sampleRate } })
  }

  const { noReuse, sameInEverySession, volatile, ttlTooShort, tooSmall, neverRead } = THRESHOLDS
  if (level === 'request' && stats.requestPairs >= noReuse.minPairs) {
    const perRequest = stats.requestReads / stats.requestPairs
    if (perRequest <= noReuse.maxReadsPerRequest) {
      found('no-reuse', `request-level key "${key}" is read ${round(perRequest)} times per request on average: the request level buys nothing for it. Keep the value in a variable, or cache it at the session or application level if requests share it`,
        { requests: stats.requestPairs, reads: stats.requestReads, readsPerRequest: round(perRequest) }, rates.counted)
    }
  }

  if (level === 'session' && stats.values !== undefined) {
    const { sessions, bytes } = stats.values.top()
    const share = sessions / stats.sessionValues
    if (sessions >= sameInEverySession.minSessions && share >= sameInEverySession.minShare) {
      const saved = (sessions - 1) * bytes
      found('same-in-every-session', `session-level key "${key}" holds the same value in ${sessions} sessions (${percent(share)} of the values it was given): unless it depends on the user (a role, a flag), it is global data. Cache it once at the application level${bytes > 0 ? `, saving about ${formatBytes(saved)} for these sessions alone` : ''}`,
        { sessions, values: stats.sessionValues, valueBytes: bytes, bytesSaved: saved }, rates.followed)
    }
  }

  // A session's `set` is where a user's data lives (a cart changed by every request that reads it), not a copy of a
  // source that changes under it: there, only deletes are changes.
  const changes = (level === 'session' ? 0 : stats.writes) + stats.invalidations
  const sampled = rates.counted < 1
  const minOperations = sampled ? volatile.minSampledOperations : volatile.minOperations
  if (level !== 'request' && stats.reads + changes >= minOperations && changes >= volatile.minChangesPerRead * stats.reads) {
    found('volatile', `"${key}" is written or invalidated ${changes} times for ${stats.reads} reads: caching it costs more than it saves. Read it from its source, or cache what is read more often than it changes`,
      { reads: stats.reads, writes: stats.writes, invalidations: stats.invalidations }, rates.counted)
  }

  if (stats.unchangedReloads >= ttlTooShort.minReloads && stats.unchangedReloads >= ttlTooShort.minUnchangedShare * stats.expiredReloads) {
    found('ttl-too-short', `"${key}" was loaded again within ${ttlTooShort.windowMs / 1000} s of expiring ${stats.expiredReloads} times, and ${stats.unchangedReloads} of them brought back the same value: raise its ttl, or use staleWhileRevalidate`,
      { expirations: stats.expirations, reloadsAfterExpiry: stats.expiredReloads, unchanged: stats.unchangedReloads }, rates.followed)
  }

  if (stats.evictedReloads >= tooSmall.minReloads && stats.evictedReloads >= tooSmall.minShare * stats.evictions) {
    found('too-small', `the ${level} level evicted "${key}" entries for room ${stats.evictions} times, and ${stats.evictedReloads} of them were loaded again: raise its size bound (${BOUND_OPTION[level]})`,
      { evictions: stats.evictions, reloadsAfterEviction: stats.evictedReloads }, rates.followed)
  }

  if (stats.unreadDrops >= neverRead.minDrops && stats.unreadDrops >= neverRead.minUnreadShare * stats.writtenDrops && (!sampled || stats.writes >= neverRead.minSampledWrites) && stats.hits <= neverRead.maxHitsPerWrite * stats.writes) {
    found('never-read', `"${key}": ${stats.unreadDrops} of ${stats.writtenDrops} entries written were dropped (expired or evicted) without a single read: do not cache it, or cache it where it is read`,
      { writtenAndDropped: stats.writtenDrops, neverRead: stats.unreadDrops, writes: stats.writes, hits: stats.hits, countRate: rates.counted }, rates.followed)
  }
  return findings
}

const BOUND_OPTION: Record<AdvisorLevel, string> = {
  request: 'requestCache maxEntries',
  session: 'sessionCache maxEntriesPerSession, or maxSessions',
  app: 'appCache max or maxBytes, or l1.max with a shared store',
  route: 'appCache max or maxBytes, which route caching shares'
}

function round (value: number): number {
  return Math.round(value * 100) / 100
}

function percent (share: number): string {
  return `${Math.round(share * 100)} %`
}

function formatBytes (bytes: number): string {
  if (bytes < 1024) return `${bytes} bytes`
  if (bytes < 1024 * 1024) return `${round(bytes / 1024)} KiB`
  return `${round(bytes / 1024 / 1024)} MiB`
}
