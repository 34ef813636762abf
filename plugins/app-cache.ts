import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { Duration } from '../lib/durations.js'
import { observeDrop } from '../lib/events.js'
import { MAX_KEYS_PER_CALL, MAX_KEY_LENGTH } from '../lib/keys.js'
import { readOptions } from '../lib/options.js'
import { exposeMetrics, type MetricsOptions } from './metrics.js'
import { AppCache } from '../lib/scopes/application.js'
import type { AppCache as TypedAppCache } from '../lib/typed-keys.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { addLevel } from './levels.js'
// Kept in the emitted .d.ts, unlike the import above: it brings the declaration of `fastify.multiCache` to apps.
import './levels.js'
import { SHARED_STORE_OPTIONS, type SharedStoreOptions, type StoreOption } from '../lib/backend.js'
import { backendOf } from './stores.js'

export interface AppCacheOptions extends SharedStoreOptions {
  /** Most entries held by the memory store; the least recently used goes first. Default 10,000. */
  max?: number
  /** Default time to live of an entry: ms or a duration string. Default 0: until evicted or deleted. */
  ttl?: Duration
  /** `'memory'` (default), `'redis'` (`fastify.redis`), a Redis URL, an ioredis client, a Keyv, or a `Store`. */
  store?: StoreOption
  /** With a Redis store: one load per cold key across instances. Default false; `true` or `{ ttl, wait }`. */
  lock?: boolean | { ttl?: Duration, wait?: Duration }
  /** Longest key taken, in characters. Default 1,024. */
  maxKeyLength?: number
  /** Most keys one call of `getMany` or `getOrLoadMany` takes; a longer list is refused. Default 1,000. */
  maxKeysPerCall?: number
  /** With the memory store: most bytes held, as `sizeOf` counts them. Off by default (`max` entries bound it). */
  maxBytes?: number
  /** With `maxBytes`: a value's size in bytes. Default: the length of its JSON text. */
  sizeOf?: (value: unknown) => number
  /** After `ttl`, how long an entry is still served, at once, while one new load runs in the background. Default 0. */
  staleWhileRevalidate?: Duration
  /** After `ttl`, how long an entry stands in for a load that fails or passes `hardTimeout`. Default 0. */
  graceOnError?: Duration
  /** When a grace value exists and a load takes longer, callers get that value; the load goes on. Default 0: off. */
  softTimeout?: Duration
  /** A load that takes longer rejects its callers with `FST_MULTICACHE_LOAD_TIMEOUT` (or gets the grace value). Default 0: off. */
  hardTimeout?: Duration
  /** Prometheus series of this level on `registry`, read at scrape time. */
  metrics?: MetricsOptions
  /** false: log lines show a short hash of each key instead of the key. Default true. */
  logKeys?: boolean
}

const FRESHNESS = ['staleWhileRevalidate', 'graceOnError', 'softTimeout', 'hardTimeout'] as const

declare module 'fastify' {
  interface FastifyInstance {
    /** Global data shared by every user. */
    appCache: TypedAppCache
  }
}

const plugin: FastifyPluginAsync<AppCacheOptions> = async (fastify, options) => {
  const read = readOptions('appCache', options)
  read.only(['max', 'ttl', 'store', 'lock', 'maxKeyLength', 'maxKeysPerCall', 'maxBytes', 'sizeOf', 'metrics', 'logKeys', ...FRESHNESS, ...SHARED_STORE_OPTIONS])
  const max = read.positiveInteger('max', 10_000)
  const ttl = read.duration('ttl', 0)
  const maxBytes = read.positiveInteger('maxBytes', 0)
  const sizeOf = read.optionalFunction<(value: unknown) => number>('sizeOf')
  if (sizeOf !== undefined && maxBytes === 0) read.fail('sizeOf', 'needs maxBytes (it sizes values for that bound)')
  if (maxBytes !== 0 && options.store !== undefined && options.store !== 'memory') read.fail('maxBytes', "bounds the memory store only: a shared store's entries are bounded by maxEntryBytes")
  const backend = await backendOf(fastify, read, options, {
    prefix: 'fmc:app:',
    l1: { max: 1000, ttl: 10_000 },
    fenced: true,
    memory: () => new MemoryStore({
      max,
      ttl,
      onEvict: () => { cache.stats.evictions++ },
      // The one stream's drops (the advisor's `ttl-too-short`, `too-small`, `never-read`): a length check while nobody listens.
      onDrop: (key, _value, reason) => { observeDrop('app', key, reason, cache) },
      ...(maxBytes === 0 ? {} : { maxBytes }),
      ...(sizeOf === undefined ? {} : { sizeOf })
    })
  })
  const windows = Object.fromEntries(FRESHNESS.map((name) => [name, read.duration(name, 0)]))
  const cache: AppCache = new AppCache({
    store: backend.store,
    ttl,
    log: fastify.log,
    logKeys: read.boolean('logKeys', true),
    maxKeyLength: read.positiveInteger('maxKeyLength', MAX_KEY_LENGTH),
    maxKeysPerCall: read.positiveInteger('maxKeysPerCall', MAX_KEYS_PER_CALL),
    ...windows,
    ...(backend.lock === undefined ? {} : { lock: backend.lock })
  })
  cache.stats.breaker = backend.breaker
  cache.stats.bus = backend.bus
  if (backend.unreachable !== undefined) cache.log.warn({ operation: 'connect' }, backend.unreachable)
  addLevel(fastify, 'app', cache)
  exposeMetrics(fastify, read, options.metrics, [['app', cache.stats]])

  fastify.addHook('onReady', async () => { await cache.start() })
  fastify.addHook('onClose', async () => { cache.stop() })
}

/** The application level: `fastify.appCache`. */
export const appCache = fp(plugin, { fastify: '5.x', name: 'fastify-multi-cache/app' })
export default appCache
export type { TypedAppCache as AppCache }
