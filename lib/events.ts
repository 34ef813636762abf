import { tracingChannel } from 'node:diagnostics_channel'
import type { CacheLevel } from './lookup.js'

/**
 * The one stream of cache operations: every level publishes each operation here once, and every consumer (the
 * diagnostics TracingChannel, in-process subscribers) takes it from here. Nothing is built, timed or published while
 * nobody listens: a level asks `observe()` first, and runs its plain code when it answers undefined.
 */

/** The name of the `diagnostics_channel` TracingChannel every cache operation is published on. */
export const CACHE_OPERATION_CHANNEL = 'fastify-multi-cache.operation'

/** The level an operation ran on: the three cache levels, and route response caching. */
export type CacheEventLevel = CacheLevel | 'route'

/**
 * What an operation did. `load` is a loader's call, published inside the lookup that needed it (`getOrLoad`,
 * `getOrLoadMany`, a `refresh`), so that a tracer nests it there.
 */
export type CacheOperationName = 'get' | 'set' | 'delete' | 'getOrLoad' | 'load' | 'invalidate' | 'invalidateTag' | 'clear' | 'refresh' | 'getMany' | 'getOrLoadMany' | 'drop'

/** Why an entry left a level by itself: pushed out by its size bound, or past its ttl. */
export type CacheDropReason = 'evict' | 'expire'

/** Where a two-tier level found a value: its memory tier (or the memory store), or the shared store. */
export type CacheTier = 'memory' | 'store'

/**
 * One operation, as published at its start and filled in before its end. Keys are the app's own: never a session id,
 * a cookie, or a store key with a session id in it.
 */
export interface CacheOperationContext {
  readonly level: CacheEventLevel
  readonly operation: CacheOperationName
  /**
   * The key as the app wrote it; for the route level the method and path (never the query). Undefined for an operation
   * on several keys (see `keys`) or on none (`clear`).
   */
  readonly key: string | undefined
  /** The keys of `getMany`, `getOrLoadMany`, their `load` and `invalidate`; the tags of `invalidateTag`. */
  readonly keys: readonly string[] | undefined
  /** Reads: whether the cache answered (for one key). Undefined for writes, and until known. */
  readonly hit: boolean | undefined
  /** Reads of several keys: how many the cache answered. */
  readonly hits: number | undefined
  /** A hit served past its ttl: within `staleWhileRevalidate`, or in place of a failed load (`graceOnError`). */
  readonly stale: boolean | undefined
  /** Where a hit of the application level came from. */
  readonly tier: CacheTier | undefined
  /**
   * `drop` only: an entry the level let go by itself. Drops are not calls of the app (nothing to time or nest): they
   * reach only in-process listeners that ask for them (`every`), never the TracingChannel.
   */
  readonly reason?: CacheDropReason
  /**
   * Route caching's lookups and `invalidate`: the route as declared, with any prefix (`/users/:name`), which `key`'s
   * path (`GET /users/alice`) does not tell.
   */
  readonly route?: string
  /** Set (by the channel) when the operation threw or rejected, before the `error` event. */
  readonly error?: unknown
  /** Set by the channel when the operation returned or resolved. */
  readonly result?: unknown
}

/** An in-process subscriber: called once an operation it was given has ended, with `hit`, `stale`, `tier` and `error` set. */
export type CacheOperationListener = (context: CacheOperationContext) => void

export interface CacheOperationSubscribeOptions {
  /**
   * The share of operations this listener is given, in (0, 1]; default 1 (every one). Decided before anything is built:
   * an operation no one is given costs a counter.
   */
  sampleRate?: number
  /**
   * Operations given every time whatever `sampleRate`, by level: `{ app: ['set', 'load'] }`; not the lookups (`get`,
   * `getOrLoad`, `getMany`, `getOrLoadMany`), which are always sampled, the hits' path staying one decrement. Also the
   * only way to be given `drop`s. What a consumer that follows entries needs of their rarer operations (writes, loads, drops), while
   * its hits stay sampled.
   */
  every?: { readonly [L in CacheEventLevel]?: readonly CacheOperationName[] }
  /** Draws the sampling, in [0, 1). Default `Math.random`: tests give a seeded one. */
  random?: () => number
  /**
   * The levels whose operations this listener is given; default every level. A lookup of a level left out is sampled
   * as any other and then not given, so the rate of the others holds; the request level left out costs its operations
   * nothing at all for this listener (its lookups are the cheapest of all, 10 ns: a countdown is a tenth of one).
   */
  levels?: readonly CacheEventLevel[]
  /**
   * Sampled operations are given in runs of this many in a row (an integer, 1 to 1,000; default 1, one at a time), at
   * the same `sampleRate`. A sampled hit's cost is mostly its code waking up: its path through the listener, idle since
   * the last one drawn, is out of the processor's caches and branch history, and costs several times what it costs
   * warm. In a run, the first pays that and the rest do not; the sample is as large, in clumps.
   */
  runLength?: number
}

const channel = tracingChannel<unknown, CacheOperation>(CACHE_OPERATION_CHANNEL)
const start = channel.start

/**
 * Whether the TracingChannel is listened to: its `start` channel has a subscriber or a bound store, as it has for
 * every subscriber that handles `start` (an APM, `MultiCacheInstrumentation`). One check, not five: the five cost a
 * plain `reqCache.get` about as much as the get itself.
 */
function traced (): boolean {
  return start.hasSubscribers
}

type Always = { readonly [L in CacheEventLevel]?: { readonly [O in CacheOperationName]?: true } }
type Levels = { readonly [L in CacheEventLevel]?: true }

const LEVELS: readonly CacheEventLevel[] = ['request', 'session', 'app', 'route']
/** The longest run of operations given in a row: a clump of the sample, not a trace of the traffic. */
const MAX_RUN_LENGTH = 1000

interface Subscription {
  readonly listener: CacheOperationListener
  /** One operation in `every` on average. */
  readonly every: number
  /** Operations given in a row once one is drawn (`runLength`). */
  readonly run: number
  /** Operations from the first of one run to the first of the next, on average: `every` runs long. */
  readonly spacing: number
  /** Operations given every time, as a table: two property reads decide, where a list would be searched. */
  readonly always: Always | undefined
  /** The levels it is given, as a table; undefined: every level. */
  readonly levels: Levels | undefined
  readonly random: () => number
  /** Operations to let pass before the next one given. */
  countdown: number
  /** The same, of the request level's lookups. */
  requestCountdown: number
  /** Operations still to give in the run under way. */
  runLeft: number
  /** The same, of the request level's lookups. */
  requestRunLeft: number
}

let subscriptions: readonly Subscription[] = []
/** Those of `subscriptions` given the request level: none while only the advisor listens, which reads requests whole. */
let requestSubscriptions: readonly Subscription[] = []

/**
 * Gives `listener` the operations of every level of every app in this process, each once it has ended; returns the
 * function that stops it. A listener that throws is ignored: it never fails an operation.
 */
export function subscribeCacheOperations (listener: CacheOperationListener, options?: CacheOperationSubscribeOptions): () => void {
  if (typeof listener !== 'function') throw new TypeError('subscribeCacheOperations: listener must be a function')
  const rate = options?.sampleRate ?? 1
  if (typeof rate !== 'number' || !(rate > 0 && rate <= 1)) throw new RangeError('subscribeCacheOperations: sampleRate must be a number in (0, 1]')
  const every = 1 / rate
  const random = options?.random ?? Math.random
  const levels = levelsOf(options?.levels)
  const run = options?.runLength === undefined ? 1 : options.runLength
  if (!Number.isInteger(run) || run < 1 || run > MAX_RUN_LENGTH) throw new RangeError(`subscribeCacheOperations: runLength must be an integer from 1 to ${MAX_RUN_LENGTH}`)
  const spacing = spacingOf(every, run)
  const subscription: Subscription = {
    listener,
    every,
    run,
    spacing,
    always: alwaysOf(options?.every),
    levels,
    random,
    countdown: nextCountdown(spacing, random),
    requestCountdown: nextCountdown(spacing, random),
    runLeft: 0,
    requestRunLeft: 0
  }
  listen([...subscriptions, subscription])
  return () => {
    listen(subscriptions.filter((one) => one !== subscription))
  }
}

function listen (next: readonly Subscription[]): void {
  // The countdowns true again before the lists change, or each change would count every listener's next lookup a draw.
  lookups.settle()
  requestLookups.settle()
  subscriptions = next
  requestSubscriptions = next.filter((subscription) => takes(subscription, ['request']))
  lookups.subscriptions = next.filter((subscription) => takes(subscription, ['session', 'app', 'route']))
  requestLookups.subscriptions = requestSubscriptions
}

function takes (subscription: Subscription, levels: readonly CacheEventLevel[]): boolean {
  return subscription.levels === undefined || levels.some((level) => subscription.levels?.[level] === true)
}

function levelsOf (levels: CacheOperationSubscribeOptions['levels']): Levels | undefined {
  if (levels === undefined) return undefined
  if (!Array.isArray(levels) || !levels.every((level) => LEVELS.includes(level))) {
    throw new TypeError(`subscribeCacheOperations: levels must be an array of level names (${LEVELS.join(', ')})`)
  }
  return Object.fromEntries(levels.map((level) => [level, true]))
}

/** Draws from the first of one run to the first of the next: a run's first is one in `spacing`, the rest follow it. */
function spacingOf (every: number, run: number): number {
  return every === 1 ? 1 : every * run - run + 1
}

/**
 * `every` on average, exactly, whatever its fraction (a rate of 0.7 is one operation in 1.43, not in 1), and not
 * periodic: a fixed period would give a listener the same one of a repeating pattern of operations (say, the second
 * lookup of every request) every time. Geometric: as if each operation were drawn on its own at `1 / every`.
 */
function nextCountdown (every: number, random: () => number): number {
  return every <= 1 ? 1 : 1 + Math.floor(Math.log(1 - random()) / Math.log(1 - 1 / every))
}

function alwaysOf (every: CacheOperationSubscribeOptions['every']): Always | undefined {
  if (every === undefined) return undefined
  const always: Record<string, Record<string, true>> = {}
  for (const [level, operations] of Object.entries(every)) {
    if (!Array.isArray(operations)) throw new TypeError(`subscribeCacheOperations: every.${level} must be an array of operation names`)
    always[level] = Object.fromEntries(operations.map((operation) => [operation, true]))
  }
  return always
}

/**
 * The in-process listeners given this operation, if any; counts the sampled ones down. An operation a listener takes
 * every time does not count: the countdown samples the others at the rate asked.
 */
function pick (level: CacheEventLevel, operation: CacheOperationName, from: readonly Subscription[]): CacheOperationListener[] | undefined {
  let picked: CacheOperationListener[] | undefined
  for (const subscription of from) {
    if (subscription.levels !== undefined && subscription.levels[level] !== true) continue
    if (subscription.every !== 1 && subscription.always?.[level]?.[operation] !== true && !drawn(subscription, 'countdown', 'runLeft')) continue
    picked = adding(picked, subscription.listener)
  }
  return picked
}

/**
 * Whether `subscription` is given the operation at hand, a sampled one: the next of a run under way, or the first of a
 * run once its countdown ends. Moves the run or the countdown on.
 */
function drawn (subscription: Subscription, countdown: 'countdown' | 'requestCountdown', runLeft: 'runLeft' | 'requestRunLeft'): boolean {
  if (subscription[runLeft] > 0) {
    subscription[runLeft]--
    return true
  }
  if (--subscription[countdown] > 0) return false
  subscription[countdown] = nextCountdown(subscription.spacing, subscription.random)
  subscription[runLeft] = subscription.run - 1
  return true
}

/**
 * `listeners` with `listener` added. The first is given an array of one: an empty array that `push` grows reserves
 * 17 slots, and an advisor's sampled hit paid for that copy.
 */
function adding (listeners: CacheOperationListener[] | undefined, listener: CacheOperationListener): CacheOperationListener[] {
  if (listeners === undefined) return [listener]
  listeners.push(listener)
  return listeners
}

/**
 * The lookups of some levels (`get`, `getOrLoad`, `getMany`, `getOrLoadMany`), sampled together: the hot path. A
 * lookup never named by `every` (it is sampled, or given every time with `sampleRate: 1`) needs no table read, and
 * the lookups that no sampled listener will be given are known ahead: each listener's countdown has been moved on by as
 * many, and a hit then costs one decrement, where counting every listener down cost a sampled listener's hit (110 ns at
 * the application level, 10 ns at the request level) 5 to 10 %.
 */
class LookupStream {
  subscriptions: readonly Subscription[] = []
  /** Lookups ahead that no listener will be given. */
  skip = 0

  /**
   * `countdown` and `runLeft`: the subscriptions' fields this stream moves; the request level's lookups are sampled
   * apart.
   */
  constructor (private readonly countdown: 'countdown' | 'requestCountdown', private readonly runLeft: 'runLeft' | 'requestRunLeft') {}

  /** The listeners given this lookup, if any; then moves every countdown on by the lookups none will take. */
  pick (level: CacheEventLevel): CacheOperationListener[] | undefined {
    const { countdown, runLeft } = this
    let picked: CacheOperationListener[] | undefined
    let ahead = Infinity
    for (const subscription of this.subscriptions) {
      // A lookup of a level the listener leaves out is drawn as any other and then not given: its rate holds.
      const given = subscription.levels === undefined || subscription.levels[level] === true
      if (subscription.every !== 1) {
        if (drawn(subscription, countdown, runLeft) && given) picked = adding(picked, subscription.listener)
        ahead = Math.min(ahead, subscription[runLeft] > 0 ? 0 : subscription[countdown] - 1)
      } else if (given) {
        picked = adding(picked, subscription.listener)
        ahead = 0
      }
    }
    if (ahead > 0) {
      for (const subscription of this.subscriptions) subscription[countdown] -= ahead
      this.skip = ahead
    }
    return picked
  }

  /**
   * Gives the lookups counted ahead of time, and not yet seen, back to the countdowns: before anything else counts them
   * down (the session and application levels' other operations share them) or the subscriptions change. Without it, the
   * first such operation after a lookup was drawn at once, and the lookups skipped after it were never counted: a
   * listener at 1 in 100 was given 3,980 `set`s and 14 `get`s of 200,000 each, the two alternating.
   */
  settle (): void {
    if (this.skip === 0) return
    for (const subscription of this.subscriptions) subscription[this.countdown] += this.skip
    this.skip = 0
  }
}

/** The session and application levels' and route caching's lookups. */
const lookups = new LookupStream('countdown', 'runLeft')
/** The request level's: none while only the advisor listens, which reads requests whole. */
const requestLookups = new LookupStream('requestCountdown', 'requestRunLeft')

/** Runs an operation's call inside a context of the consumer's own (OpenTelemetry's active span). */
export type OperationScope = <R>(operation: CacheOperationContext, run: () => R) => R

let scope: OperationScope | undefined

/**
 * Sets (or, with undefined, removes) the scope every listened operation runs in, from `start` to its call's end: what
 * `fastify-multi-cache/otel` needs so that the spans a loader's own calls make nest in its `cache.load`, since
 * OpenTelemetry's context cannot be entered from a channel's subscriber. One at a time (`replacing`: only if it is still
 * that one); not part of the public API.
 */
export function scopeOperations (next: OperationScope | undefined, replacing?: OperationScope): void {
  // An instrumentation disabled after another was enabled leaves the other's scope in place.
  if (replacing === undefined || scope === replacing) scope = next
}

/**
 * The context of one operation when someone listens to it, or undefined. Levels call it first and run their plain code
 * on undefined; otherwise they run the operation through `sync` or `promise`, setting what they learn on the way.
 */
export function observe (level: CacheEventLevel, operation: CacheOperationName, key: string | undefined, keys?: readonly string[], origin?: object): CacheOperation | undefined {
  const from = level === 'request' ? requestSubscriptions : subscriptions
  let listeners: CacheOperationListener[] | undefined
  if (from.length !== 0) {
    lookups.settle()
    listeners = pick(level, operation, from)
  }
  if (listeners === undefined && !traced()) return undefined
  return new CacheOperation(level, operation, key, keys, listeners, origin)
}

/** The lookups' `observe`, but the request level's: the hot path, see `LookupStream`. */
export function observeLookup (level: Exclude<CacheEventLevel, 'request'>, operation: 'get' | 'getOrLoad' | 'getMany' | 'getOrLoadMany', key: string | undefined, keys?: readonly string[], origin?: object): CacheOperation | undefined {
  return observeIn(lookups, level, operation, key, keys, origin)
}

/**
 * The request level's lookups' `observe`, sampled apart: a listener that leaves the level out costs them nothing. The
 * body is `observeIn`'s, written out on purpose: V8 compiles a function for the branches its calls have taken, and
 * while the advisor counted the application level's hits down through the shared body, every request-level read
 * carried that branch's code too: timed by hand in ten processes, a request's work ran 3 to 19 % slower with the advisor
 * on (Intel Xeon), and about as fast (median 1.01×) with a body of its own.
 */
export function observeRequestLookup (operation: 'get' | 'getOrLoad', key: string, origin: object): CacheOperation | undefined {
  if (requestLookups.subscriptions.length !== 0) {
    if (requestLookups.skip > 0) requestLookups.skip--
    else return given(requestLookups, 'request', operation, key, undefined, origin)
  }
  return traced() ? new CacheOperation('request', operation, key, undefined, undefined, origin) : undefined
}

function observeIn (stream: LookupStream, level: CacheEventLevel, operation: CacheOperationName, key: string | undefined, keys: readonly string[] | undefined, origin: object | undefined): CacheOperation | undefined {
  if (stream.subscriptions.length !== 0) {
    if (stream.skip > 0) stream.skip--
    else return given(stream, level, operation, key, keys, origin)
  }
  return traced() ? new CacheOperation(level, operation, key, keys, undefined, origin) : undefined
}

/**
 * The lookup a countdown reached: apart from `observeIn`, which every hit runs and the levels' lookups inline, so that
 * what runs once in a hundred does not make that code larger.
 */
function given (stream: LookupStream, level: CacheEventLevel, operation: CacheOperationName, key: string | undefined, keys: readonly string[] | undefined, origin: object | undefined): CacheOperation | undefined {
  const listeners = stream.pick(level)
  if (listeners === undefined && !traced()) return undefined
  return new CacheOperation(level, operation, key, keys, listeners, origin)
}

/**
 * A loader that publishes its call as a `load` operation when someone listens (nested in the lookup running it), or
 * `loader` itself. `scope`: the session's token, at the session level.
 */
export function observeLoad<T> (level: CacheEventLevel, key: string | undefined, loader: () => T | PromiseLike<T>, keys?: readonly string[], origin?: object, scope?: () => number | undefined): () => T | PromiseLike<T> {
  const op = observe(level, 'load', key, keys, origin)
  if (op === undefined) return loader
  if (scope !== undefined) op.within(scope)
  return async () => await op.promise(async () => await loader())
}

/**
 * An entry `level` let go by itself, given to the listeners that take `drop` there (`every`): not a call, so not
 * traced. Costs a length check while nobody listens; `scope` is asked only when someone does.
 */
export function observeDrop (level: CacheEventLevel, key: string, reason: CacheDropReason, origin?: object, scope?: () => number | undefined): void {
  if (subscriptions.length === 0) return
  let op: CacheOperation | undefined
  for (const subscription of level === 'request' ? requestSubscriptions : subscriptions) {
    if (subscription.always?.[level]?.drop !== true || (subscription.levels !== undefined && subscription.levels[level] !== true)) continue
    if (op === undefined) {
      op = new CacheOperation(level, 'drop', key, undefined, undefined, origin)
      op.reason = reason
      if (scope !== undefined) op.within(scope)
    }
    tell(subscription.listener, op)
  }
}

/**
 * Calls `listener` with `op`: what it throws, or rejects with if it is async, is its own fault and fails no operation
 * (an async listener's rejection left unhandled ends a Node process by default).
 */
function tell (listener: CacheOperationListener, op: CacheOperationContext): void {
  try {
    const returned: unknown = listener(op)
    if (returned instanceof Promise) returned.catch(ignore)
  } catch {
    // A listener's fault is its own: the operation has its result already.
  }
}

function ignore (): void {}

/** What `usageOf` reads of an operation. */
export interface OperationUsage {
  /** The session's token: a keyed 32-bit hash of its id, never the id. */
  scope: number | undefined
  /** The value a `set` wrote or a `load` answered. */
  value: unknown
  /** The level object that published it: the stream is one per process, a consumer of one app's levels tells them so. */
  origin: object | undefined
}

/**
 * What the package's own consumers (the advisor) read of an operation beyond its public context. Kept in private
 * fields, so that no tracer or other subscriber is handed a value, a level object or anything tied to a session.
 */
export function usageOf (context: CacheOperationContext): OperationUsage {
  return context instanceof CacheOperation ? context.usage() : { scope: undefined, value: undefined, origin: undefined }
}

/** How often a request read one key of its cache: 0 for a key it set or loaded and never read. */
export interface KeyReads { readonly reads: number }

/** Told of one request's use of its cache: each key it read or filled, with its reads; `origin`: the request level. */
export type RequestUsageListener = (reads: ReadonlyMap<string, KeyReads>, origin: object) => void

interface RequestWatch {
  readonly listener: RequestUsageListener
  /** Most keys of one request counted: past them, new keys are not. */
  readonly maxKeys: number
  readonly run: number
  /** See `spacingOf`. */
  readonly spacing: number
  readonly random: () => number
  /** The number (`opened`) of the next request it draws. */
  next: number
  /** Requests still to draw in the run under way. */
  runLeft: number
}

let requestWatches: readonly RequestWatch[] = []
/** Requests opened in this process: the clock the watches' draws are set on. */
let opened = 0
/**
 * The earliest `next` of every watch: the request it reaches is the first any watch draws. Every other request is
 * turned away by one comparison, where a walk over the watches, each with its own countdown, cost a request of ten
 * keys 2 to 3 % of its time.
 */
let nextDrawn = Infinity

function earliestDraw (): number {
  let earliest = Infinity
  for (const watch of requestWatches) earliest = Math.min(earliest, watch.next)
  return earliest
}

/**
 * Gives `listener` the use each request made of its cache, for a share `sampleRate` of requests drawn as they open:
 * how the package's own consumers (the advisor) read the request level. A request is read whole, or not at all, so a
 * request drawn counts its reads per key (a map lookup each) and is told once at its end, where one operation in 100
 * handed over one by one cost a 10 ns lookup twice its time. Not part of the public API; returns the function that
 * stops it.
 */
export function subscribeRequestUsage (listener: RequestUsageListener, options: { sampleRate: number, maxKeys: number, runLength?: number, random?: () => number }): () => void {
  const run = options.runLength ?? 1
  const spacing = spacingOf(1 / options.sampleRate, run)
  const random = options.random ?? Math.random
  const watch: RequestWatch = { listener, maxKeys: options.maxKeys, run, spacing, random, next: opened + nextCountdown(spacing, random), runLeft: 0 }
  requestWatches = [...requestWatches, watch]
  nextDrawn = earliestDraw()
  return () => {
    requestWatches = requestWatches.filter((one) => one !== watch)
    nextDrawn = earliestDraw()
  }
}

/** The usage a request opening now counts, if a listener drew it; undefined for most requests, which count nothing. */
export function watchRequest (origin: object): RequestUsage | undefined {
  if (++opened < nextDrawn) return undefined
  let drawn: RequestUsageListener[] | undefined
  let maxKeys = 0
  for (const watch of requestWatches) {
    if (watch.next > opened) continue
    // The first request of a run, or one more of it (as for lookups, `runLength`).
    watch.runLeft = watch.runLeft > 0 ? watch.runLeft - 1 : watch.run - 1
    watch.next = opened + (watch.runLeft > 0 ? 1 : nextCountdown(watch.spacing, watch.random))
    ;(drawn ??= []).push(watch.listener)
    maxKeys = Math.max(maxKeys, watch.maxKeys)
  }
  nextDrawn = earliestDraw()
  return drawn === undefined ? undefined : new RequestUsage(drawn, origin, maxKeys)
}

/** What one drawn request counts: reads per key, up to `maxKeys` keys; told to its listeners once, at `end`. */
export class RequestUsage {
  // A counter per key, not a number: a read of a key counted already is one lookup, not a lookup and a store.
  readonly #reads = new Map<string, { reads: number }>()
  #listeners: RequestUsageListener[] | undefined

  constructor (listeners: RequestUsageListener[], private readonly origin: object, private readonly maxKeys: number) {
    this.#listeners = listeners
  }

  read (key: string): void {
    const counted = this.#reads.get(key)
    if (counted !== undefined) counted.reads++
    else if (this.#reads.size < this.maxKeys) this.#reads.set(key, { reads: 1 })
  }

  /** A key set or loaded: the start of its use in this request, read or not. */
  fill (key: string): void {
    if (!this.#reads.has(key) && this.#reads.size < this.maxKeys) this.#reads.set(key, { reads: 0 })
  }

  /** The request ended before its response (its client went away): its listeners are never told. */
  discard (): void {
    this.#listeners = undefined
  }

  /** The request is over: its listeners are told, once. */
  end (): void {
    const listeners = this.#listeners
    if (listeners === undefined) return
    this.#listeners = undefined
    for (const listener of listeners) {
      try {
        listener(this.#reads, this.origin)
      } catch {
        // As for operations: a listener's fault is its own.
      }
    }
  }
}

/**
 * `method` called on `target`: a promise whatever happens, since a method that throws before it returns its promise
 * rejects, as the levels' methods never throw. Not an async function: awaiting the method's promise in one would cost
 * a sampled hit three more turns of the microtask queue.
 */
function called (target: object, method: (a?: unknown, b?: unknown, c?: unknown, d?: unknown) => Promise<unknown>, a: unknown, b: unknown, c: unknown, d: unknown): Promise<unknown> {
  try {
    return method.call(target, a, b, c, d)
  } catch (error) {
    return Promise.reject(error)
  }
}

/** The context published for one operation, filled in by the level as it runs. */
export class CacheOperation implements CacheOperationContext {
  hit: boolean | undefined = undefined
  hits: number | undefined = undefined
  stale: boolean | undefined = undefined
  tier: CacheTier | undefined = undefined
  declare reason?: CacheDropReason
  declare route?: string
  // Declared only: the channel sets them, and a subscriber tells a sync operation's end by their presence.
  declare error?: unknown
  declare result?: unknown
  readonly #listeners: CacheOperationListener[] | undefined
  readonly #origin: object | undefined
  #scope: (() => number | undefined) | undefined = undefined
  #value: unknown = undefined

  constructor (
    readonly level: CacheEventLevel,
    readonly operation: CacheOperationName,
    readonly key: string | undefined,
    readonly keys: readonly string[] | undefined,
    listeners: CacheOperationListener[] | undefined,
    origin?: object
  ) {
    this.#listeners = listeners
    this.#origin = origin
  }

  /** Runs a synchronous operation: `start` and `end` (and `error`) on the channel, then the listeners. */
  sync<R> (run: () => R): R {
    const within = scope
    const call = within === undefined ? run : () => within(this, run)
    try {
      return traced() ? channel.traceSync(call, this) : call()
    } catch (error) {
      this.error = error
      throw error
    } finally {
      this.deliver()
    }
  }

  /**
   * Runs an operation that answers a promise: `start` and `end` around the call, `asyncStart` and `asyncEnd` (and
   * `error`) when it settles, so that a subscriber's AsyncLocalStorage bound to `start` is the loader's context too.
   */
  promise<R> (run: () => Promise<R>): Promise<R> {
    const within = scope
    const call = within === undefined ? run : () => within(this, run)
    return this.ended(traced() ? channel.tracePromise(call, this) : call())
  }

  /** The listeners told of `running`'s end: at once for a hit answered from memory, else once it settles. */
  private ended<R> (running: Promise<R>): Promise<R> {
    if (this.#listeners === undefined) return running
    // A hit answered from memory has ended by now, the promise only carries it: no need to wait for it (unless the
    // channel is to set its `result` first).
    if (this.hit === true && !traced()) {
      this.deliver()
      return running
    }
    return running.then((value) => {
      // A load's value, for `usageOf`: only when an in-process listener was given the operation.
      if (this.operation === 'load') this.#value = value
      this.deliver()
      return value
    }, (error: unknown) => {
      this.error = error
      this.deliver()
      throw error
    })
  }

  /**
   * `promise` of `method` called on `target` with up to four arguments: what a level's hot method calls on its observed
   * path, so that the method itself makes no closure. A closure there puts what it captures in a context made on every
   * call, observed or not, once the observed path has run: a hit measured 10 % slower. Given only to in-process
   * listeners (nothing traces, no scope), the call is made at once, with no closure either: a sampled hit otherwise ran
   * five of V8's builtins more (rest arguments, `apply`, a closure's first call), a sixth of the advisor's instructions
   * per hit.
   */
  run<A extends [] | [unknown] | [unknown, unknown] | [unknown, unknown, unknown] | [unknown, unknown, unknown, unknown], R> (target: object, method: (...args: A) => Promise<R>, ...args: A): Promise<R>
  run (target: object, method: (a?: unknown, b?: unknown, c?: unknown, d?: unknown) => Promise<unknown>, a?: unknown, b?: unknown, c?: unknown, d?: unknown): Promise<unknown> {
    if (scope === undefined && !traced()) return this.ended(called(target, method, a, b, c, d))
    return this.promise(() => called(target, method, a, b, c, d))
  }

  /** The session's token (see `usageOf`), asked for when a listener reads it: the session may be known only by then. */
  within (scope: () => number | undefined): this {
    this.#scope = scope
    return this
  }

  /** The value a `set` writes (see `usageOf`). */
  holding (value: unknown): this {
    this.#value = value
    return this
  }

  usage (): OperationUsage {
    return { scope: this.#scope?.(), value: this.#value, origin: this.#origin }
  }

  /** A value found: where it was found, whether past its ttl. */
  found (stale = false, tier?: CacheTier): void {
    this.hit = true
    this.stale = stale
    if (tier !== undefined) this.tier = tier
  }

  /** Nothing found: the lookup is answered by a load, or not at all. */
  missed (): void {
    this.hit = false
  }

  private deliver (): void {
    const listeners = this.#listeners
    if (listeners === undefined) return
    for (const listener of listeners) tell(listener, this)
  }
}
