import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { MAX_KEYS_PER_CALL, MAX_KEY_LENGTH } from '../lib/keys.js'
import { readOptions } from '../lib/options.js'
import { exposeMetrics, type MetricsOptions } from './metrics.js'
import { RequestLevel, type RequestCache } from '../lib/scopes/request.js'
import type { RequestCache as TypedRequestCache } from '../lib/typed-keys.js'
import { addLevel, provide } from './levels.js'
// Kept in the emitted .d.ts, unlike the import above: it brings the declaration of `fastify.multiCache` to apps.
import './levels.js'

export interface RequestCacheOptions {
  /** Most entries one request may hold; past it the oldest is dropped. Default 10,000. */
  maxEntries?: number
  /** Longest key taken, in characters. Default 1,024. */
  maxKeyLength?: number
  /** Most keys one `loadMany` of a batch loader takes, and its default `maxBatchSize`. Default 1,000. */
  maxKeysPerCall?: number
  /** Prometheus series of this level on `registry`, read at scrape time. */
  metrics?: MetricsOptions
  /** false: log lines show a short hash of each key instead of the key. Default true. */
  logKeys?: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Data loaded once and reused while this request is handled. */
    reqCache: TypedRequestCache
  }
}

const kRequestCache = Symbol('fastify-multi-cache.request')
type Slot = FastifyRequest & { [kRequestCache]: RequestCache | null }

const plugin: FastifyPluginAsync<RequestCacheOptions> = async (fastify, options) => {
  const read = readOptions('requestCache', options)
  read.only(['maxEntries', 'maxKeyLength', 'maxKeysPerCall', 'metrics', 'logKeys'])
  const level = new RequestLevel({
    maxEntries: read.positiveInteger('maxEntries', 10_000),
    maxKeyLength: read.positiveInteger('maxKeyLength', MAX_KEY_LENGTH),
    maxKeysPerCall: read.positiveInteger('maxKeysPerCall', MAX_KEYS_PER_CALL),
    log: fastify.log,
    logKeys: read.boolean('logKeys', true)
  })
  addLevel(fastify, 'request', level)
  exposeMetrics(fastify, read, options.metrics, [['request', level.stats]])

  // A value slot in the request's shape plus a getter: a request that never touches its cache allocates nothing.
  fastify.decorateRequest(kRequestCache, null)
  provide(fastify, 'reqCache', (request) => {
    const slot = request as Slot
    if (slot[kRequestCache] === null) {
      const cache = slot[kRequestCache] = level.open(request.log)
      // A client that goes away before the response: its entries stop counting now (the handler may still use
      // them); only requests that use the cache listen.
      request.raw.once('close', () => { if (request.raw.aborted) cache.end() })
    }
    return slot[kRequestCache]
  })
  // Drop the entries as the response goes out, even if something still holds the request. onSend rather than
  // onResponse: with an onResponse hook Fastify listens to every response's end, which costs every request of the
  // app about 4 % of a bare route's CPU (benchmarks/README.md); an onSend hook that reads one field costs ~1 %.
  fastify.addHook('onSend', (request, _reply, payload, next) => {
    const cache = (request as Slot)[kRequestCache]
    if (cache !== null) cache.release()
    next(null, payload)
  })
}

/** The request level: `request.reqCache`. */
export const requestCache = fp(plugin, { fastify: '5.x', name: 'fastify-multi-cache/request' })
export default requestCache
export type { TypedRequestCache as RequestCache }
