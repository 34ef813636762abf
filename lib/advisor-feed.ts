// The advisor fed from the one stream of cache operations (lib/events.ts): the levels publish, the advisor is one more
// subscriber. This module turns an operation into the advisor's observations, and decides what is sampled how.
import { ADVISOR_BOUNDS, type Advisor, type UsageScope, type ValueHash } from './advisor.js'
import { hash32 } from './key-patterns.js'
import { subscribeCacheOperations, subscribeRequestUsage, usageOf, type CacheEventLevel, type CacheOperationContext, type CacheOperationName } from './events.js'

/**
 * What the advisor takes every time, whatever its rate: the session and application levels' writes, loads, deletes,
 * invalidations and drops, which follow an entry from its fill to its drop and are far rarer than hits (each already
 * pays a store write, a loader call or an eviction). Every read comes through the stream's per-operation countdown at
 * the advisor's `countRate`: a hit the advisor is not given costs a decrement, no key hash. The request level is not
 * taken one operation at a time: a share of requests is read whole (`subscribeRequestUsage`, at `countRate` too).
 */
export const ADVISOR_TAKES_EVERY: { readonly [L in CacheEventLevel]?: readonly CacheOperationName[] } = {
  session: ['set', 'load', 'delete', 'drop'],
  app: ['set', 'load', 'delete', 'invalidate', 'drop'],
  route: ['invalidate']
}

export interface AdvisorFeedOptions {
  /** Draws the stream's per-operation sample, in [0, 1). Default `Math.random`. */
  random?: () => number
  /**
   * Whether an operation of the level object `origin` is this advisor's: the stream is one per process, and an
   * advisor reads the levels of one app. Default: every level's.
   */
  from?: (origin: object | undefined) => boolean
}

/**
 * The advisor's sampled lookups, and the requests it reads whole, come in runs of this many in a row (`runLength`): at
 * 1 in 100, 16. A lookup drawn alone cost a hit 8 to 12 % more (timed at once on one core, EPYC VM, 2026-12-07), almost
 * all of it the drawn path's code waking up, cold since the last one; in runs of 16 or 32, 1 to 8 %. The sample is as
 * large, in clumps whose counts move more than those of draws one at a time: simulated (a key read three times per
 * write, among other reads, 400,000 operations, `advice()` every 10,000), runs of 32 reported it `volatile` in 2 seeds
 * of 40, from 29 reads against 34 writes counted; runs of 16 in none of 40, of 8 and 1 in none of 20. So the runs are
 * of 16, shorter at higher rates (2 at 1 in 10), and none from 1 in 3 on, where draws come too close together for the
 * code to go cold.
 */
export function advisorRunLength (sampleRate: number): number {
  return Math.min(16, Math.max(1, Math.round(0.16 / sampleRate)))
}

/** The levels the advisor takes one operation at a time. */
const LEVELS_BY_OPERATION: readonly CacheEventLevel[] = ['session', 'app', 'route']

/** Subscribes `advisor` to every level's operations in this process; returns the function that stops it. */
export function feedAdvisor (advisor: Advisor, options: AdvisorFeedOptions = {}): () => void {
  const every = ADVISOR_TAKES_EVERY
  const from = options.from
  // Given every time: counted in the totals on a draw of the advisor's, as the others were drawn by the stream.
  const drawn = (op: CacheOperationContext): boolean => every[op.level]?.includes(op.operation) === true ? advisor.draw() : true
  const listener = (op: CacheOperationContext): void => {
    // A failed operation changed nothing (a loader that threw caches nothing).
    if (op.error !== undefined) return
    const { origin, scope, value } = usageOf(op)
    if (from !== undefined && !from(origin)) return
    const level = op.level
    if (level === 'route') {
      route(advisor, op)
      return
    }
    switch (op.operation) {
      case 'get':
      case 'getOrLoad':
        if (op.key !== undefined && op.hit !== undefined) read(advisor, level, op.key, op.hit, scope)
        return
      case 'getMany':
      case 'getOrLoadMany': {
        // The context tells how many keys hit, not which: the first `hits` are taken as the hits. Keys of one batch
        // are almost always of one pattern, where the totals are the same either way.
        const keys = op.keys ?? []
        const hits = op.hits ?? 0
        keys.forEach((key, i) => { read(advisor, level, key, i < hits, undefined) })
        return
      }
      case 'set':
      case 'load': {
        const counted = drawn(op)
        const type = op.operation === 'set' ? 'write' : 'load'
        // A batch's load answers values for several keys: each is filled, with no value to compare.
        if (op.key === undefined) {
          for (const key of op.keys ?? []) advisor.feed({ type, level, key }, counted, advisor.watches(level, key))
          return
        }
        const watched = advisor.watches(level, op.key, scope)
        // The value is hashed for an entry followed only: one in `1 / sampleRate`.
        const digest = watched ? digestOf(value) : undefined
        advisor.feed({ type, level, key: op.key, scope, ...digest }, counted, watched)
        return
      }
      case 'delete':
      case 'invalidate': {
        const counted = drawn(op)
        for (const key of op.key === undefined ? op.keys ?? [] : [op.key]) {
          advisor.feed({ type: 'invalidate', level, key, scope }, counted, advisor.watches(level, key, scope))
        }
        return
      }
      case 'drop':
        if (op.key !== undefined && op.reason !== undefined) {
          advisor.feed({ type: 'drop', level, key: op.key, reason: op.reason, scope }, false, advisor.watches(level, op.key, scope))
        }
    }
    // Not counted: `invalidateTag` names tags, not keys (the entries it drops are not known without reading every one),
    // `clear` drops everything, and `refresh` is counted by its `load`.
  }
  const random = options.random === undefined ? {} : { random: options.random }
  const stopOperations = subscribeCacheOperations(listener, { sampleRate: advisor.countRate, every, levels: LEVELS_BY_OPERATION, runLength: advisorRunLength(advisor.countRate), ...random })
  const stopRequests = subscribeRequestUsage((reads, origin) => {
    if (from === undefined || from(origin)) advisor.requestEnded(reads)
  }, { sampleRate: advisor.countRate, maxKeys: ADVISOR_BOUNDS.keysPerRequest, runLength: advisorRunLength(advisor.countRate), ...random })
  return () => {
    stopOperations()
    stopRequests()
  }
}

/**
 * Route caching's lookups and invalidations are counted under the route as declared (`route`: `/users/:name`, for
 * `GET /users/alice` and for `invalidate('/users/:name', '/users/alice')`), its parameters as `*`, so that a route's
 * reads and its invalidations meet in one pattern and `volatile` can say a route is invalidated as often as it is
 * served; a parameter that is a word (a name) kept a path of its own per value. Nothing else of a route is counted:
 * its stored responses live in a cache of their own, whose drops the stream does not carry.
 */
function route (advisor: Advisor, op: CacheOperationContext): void {
  if (op.key === undefined) return
  const path = (op.route ?? op.key.slice(op.key.indexOf(' ') + 1)).replace(PARAMETER, '*')
  if (op.operation === 'get' && op.hit !== undefined) advisor.feed({ type: 'read', level: 'route', key: path, hit: op.hit }, true, false)
  else if (op.operation === 'invalidate') advisor.feed({ type: 'invalidate', level: 'route', key: path }, advisor.draw(), false)
}

/** A parameter of a declared route: `:id`, up to the next `/`. */
const PARAMETER = /:[^/]+/g

function read (advisor: Advisor, level: CacheEventLevel, key: string, hit: boolean, scope: UsageScope | undefined): void {
  // Only a hit says something of one entry (`never-read`).
  advisor.feed({ type: 'read', level, key, hit, scope }, true, hit && advisor.watches(level, key, scope))
}

/** A value's hash and size, from its JSON text; none for what JSON cannot write (a cycle, a BigInt). */
function digestOf (value: unknown): { hash: ValueHash, bytes: number } | undefined {
  let text: string | undefined
  try {
    text = JSON.stringify(value)
  } catch {
    return undefined
  }
  return text === undefined ? undefined : { hash: hash32(text), bytes: Buffer.byteLength(text) }
}
