import { LruMap } from 'toad-cache'
import { findingsOf, PatternStats, THRESHOLDS, TopValues, type AdviceFinding, type AdvisorLevel } from './advice.js'
import type { KeyReads } from './events.js'
import { hash32, keyPattern } from './key-patterns.js'

export { ADVICE_KINDS, THRESHOLDS, type AdviceFinding, type AdviceKind, type AdvisorLevel } from './advice.js'

/**
 * Who a session-level observation belongs to: the session's token, a keyed 32-bit hash of its id (see `usageOf` in
 * lib/events.ts). Never a session id: the advisor keeps tokens (within its
 * bounds), and a token must not let anyone who reads its memory into a session. It is held until a bound pushes it out.
 */
export type UsageScope = number

/** The hash of a value's serialized form: equal values, equal hashes (a SHA-256 prefix, a 32-bit hash: either). */
export type ValueHash = string | number

interface KeyedUsage {
  level: AdvisorLevel
  key: string
  /** The session the key belongs to, at the session level. */
  scope?: UsageScope
}

/** A read: `get`, `has`, the lookup of a `getOrLoad`; `hit: false` when the level did not have it. */
export interface ReadUsage extends KeyedUsage { type: 'read', hit: boolean }
/** A `set`: `hash` (and `bytes`, its serialized size) are what `same-in-every-session` and `ttl-too-short` compare. */
export interface WriteUsage extends KeyedUsage { type: 'write', hash?: ValueHash, bytes?: number }
/** A loader's value stored under the key (the read that missed is a `read` of its own); `hash` and `bytes` as for a write. */
export interface LoadUsage extends KeyedUsage { type: 'load', hash?: ValueHash, bytes?: number }
/** `delete`, `invalidate`, and each key an `invalidateTag` drops. */
export interface InvalidateUsage extends KeyedUsage { type: 'invalidate' }
/** An entry gone by itself: pushed out by a size bound (`'evict'`) or past its ttl (`'expire'`). */
export interface DropUsage extends KeyedUsage { type: 'drop', reason: 'evict' | 'expire' }

/** One observation of how the cache is used, one operation at a time (the request level comes request by request). */
export type Usage = ReadUsage | WriteUsage | LoadUsage | InvalidateUsage | DropUsage

export interface AdvisorConfig {
  /** The share of keys watched, 0 < rate ≤ 1. Default 1. */
  sampleRate?: number
  /** Draws the sampling seed, in [0, 1). Default `Math.random`: tests give a seeded one. */
  random?: () => number
  /** Epoch ms. Default `Date.now`. */
  now?: () => number
  /** Called once per level, pattern and kind, the first time `advice()` finds it. */
  onFinding?: (finding: AdviceFinding) => void
}

/**
 * The share of the operations counted in the totals (reads, hits, writes, loads, invalidations) and of the requests
 * read whole (see `requestEnded`): a quarter of `sampleRate`, and everything at 1. What is counted so runs code that
 * idles between draws, and costs three to six times its share of the hot path. Drawn at 1 in 100, the drawn lookups
 * cost an application hit 1.04 to 1.07 and the drawn requests a request's request-level work 1.035 to 1.065; at 1 in
 * 400, 1.01 to 1.03 and 1.01 (timed at once on one core, EPYC VMs, 2026-12-07). Totals and requests are many: what
 * `volatile` and `no-reuse` need (300 operations counted, 20 request-and-key pairs) comes four times later, from about
 * 120,000 operations of a pattern and 13,000 requests that use a key. Entries are still followed at `sampleRate`.
 */
export function countSampleRate (sampleRate: number): number {
  return sampleRate === 1 ? 1 : sampleRate / 4
}

/**
 * What the advisor keeps, at most. A client choosing keys can fill these, never grow them: each is a least recently
 * used list, and what falls out is forgotten (the counts it held no longer count).
 */
export const ADVISOR_BOUNDS = {
  /** Patterns tracked per app, all levels together; and as many more seen once only, on probation. */
  patterns: 1000,
  /** Keys (per session at the session level) whose last value and drop the advisor remembers. */
  keys: 10_000,
  /**
   * Keys counted per request, by the request being read (lib/events.ts `subscribeRequestUsage`, `maxKeys`): the
   * advisor holds nothing per request, it is handed each drawn request's reads once, at its end.
   */
  keysPerRequest: 32
} as const

/** Keys whose pattern is remembered, and the longest: at most about 200 KiB. */
const PATTERN_CACHE = { keys: 1000, longestKey: 100 } as const

interface KeyState {
  hash: ValueHash | undefined
  /** The last fill was a `set`, and nothing read it since. */
  written: boolean
  unread: boolean
  dropped: 'evict' | 'expire' | undefined
  droppedAt: number
}

/** The operations a pattern on probation has seen of its first entry, one bit each (see `statsAt`). */
const SIGHTING: Record<Usage['type'], number> = { read: 1, write: 2, load: 4, invalidate: 8, drop: 16 }

/**
 * A recent short key: its pattern, the pattern's id at each level, its entry's id at each level (outside sessions), and
 * whether its application entry is watched.
 */
interface KnownKey {
  readonly pattern: string
  readonly ids: { [L in AdvisorLevel]?: string }
  readonly entries: { [L in AdvisorLevel]?: number }
  watched: boolean | undefined
}

/**
 * Watches how each key pattern is used at each level and says, through `advice()`, where a level is the wrong one, a
 * ttl too short or a bound too small. Fed from the event stream (lib/advisor-feed.ts): `feed()` for each operation of
 * the session and application levels and of route caching, `requestEnded()` for each drawn request's reads, with
 * `watches()` and `draw()` to sample; it knows nothing of Fastify, stores or events.
 *
 * What follows one entry (every kind but `volatile` and `no-reuse`) is sampled per entry, not per operation: a key
 * (of one session, at that level) is watched from its write to its reads to its expiry, or not at all, since a 1 %
 * sample of each operation would almost never meet the ones of one entry. `feed()` counts the totals (`volatile`, the
 * hits `never-read` checks against) per operation instead, at `countRate`, which the hot path can afford, and
 * `requestEnded()` the request-and-key pairs of `no-reuse`, request by request, at the same rate. Counts in the
 * evidence are as observed, with the rate they were drawn at beside them; the ratios the kinds are decided on do not
 * depend on it.
 */
export class Advisor {
  readonly sampleRate: number
  /**
   * The share of operations counted in the totals and of requests read whole (`countSampleRate`): the rate in the
   * evidence of `volatile` and `no-reuse`.
   */
  readonly countRate: number
  private readonly threshold: number
  private readonly seed: number
  private readonly now: () => number
  private readonly random: () => number
  private readonly onFinding: ((finding: AdviceFinding) => void) | undefined
  // toad-cache, not lru-cache: an lru-cache of other options in the process makes the call sites inside lru-cache's
  // own `get` polymorphic (its helpers are per-instance functions, one kind per set of options), and the levels' hits,
  // which go through those call sites, measured 5 to 9 % slower once the advisor had used its own.
  private readonly patterns = new LruMap<PatternStats>(ADVISOR_BOUNDS.patterns)
  // One sighting puts a pattern here; a second moves it to `patterns`, so a flood of keys each used once (a search
  // query in the key) cycles through probation without pushing out the patterns in use.
  private readonly probation = new LruMap<PatternStats>(ADVISOR_BOUNDS.patterns)
  private readonly keys = new LruMap<KeyState>(ADVISOR_BOUNDS.keys)
  /** The (session, pattern, value) triples counted by `same-in-every-session`, by digest. */
  private readonly sessionValues = new LruMap<true>(ADVISOR_BOUNDS.keys)
  /** Recent short keys: four regular expressions cost a sampled hit ten times what the rest does, a hash twice. */
  private readonly knownKeys = new Map<string, KnownKey>()

  constructor (options: AdvisorConfig = {}) {
    const { sampleRate = 1, random = Math.random, now = Date.now } = options
    if (!(typeof sampleRate === 'number' && sampleRate > 0 && sampleRate <= 1)) throw new RangeError(`sampleRate must be a number > 0 and <= 1, got ${String(sampleRate)}`)
    this.sampleRate = sampleRate
    this.countRate = countSampleRate(sampleRate)
    this.threshold = sampleRate * 2 ** 32
    this.seed = Math.floor(random() * 2 ** 32)
    this.now = now
    this.random = random
    this.onFinding = options.onFinding
  }

  /**
   * Whether `key` of `level` is watched, in its request or session when `scope` is given: the same answer for the
   * life of the advisor. An application key is watched everywhere or nowhere; `cart` is watched in some sessions, so
   * that a key every session has is seen at any rate.
   */
  watches (level: AdvisorLevel, key: string, scope?: UsageScope): boolean {
    if (this.sampleRate === 1) return true
    // An application key's answer is kept with its pattern: its hits are the sampled operations met most often.
    const known = level === 'app' && scope === undefined ? this.known(key) : undefined
    if (known === undefined) return this.draws(level, key, scope)
    return (known.watched ??= this.draws(level, key))
  }

  private draws (level: AdvisorLevel, key: string, scope?: UsageScope): boolean {
    return hash32(this.entryText(level, scope, key), this.seed) < this.threshold
  }

  /**
   * Counts one operation of the session or application level or of route caching, from the event stream
   * (lib/advisor-feed.ts), sampled twice over. `counted`: drawn by the per-operation sample, at `sampleRate` (hits are
   * only ever given so, which keeps the hot path free of hashing); its counts go to its pattern's totals. `watched`: its
   * entry is followed (`watches()`), so that what happens to one entry (filled, read, dropped, filled again) is seen
   * whole. Ratios are taken within one kind of count, totals with totals and entries with entries, so both samples at
   * one rate keep them right in expectation. The request level comes whole, request by request (`requestEnded`).
   */
  feed (usage: Usage, counted: boolean, watched: boolean): void {
    if (!counted && !watched) return
    const stats = this.statsAt(usage.level, this.patternId(usage.level, usage.key), usage, usage.type)
    if (counted) this.count(stats, usage)
    if (watched) this.follow(stats, usage)
  }

  /**
   * One request's reads per key, for a request drawn whole (see `subscribeRequestUsage` in lib/events.ts): each key
   * read or filled is one request-and-key pair of its pattern.
   */
  requestEnded (reads: ReadonlyMap<string, KeyReads>): void {
    // A request's keys come mostly in runs of one pattern (`product:1` … `product:10`). From a run's third key on its
    // pattern is tracked (a second sighting ends probation) and most recently used already: it is not looked up again.
    let id: string | undefined
    let stats: PatternStats | undefined
    let run = 0
    for (const [key, { reads: count }] of reads) {
      const next = this.patternId('request', key)
      if (next !== id) {
        id = next
        run = 0
      }
      if (stats === undefined || run++ < 2) stats = this.statsAt('request', next, { level: 'request', key }, 'read')
      stats.requestPairs++
      stats.requestReads += count
      stats.reads += count
    }
  }

  /** The share of requests read whole: `countRate`, under the name `no-reuse`'s evidence was first documented with. */
  get requestRate (): number {
    return this.countRate
  }

  /** Whether an operation given every time is also counted in the totals: a draw at `countRate`, like the stream's. */
  draw (): boolean {
    return this.countRate === 1 || this.random() < this.countRate
  }

  /** The findings now, every level and pattern; each new one also goes to `onFinding`, once. */
  advice (): AdviceFinding[] {
    const findings: AdviceFinding[] = []
    for (const { value: stats } of this.patterns.items.values()) {
      for (const finding of findingsOf(stats, { counted: this.countRate, followed: this.sampleRate })) {
        findings.push(finding)
        if (this.onFinding !== undefined && !(stats.told ??= new Set()).has(finding.kind)) {
          stats.told.add(finding.kind)
          this.onFinding(finding)
        }
      }
    }
    return findings
  }

  /** How much the advisor holds now, each at most its `ADVISOR_BOUNDS`: what tests of the bounds read. */
  footprint (): { patterns: number, probation: number, keys: number } {
    return { patterns: this.patterns.size, probation: this.probation.size, keys: this.keys.size }
  }

  /** The pattern's totals. */
  private count (stats: PatternStats, usage: Usage): void {
    switch (usage.type) {
      case 'read':
        stats.reads++
        if (usage.hit) stats.hits++
        return
      case 'write':
        stats.writes++
        return
      case 'load':
        stats.loads++
        return
      case 'invalidate':
        stats.invalidations++
    }
    // Drops are counted of entries followed only (in `drop`): evictions are compared with reloads after eviction,
    // entry by entry.
  }

  /** One entry's life: what `ttl-too-short`, `too-small`, `never-read` and `same-in-every-session` follow. */
  private follow (stats: PatternStats, usage: Usage): void {
    switch (usage.type) {
      case 'read':
        if (usage.hit) {
          const state = this.keys.get(this.idOf(usage))
          if (state !== undefined) state.unread = false
        }
        return
      case 'write': return this.fill(stats, usage, true)
      case 'load': return this.fill(stats, usage, false)
      case 'invalidate':
        this.keys.delete(this.idOf(usage))
        return
      case 'drop': return this.drop(stats, usage)
    }
  }

  private fill (stats: PatternStats, usage: WriteUsage | LoadUsage, written: boolean): void {
    const id = this.idOf(usage)
    const state = this.keys.get(id)
    // Loaded or set: `getOrLoad('settings', …)` in every session is the usual way the same value gets copied into each.
    // Counted once per session, pattern and value: one session writing one value under many keys of a pattern
    // (`draft:1`, `draft:2`) is one session, not many.
    if (usage.level === 'session' && usage.scope !== undefined && usage.hash !== undefined) {
      const given = this.idOf({ level: 'session', scope: usage.scope, key: `${stats.pattern}\u0000${String(usage.hash)}` })
      if (this.sessionValues.get(given) === undefined) {
        this.sessionValues.set(given, true)
        stats.sessionValues++
        ;(stats.values ??= new TopValues()).add(usage.hash, usage.bytes ?? 0)
      }
    }
    if (state?.dropped === 'expire' && this.now() - state.droppedAt <= THRESHOLDS.ttlTooShort.windowMs) {
      stats.expiredReloads++
      if (usage.hash !== undefined && state.hash === usage.hash) stats.unchangedReloads++
    } else if (state?.dropped === 'evict') {
      stats.evictedReloads++
    }
    const next: KeyState = { hash: usage.hash, written, unread: written, dropped: undefined, droppedAt: 0 }
    if (state === undefined) this.keys.set(id, next)
    else Object.assign(state, next)
  }

  private drop (stats: PatternStats, usage: DropUsage): void {
    if (usage.reason === 'evict') stats.evictions++
    else stats.expirations++
    const id = this.idOf(usage)
    const state = this.keys.get(id)
    if (state === undefined) {
      // Dropped before the advisor saw it filled (it started watching later): a reload still counts, unchanged or not unknown.
      this.keys.set(id, { hash: undefined, written: false, unread: false, dropped: usage.reason, droppedAt: this.now() })
      return
    }
    if (state.dropped === undefined && state.written) {
      stats.writtenDrops++
      if (state.unread) stats.unreadDrops++
    }
    state.dropped = usage.reason
    state.droppedAt = this.now()
  }

  /** What is kept of a recent short key; undefined for a long one, whose pattern is computed each time. */
  private known (key: string): KnownKey | undefined {
    if (key.length > PATTERN_CACHE.longestKey) return undefined
    let known = this.knownKeys.get(key)
    if (known === undefined) {
      // Emptied when full rather than kept in order: what it holds is recomputed at the cost of a miss.
      if (this.knownKeys.size >= PATTERN_CACHE.keys) this.knownKeys.clear()
      known = { pattern: keyPattern(key), watched: undefined, ids: {}, entries: {} }
      this.knownKeys.set(key, known)
    }
    return known
  }

  /** `key`'s pattern at `level`, as the id its stats are kept under. */
  private patternId (level: AdvisorLevel, key: string): string {
    const known = this.known(key)
    // A known key keeps the id of its pattern at each level: a string made once hashes once.
    return known === undefined ? `${level}\u0000${keyPattern(key)}` : (known.ids[level] ??= `${level}\u0000${known.pattern}`)
  }

  /**
   * The stats kept under the pattern id `id` of `level`: tracked, or put on probation. A pattern is tracked once it
   * is seen again: with another entry (another key, or the key in another session), or by an operation its first
   * entry had already had (read twice, written twice). A one-off key (a search query in it) is seen up to three
   * times, its lookup's miss, the load that answers it and its drop, all one use: counted as sightings, a flood of
   * one-off keys went through probation into the tracked patterns and pushed out those in use.
   */
  private statsAt (level: AdvisorLevel, id: string, entry: KeyedUsage, type: Usage['type']): PatternStats {
    const tracked = this.patterns.get(id)
    if (tracked !== undefined) return tracked
    const waiting = this.probation.get(id)
    const seen = hash32(this.entryText(level, entry.scope, entry.key), this.seed)
    const operation = SIGHTING[type]
    if (waiting === undefined) {
      const stats = new PatternStats(level, id.slice(level.length + 1))
      stats.firstEntry = { entry: seen, operations: operation }
      this.probation.set(id, stats)
      return stats
    }
    const first = waiting.firstEntry
    if (first !== undefined && first.entry === seen && (first.operations & operation) === 0) {
      first.operations |= operation
      return waiting
    }
    waiting.firstEntry = undefined
    this.probation.delete(id)
    this.patterns.set(id, waiting)
    return waiting
  }

  // A digest, not the key: a key of 1,024 characters costs what a short one does. Seeded with the sampling seed, so a
  // client cannot aim two keys at one entry; a collision by chance (53 bits, 10,000 entries) would merge two counts.
  private idOf (usage: KeyedUsage): number {
    // A watched application hit looks its entry up: kept with the key, its two hashes were a quarter of its cost.
    if (usage.scope !== undefined) return this.digest(usage)
    const known = this.known(usage.key)
    return known === undefined ? this.digest(usage) : (known.entries[usage.level] ??= this.digest(usage))
  }

  private digest (usage: KeyedUsage): number {
    const text = this.entryText(usage.level, usage.scope, usage.key)
    return (hash32(text, this.seed ^ 0x5bd1e995) & 0x1fffff) * 2 ** 32 + hash32(text, this.seed)
  }

  private entryText (level: AdvisorLevel, scope: UsageScope | undefined, key: string): string {
    const owner = scope === undefined ? '' : `n${scope}`
    return `${level}\u0000${owner}\u0000${key}`
  }
}
