import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import { readOptions } from '../lib/options.js'
import { AppCache } from '../lib/scopes/application.js'
import { assertStore } from '../lib/store.js'
import { MemoryStore } from '../lib/stores/memory.js'
import type { Duration } from '../lib/durations.js'
import type { Store } from '../lib/store.js'
import { addLevel } from './levels.js'

export interface AppCacheOptions {
  /** Most entries held by the memory store; the least recently used goes first. Default 10,000. */
  max?: number
  /** Default time to live of an entry: ms or a duration string. Default 0: until evicted or deleted. */
  ttl?: Duration
  /** `'memory'` (default) or an object implementing `Store`. */
  store?: 'memory' | Store
}

declare module 'fastify' {
  interface FastifyInstance {
    /** Global data shared by every user. */
    appCache: AppCache
  }
}

const plugin: FastifyPluginAsync<AppCacheOptions> = async (fastify, options) => {
  const read = readOptions('appCache', options)
  read.only(['max', 'ttl', 'store'])
  const max = read.positiveInteger('max', 10_000)
  const ttl = read.duration('ttl', 0)
  const storeOption = options.store ?? 'memory'
  const store: Store = storeOption === 'memory'
    ? new MemoryStore({ max, ttl, onEvict: () => { cache.stats.evictions++ } })
    : assertStore('appCache', storeOption)
  const cache: AppCache = new AppCache({ store, ttl, log: fastify.log })
  addLevel(fastify, 'app', cache)
  fastify.decorate('appCache', cache)

  fastify.addHook('onReady', async () => { await cache.start() })
  fastify.addHook('onClose', async () => {
    cache.stop()
    // A store passed in belongs to the app, which closes it; only what this plugin created is closed here.
    if (store !== storeOption) await store.close?.()
  })
}

/** The application level: `fastify.appCache`. */
export const appCache = fp(plugin, { fastify: '5.x', name: 'fastify-multi-cache/app' })
export default appCache
export type { AppCache }
