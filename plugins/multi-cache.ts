import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { AlreadyRegisteredError, InvalidOptionError, describe } from '../lib/errors.js'
import { KeyRule, MAX_KEYS_PER_CALL, MAX_KEY_LENGTH } from '../lib/keys.js'
import { CacheLookup } from '../lib/lookup.js'
import type { AppCache } from '../lib/scopes/application.js'
import type { RequestCache } from '../lib/scopes/request.js'
import type { SessionCache } from '../lib/scopes/session.js'
import type { CacheLookup as TypedCacheLookup } from '../lib/typed-keys.js'
import { readOptions } from '../lib/options.js'
import { readAdvisor, startAdvisor, type AdvisorOptions } from './advisor.js'
import { appCache, type AppCacheOptions } from './app-cache.js'
import { LEVEL_PLUGINS, levelsOf, provide } from './levels.js'
import { exposeMetrics, type MetricsOptions } from './metrics.js'
import { requestCache, type RequestCacheOptions } from './request-cache.js'
import { routeCache, type RouteCacheOptions } from './route-cache.js'
import { sessionCache, type SessionCacheOptions } from './session-cache.js'

export interface MultiCacheOptions {
  /** Request level options, or `false` to leave the level out. */
  request?: RequestCacheOptions | false
  /** Session level options, or `false` to leave the level out. */
  session?: SessionCacheOptions | false
  /** Application level options, or `false` to leave the level out. */
  app?: AppCacheOptions | false
  /** Route response caching options (`config.cache` on routes), or `false` to leave it out. */
  route?: RouteCacheOptions | false
  /** Longest key `request.cache` takes, in characters (each level has its own option too). Default 1,024. */
  maxKeyLength?: number
  /** Most keys one `request.cache.getOrLoadMany` takes (each level has its own option too). Default 1,000. */
  maxKeysPerCall?: number
  /** Prometheus series of every registered level on `registry`, read at scrape time. */
  metrics?: MetricsOptions
  /** false: log lines show a short hash of each key; the default of the levels this plugin registers. Default true. */
  logKeys?: boolean
  /**
   * The level advisor: watches how keys are used and says, through `fastify.multiCache.advice()`, when one sits at the
   * wrong level, lives too short or should not be cached. `true` samples 1 in 100; `{ sampleRate }` another share
   * (0 < rate ≤ 1; 1 in development or staging). Default false.
   */
  advisor?: boolean | AdvisorOptions
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The hierarchical lookup: request → session → application → loader. */
    cache: TypedCacheLookup
  }
}

const kLookup = Symbol('fastify-multi-cache.lookup')
type Slot = FastifyRequest & { [kLookup]: CacheLookup | null }

/** Each level's plugin. */
const LEVELS = { request: requestCache, session: sessionCache, app: appCache } as const

const plugin: FastifyPluginAsync<MultiCacheOptions> = async (fastify, options) => {
  if (fastify.hasRequestDecorator(kLookup)) {
    throw new AlreadyRegisteredError('multiCache', "register it once, at the root (encapsulated plugins inherit it), with every level's options in that one registration")
  }
  const read = readOptions('multiCache', options)
  read.only([...Object.keys(LEVELS), 'route', 'maxKeyLength', 'maxKeysPerCall', 'metrics', 'logKeys', 'advisor'])
  const keys = new KeyRule(read.positiveInteger('maxKeyLength', MAX_KEY_LENGTH), read.positiveInteger('maxKeysPerCall', MAX_KEYS_PER_CALL))
  const logKeys = options.logKeys === undefined ? {} : { logKeys: read.boolean('logKeys', true) }
  const sampleRate = readAdvisor(read, options.advisor)
  for (const [name, levelPlugin] of Object.entries(LEVEL_PLUGINS)) {
    const value = (options as Record<string, unknown>)[name]
    if (value !== undefined && value !== false && (typeof value !== 'object' || value === null || Array.isArray(value))) {
      read.fail(name, `must be an object of ${levelPlugin} options ({} for the defaults) or false to leave it out`)
    }
  }
  const enabled = { request: false, session: false, app: false }
  for (const name of ['request', 'session', 'app'] as const) {
    const levelOptions = options[name]
    if (levelOptions === false) continue
    if (levelsOf(fastify)[name] !== undefined) {
      if (levelOptions !== undefined) {
        throw new InvalidOptionError('multiCache', name, `must be left out or false: ${LEVEL_PLUGINS[name]} is registered already, so pass these options to it`, describe(levelOptions))
      }
    } else {
      await fastify.register(LEVELS[name] as FastifyPluginAsync<object>, { ...logKeys, ...levelOptions })
    }
    enabled[name] = true
  }

  // It adds an onRoute hook only: routes without `config.cache` pay nothing for it.
  if (options.route !== false && !fastify.hasPlugin('fastify-multi-cache/route')) await fastify.register(routeCache, { ...logKeys, ...options.route })
  const levels = levelsOf(fastify)
  exposeMetrics(fastify, read, options.metrics, (['request', 'session', 'app', 'route'] as const).flatMap((name) => {
    const level = levels[name]
    return level === undefined ? [] : [[name, level.stats] as [string, typeof level.stats]]
  }))

  if (sampleRate !== undefined) startAdvisor(fastify, sampleRate, logKeys.logKeys ?? true)

  // The decorators hold the levels' classes, typed by the keys the app declares (see levels.ts): the lookup takes the classes.
  const app = enabled.app ? fastify.appCache as unknown as AppCache : undefined
  fastify.decorateRequest(kLookup, null)
  provide(fastify, 'cache', (request) => ((request as Slot)[kLookup] ??= new CacheLookup(
    enabled.request ? request.reqCache as unknown as RequestCache : undefined,
    enabled.session ? request.sessionCache as unknown as SessionCache : undefined,
    app,
    keys
  )))
}

/** All three levels and the hierarchical lookup `request.cache`. */
export const multiCache = fp(plugin, { fastify: '5.x', name: 'fastify-multi-cache' })
export default multiCache
