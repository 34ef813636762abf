import { Breaker, guardStore } from './breaker.js'
import { withBudget } from './budget.js'
import { BurstLog, type Logger } from './burst-log.js'
import { InvalidationBus } from './bus.js'
import type { Duration } from './durations.js'
import { StoreUnreachableError, messageOf } from './errors.js'
import type { CacheLevels } from './levels.js'
import { RedisLock } from './lock.js'
import { readOptions, type OptionReader } from './options.js'
import { MAX_ENTRY_BYTES, type Serializer } from './serializer.js'
import { assertStore, type Store } from './store.js'
import { KeyvStore, type KeyvLike } from './stores/keyv.js'
import type { MemoryStore } from './stores/memory.js'
import { RedisStore, closeClient, isCluster, type RedisClient } from './stores/redis.js'
import { TieredStore } from './tiers.js'

/** A Redis the plugin opens: one server, or a cluster (`redis+cluster://host:port,host:port`, or a list of node URLs). */
export type RedisUrl = `redis://${string}` | `rediss://${string}`
export type RedisClusterUrl = `redis+cluster://${string}` | `rediss+cluster://${string}`

/** Where a level keeps its data. */
export type StoreOption = 'memory' | 'redis' | RedisUrl | RedisClusterUrl | readonly RedisUrl[] | RedisClient | KeyvLike | Store

/** The memory tier in front of a shared store. */
export interface L1Options {
  /** Most entries held in memory; the least recently used goes first. */
  max?: number
  /** Longest an entry stays in memory: ms or a duration string. */
  ttl?: Duration
}

/** Options of every level whose data can live in a shared store. */
export interface SharedStoreOptions {
  /** Key prefix in the shared store, so that apps and levels can share one Redis. */
  prefix?: string
  /** Time budget of each store operation: ms or a duration string. Default `'100ms'`. */
  timeout?: Duration
  /** How values become bytes for Redis or Keyv. Default JSON, refusing what JSON would change. */
  serializer?: Serializer
  /** With `store: 'redis'`, the `@fastify/redis` namespace to use. */
  redisNamespace?: string
  /**
   * A memory tier in front of the shared store, or `false`. On by default with Redis, kept coherent by pub/sub;
   * with another shared store only when given, and then an entry may be stale for up to `l1.ttl`.
   */
  l1?: L1Options | false
  /** Largest value a shared store takes once serialized, in bytes. Default 1 MiB. */
  maxEntryBytes?: number
  /**
   * A circuit breaker on the shared store, or `false`: after `failures` failures in a row, operations skip the store
   * for `coolDown`, then one probe at a time decides. Default `{ failures: 3, coolDown: '1s' }`.
   */
  breaker?: BreakerOptions | false
  /**
   * With a Redis the plugin opens (a URL, or a cluster's nodes): fail registration with `FST_MULTICACHE_STORE_UNREACHABLE` when that Redis
   * does not answer at start-up. Default false: the app starts without it, its level answers from the loaders, and
   * it is used as soon as it answers.
   */
  requireStore?: boolean
}

/** The circuit breaker of a shared store. */
export interface BreakerOptions {
  /** Failures or timeouts in a row that open it. Default 3. */
  failures?: number
  /** How long operations skip the store before one probe: ms or a duration string. Default `'1s'`. */
  coolDown?: Duration
}

export const SHARED_STORE_OPTIONS = ['prefix', 'timeout', 'serializer', 'redisNamespace', 'l1', 'maxEntryBytes', 'breaker', 'requireStore'] as const

const STORE_FORMS = "'memory', 'redis' (the @fastify/redis client), a redis:// or rediss:// URL, a redis+cluster:// URL or a list of a cluster's node URLs, an ioredis client or Cluster, a Keyv instance, or an object with the methods get, set, delete and clear"

/** A level's store and what goes with it: the breaker, the bus and the lock, each where there is one. */
export interface Backend {
  store: Store
  /** The Redis client behind the store, when there is one. */
  redis: RedisClient | undefined
  /** The shared store's circuit breaker, which the lock and the bus go through too. */
  breaker?: Breaker
  /** The bus that keeps the memory tier coherent, when there is one. */
  bus?: InvalidationBus
  /** With the `lock` option: one load per cold key across instances. */
  lock?: RedisLock
  /**
   * Why the Redis of a URL did not answer at start-up, when it did not: the level logs it as its first store fault,
   * so that the faults that follow at once (the tag versions read at `onReady`) are held back with it.
   */
  unreachable?: string
  /** Closes what was opened here (the bus, a client of a URL); what the app passed in stays the app's to close. */
  close: () => Promise<void>
}

/** What a level brings besides its options. */
export interface BackendContext {
  /** Where faults and the breaker's changes are told. */
  log: Logger
  /** The app's levels, which hold the namespaces already taken in each backend. */
  levels: CacheLevels
  /** The `@fastify/redis` client of a namespace (the default one for undefined), when one is registered. */
  redis: (namespace: string | undefined) => RedisClient | undefined
  prefix: string
  /** The memory tier's defaults; `longest`, when given, bounds its ttl whatever the options say. */
  l1: { max: number, ttl: number, longest?: number }
  /** The memory tier reads the clock at each check (see `MemoryStoreOptions.exactClock`). */
  exactClock?: boolean
  /** The level's bounded memory store, for `store: 'memory'`. */
  memory: () => MemoryStore
  /** Keep fences in Redis, so that a change on one instance fences the loads of every other. */
  fenced?: boolean
  /**
   * The memory tier checks every group it serves with the shared store (see `TieredStore`'s `verify`) instead of
   * hearing of changes on a bus.
   */
  verified?: boolean
}

/**
 * How long an instance's lease on its memory tier runs with `coherence: 'strict'` on one Redis, in ms: the longest a
 * change waits for an instance that does not acknowledge it (stalled, cut off from Redis), which by then stops serving
 * from memory.
 */
const LEASE = 1000

/**
 * Turns a level's `store` option into its store: the level's bounded memory store, our Redis or Keyv store (with a
 * memory tier in front where asked), or a custom store checked for its methods; with a `lock` option, the lock. What
 * is opened here is closed by the backend's `close()`, and at once when a later option fails, so that an option error
 * leaks nothing; a client, a Keyv or a store the app passed in stays the app's to close.
 */
export async function openBackend (read: OptionReader, options: SharedStoreOptions & { store?: unknown, lock?: unknown }, context: BackendContext): Promise<Backend> {
  const closers: Array<() => Promise<void>> = []
  const close = async (): Promise<void> => { for (const closer of closers.splice(0)) await closer() }
  try {
    return await open(read, options, context, closers, close)
  } catch (error) {
    await close()
    throw error
  }
}

async function open (read: OptionReader, options: SharedStoreOptions & { store?: unknown, lock?: unknown }, context: BackendContext, closers: Array<() => Promise<void>>, close: () => Promise<void>): Promise<Backend> {
  const option = options.store ?? 'memory'
  const timeout = read.duration('timeout', 100)
  if (timeout === 0) read.fail('timeout', 'must be greater than 0')
  const prefix = options.prefix ?? context.prefix
  if (typeof prefix !== 'string' || prefix === '') read.fail('prefix', 'must be a non-empty string')
  const serializer = options.serializer
  if (serializer !== undefined && (typeof serializer?.encode !== 'function' || typeof serializer?.decode !== 'function')) {
    read.fail('serializer', 'must be an object with encode(value) and decode(data) functions')
  }
  const url = typeof option === 'string' && /^rediss?:\/\//.test(option) ? option : undefined
  const cluster = clusterOf(read, option)
  const requireStore = read.boolean('requireStore', false)
  if (requireStore && url === undefined && cluster === undefined) {
    read.fail('requireStore', 'applies to a Redis the plugin opens only (a redis:// or rediss:// URL, a redis+cluster:// URL or a list of node URLs): a client you pass in is yours to connect')
  }
  if (option === 'memory') {
    if (options.l1 !== undefined && options.l1 !== false) {
      read.fail('l1', "must be left out with the memory store (store: 'memory', the default): it is a memory tier in front of a shared store, and the memory store's size has an option of its own")
    }
    const lock = openLock(read, options.lock, undefined, prefix, timeout)
    return { store: context.memory(), redis: undefined, close, ...(lock === undefined ? {} : { lock }) }
  }
  const l1 = readL1(read, options.l1, context.l1)

  const withSerializer = { ...(serializer === undefined ? {} : { serializer }), maxEntryBytes: read.positiveInteger('maxEntryBytes', MAX_ENTRY_BYTES) }
  const breaker = readBreaker(read, options.breaker, context.log)
  // How long the start waits for a Redis to answer, and for the bus's subscription: one that is down must not hold it.
  const within = Math.max(timeout * 10, 1000)
  let client: RedisClient | undefined
  let unreachable: string | undefined
  let shared: Store
  if (option === 'redis') {
    client = context.redis(options.redisNamespace)
    if (client === undefined) {
      read.fail('store', `is 'redis' but no client was found at fastify.redis${options.redisNamespace === undefined ? '' : `['${options.redisNamespace}']`}: register @fastify/redis first`)
    }
  } else if (url !== undefined || cluster !== undefined) {
    const opened = await openRedis(read.name, url === undefined ? cluster as ClusterNodes : url, within, requireStore)
    client = opened.client
    unreachable = opened.unreachable
    closers.push(async () => { await closeClient(opened.client, timeout) })
  } else if (typeof option !== 'object' || option === null || Array.isArray(option)) {
    read.fail('store', `must be ${STORE_FORMS}`)
  } else if (isRedisClient(option)) {
    client = option
  }
  if (client !== undefined) {
    shared = new RedisStore({ client, prefix, timeout, fenced: context.fenced === true, ...withSerializer })
  } else if (isKeyv(option)) {
    shared = new KeyvStore({ keyv: option, prefix, timeout, ...withSerializer })
  } else {
    shared = assertStore(read.name, option)
  }
  claimNamespace(context.levels, read, client === undefined ? option : REDIS, shared instanceof KeyvStore || client !== undefined ? prefix : '')
  if (breaker !== undefined) shared = guardStore(shared, breaker)
  const lock = openLock(read, options.lock, client, prefix, timeout, breaker)
  const backend = { redis: client, close, ...(breaker === undefined ? {} : { breaker }), ...(lock === undefined ? {} : { lock }), ...(unreachable === undefined ? {} : { unreachable }) }
  // The default tier needs the bus that keeps it coherent; a tier asked for explicitly runs on its TTL alone. A level
  // with shared fences and tags keeps the bus without a tier: it is how the other instances hear of their moves.
  const keepsBus = client !== undefined && context.fenced === true
  if ((l1 === undefined && !keepsBus) || (options.l1 === undefined && client === undefined)) return { store: shared, ...backend }
  let tiered: TieredStore | undefined
  // Verified on one Redis: a leased bus (a change waits for the instances that may serve it from memory, reads ask
  // nothing). On a cluster, where a script cannot reach both the key and the registry, and on Keyv: a check per read.
  const leased = context.verified === true && client !== undefined && !isCluster(client)
  const verify = context.verified === true && !leased
  const bus = client === undefined || verify
    ? undefined
    : new InvalidationBus({
      client,
      channel: prefix + 'bus',
      timeout,
      onMessage: (message) => { tiered?.invalidate(message) },
      ...(breaker === undefined ? {} : { breaker }),
      ...(leased ? { lease: { registry: 'fmc-leases:' + prefix, ms: LEASE } } : {})
    })
  const faults = new BurstLog(context.log)
  const onFault = (operation: string, error: unknown): void => {
    faults.warn({ err: error, operation }, `${read.name}: telling the other instances of a change failed (${operation}); their memory tiers may serve the old value for up to l1.ttl`)
  }
  const store = tiered = new TieredStore({ l2: shared, ...(l1 ?? { max: 0, ttl: 0 }), exactClock: context.exactClock === true, onFault, verify, ...(bus === undefined ? {} : { bus }) })
  // The bus closes before the client it was duplicated from.
  closers.unshift(async () => { await store.close() })
  if (bus === undefined) return { store, ...backend }
  // A Redis that did not answer will not have a subscription for it either: the bus subscribes once it answers.
  if (unreachable === undefined) await subscribedWithin(bus, context.log, within)
  return { store, ...backend, bus }
}

function readBreaker (read: OptionReader, option: unknown, log: Logger): Breaker | undefined {
  if (option === false) return undefined
  const breaking = readOptions(`${read.name} (breaker)`, option)
  breaking.only(['failures', 'coolDown'])
  const coolDown = breaking.duration('coolDown', 1000)
  if (coolDown === 0) breaking.fail('coolDown', 'must be greater than 0 (use breaker: false for no circuit breaker)')
  return new Breaker({ failures: breaking.positiveInteger('failures', 3), coolDown, log, name: read.name })
}

/** Every Redis counts as one backend: a prefix is refused if another level of the app uses it in any Redis. */
const REDIS = Symbol('redis')

/**
 * Refuses a namespace another level of the app holds in the same backend (`prefix` in a Redis or a Keyv; a custom
 * store, which takes no prefix, is one namespace).
 */
function claimNamespace (levels: CacheLevels, read: OptionReader, backend: unknown, prefix: string): void {
  const holder = levels.claim(backend, prefix, read.name)
  if (holder === undefined) return
  const why = "two levels in one namespace read each other's keys, and either's clear() deletes both"
  if (prefix === '') read.fail('store', `must not be the store object ${holder} uses: ${why} (give each level a store of its own)`)
  read.fail('prefix', `must not overlap the prefix of ${holder} in the same ${backend === REDIS ? 'Redis' : 'Keyv'}: ${why} (give each level a prefix of its own, as the defaults do)`, prefix)
}

/** The `lock` option of the application level: one load per cold key across instances, through Redis. */
function openLock (read: OptionReader, option: unknown, client: RedisClient | undefined, prefix: string, timeout: number, breaker?: Breaker): RedisLock | undefined {
  if (option === undefined || option === false) return undefined
  if (client === undefined) read.fail('lock', 'needs a Redis store (the lock lives in Redis)')
  const locking = readOptions(`${read.name} (lock)`, option === true ? {} : option)
  locking.only(['ttl', 'wait'])
  return new RedisLock({
    client,
    prefix: 'fmc-lock:' + prefix,
    leasePrefix: 'fmc-lease:' + prefix,
    timeout,
    ttl: locking.duration('ttl', 10_000),
    wait: locking.duration('wait', 5000),
    ...(breaker === undefined ? {} : { breaker })
  })
}

function readL1 (read: OptionReader, option: unknown, defaults: { max: number, ttl: number, longest?: number }): { max: number, ttl: number } | undefined {
  if (option === false) return undefined
  const tier = readOptions(`${read.name} (l1)`, option)
  tier.only(['max', 'ttl'])
  const ttl = tier.duration('ttl', defaults.ttl)
  if (ttl === 0) tier.fail('ttl', 'must be greater than 0 (use l1: false for no memory tier)')
  return { max: tier.positiveInteger('max', defaults.max), ttl: Math.min(ttl, defaults.longest ?? ttl) }
}

/**
 * Waits a bounded time for the bus to listen, so that a freshly started instance uses its memory tier at once. A
 * Redis that is down at start-up does not stop the app: the tier is bypassed until the bus listens.
 */
async function subscribedWithin (bus: InvalidationBus, log: Logger, ms: number): Promise<void> {
  const listening = await withBudget('subscribe', ms, async () => await bus.subscribed).then(() => true, () => false)
  if (!listening) log.warn({}, `fastify-multi-cache: no invalidation subscription within ${ms} ms; the memory tier is bypassed until there is one`)
}

/** A cluster the plugin opens: its startup nodes, and what every connection to them takes. */
interface ClusterNodes {
  nodes: Array<{ host: string, port: number }>
  username?: string
  password?: string
  tls: boolean
  /** How the option is shown in messages, without its password. */
  shown: string
}

/**
 * The nodes of a `redis+cluster://[user:password@]host:port,host:port` URL (`rediss+cluster://` for TLS) or of a list
 * of node URLs (`redis://host:port`), which must agree on the scheme and the credentials; undefined for another option.
 */
function clusterOf (read: OptionReader, option: unknown): ClusterNodes | undefined {
  let urls: string[]
  if (typeof option === 'string' && /^rediss?\+cluster:\/\//.test(option)) {
    const [, scheme, credentials = '', hosts] = /^(rediss?)\+cluster:\/\/(?:([^@/]*)@)?([^/?#]*)/.exec(option) as RegExpExecArray
    urls = (hosts as string).split(',').map((host) => `${scheme as string}://${credentials === '' ? '' : credentials + '@'}${host}`)
  } else if (Array.isArray(option) && option.length > 0 && option.every((url) => typeof url === 'string' && /^rediss?:\/\//.test(url))) {
    urls = option as string[]
  } else {
    return undefined
  }
  const parsed = urls.map((url) => {
    try {
      return new URL(url)
    } catch {
      return read.fail('store', 'must list each node of a cluster as host:port', option)
    }
  })
  const [first] = parsed as [URL, ...URL[]]
  if (parsed.some((url) => url.protocol !== first.protocol || url.username !== first.username || url.password !== first.password || url.hostname === '')) {
    read.fail('store', "must give a cluster's nodes with one scheme and the same credentials", parsed.map((url) => url.host).join(','))
  }
  return {
    nodes: parsed.map((url) => ({ host: url.hostname, port: Number(url.port === '' ? 6379 : url.port) })),
    ...(first.username === '' ? {} : { username: decodeURIComponent(first.username) }),
    ...(first.password === '' ? {} : { password: decodeURIComponent(first.password) }),
    tls: first.protocol === 'rediss:',
    shown: `${first.protocol.slice(0, -1)}+cluster://${parsed.map((url) => url.host).join(',')}`
  }
}

/**
 * The client of a `redis://` URL, or of a cluster's nodes, connected within `within` ms. A Redis that has not answered
 * by then does not stop the app unless `required`: the client goes on reconnecting, as an app's own client does, every
 * command fails at once meanwhile (no offline queue), so the level answers without it, and `unreachable` says so for
 * the level's log.
 */
async function openRedis (plugin: string, url: string | ClusterNodes, within: number, required: boolean): Promise<{ client: RedisClient, unreachable?: string }> {
  const { Redis, Cluster } = await import('ioredis')
  const client = typeof url === 'string'
    ? new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1, lazyConnect: true })
    : new Cluster(url.nodes, {
      enableOfflineQueue: false,
      lazyConnect: true,
      redisOptions: {
        maxRetriesPerRequest: 1,
        ...(url.username === undefined ? {} : { username: url.username }),
        ...(url.password === undefined ? {} : { password: url.password }),
        ...(url.tls ? { tls: {} } : {})
      }
    })
  // Retried by ioredis, and operations report their own failures; the last one says why the connection failed, where
  // connect() only says that it closed.
  let met: Error | undefined
  client.on('error', (error: Error) => { met = error })
  const failure = await withBudget('connect', within, async () => {
    await client.connect()
    // A cluster connects to each master at the first command sent there: opened here, the first requests do not pay
    // for it within their time budget.
    if (client instanceof Cluster) await Promise.all(client.nodes('master').map(async (node) => await node.ping()))
  }).then(() => undefined, (error: unknown) => met?.message ?? describeFailure(error))
  const opened = client as unknown as RedisClient
  if (failure === undefined) return { client: opened }
  const shown = typeof url === 'string' ? url.replace(/\/\/[^@/]*@/, '//***@') : url.shown
  if (required) {
    client.disconnect()
    throw new StoreUnreachableError(plugin, shown, failure)
  }
  return {
    client: opened,
    unreachable: `${plugin}: the Redis at ${shown} did not answer at start-up (${failure}); starting without it: until it answers, reads miss and writes fail at once, and it is used as soon as it answers (requireStore: true fails the start instead)`
  }
}

/** What a connection met, as a message says it: the client's own error rather than the budget's wrapping. */
function describeFailure (error: unknown): string {
  const cause = error instanceof Error && error.cause instanceof Error ? error.cause : error
  return messageOf(cause)
}

function isRedisClient (value: unknown): value is RedisClient {
  const client = value as { callBuffer?: unknown, duplicate?: unknown, status?: unknown } | null
  return typeof client?.callBuffer === 'function' && typeof client.duplicate === 'function' && typeof client.status === 'string'
}

function isKeyv (value: unknown): value is KeyvLike {
  const keyv = value as { opts?: unknown, hooks?: unknown, get?: unknown } | null
  return typeof keyv?.opts === 'object' && typeof keyv.hooks === 'object' && typeof keyv.get === 'function'
}
