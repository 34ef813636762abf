import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { Duration } from '../lib/durations.js'
import { InvalidOptionError, describe } from '../lib/errors.js'
import { callTtl, readOptions } from '../lib/options.js'
import { matchesEtag, replayBody, toCachedResponse, type CachedResponse } from '../lib/response-cache.js'

/** `config.cache` of a route: store whole responses at a level and replay them without the handler. */
export interface RouteCacheConfig {
  /** Where responses are kept: shared by every user, or per session. */
  level: 'app' | 'session'
  /** Time to live of a stored response: ms or a duration string. Default: the level's default. */
  ttl?: Duration
  /** The cache key. Default: method + URL (within the session at session level). */
  key?: (request: FastifyRequest) => string
  /**
   * At application level, also store responses to requests that carry `Authorization` or a session cookie. Only
   * for routes whose response is the same for every user. Default false.
   */
  shared?: boolean
  /** Methods whose responses are stored. Default `['GET', 'HEAD']`. */
  methods?: string[]
  /** Status codes that are stored. Default `[200]`. */
  statusCodes?: number[]
}

export interface RouteCacheOptions {
  /** Add `x-cache: HIT-APP | HIT-SESSION | MISS` to cached routes' responses. Default true. */
  xCacheHeader?: boolean
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Cache this route's whole responses (see `RouteCacheConfig`). */
    cache?: RouteCacheConfig
  }
}

const kPending = Symbol('fastify-multi-cache.route')
type Slot = FastifyRequest & { [kPending]: string | null }
const CONFIG_KEYS = ['level', 'ttl', 'key', 'shared', 'methods', 'statusCodes']

const plugin: FastifyPluginAsync<RouteCacheOptions> = async (fastify, options) => {
  const read = readOptions('routeCache', options)
  read.only(['xCacheHeader'])
  const xCache = options.xCacheHeader ?? true
  if (typeof xCache !== 'boolean') read.fail('xCacheHeader', 'must be a boolean')
  fastify.decorateRequest(kPending, null)

  // Only routes that opt in get hooks: every other route pays nothing for this plugin.
  fastify.addHook('onRoute', (route) => {
    const config = route.config?.cache
    if (config === undefined) return
    const rule = compile(fastify, route, config)
    route.onRequest = [...asArray(route.onRequest), async function lookup (request, reply) {
      await rule.lookup(request, reply)
    }]
    route.onSend = [...asArray(route.onSend), async function store (request, reply, payload) {
      await rule.store(request, reply, payload)
      return payload
    }]
  })

  function compile (app: FastifyInstance, route: RouteOptions, config: RouteCacheConfig) {
    const where = `routeCache (${String(route.method)} ${route.url})`
    const check = readOptions(where, config)
    check.only(CONFIG_KEYS)
    if (config.level !== 'app' && config.level !== 'session') check.fail('level', "must be 'app' or 'session'")
    const level = config.level
    if (level === 'app' ? !app.hasDecorator('appCache') : !app.hasRequestDecorator('sessionCache')) {
      throw new InvalidOptionError(where, 'level', `needs the ${level === 'app' ? 'appCache' : 'sessionCache'} plugin registered before the route`, describe(level))
    }
    const ttl = config.ttl === undefined ? undefined : { ttl: callTtl(where, config, 0) }
    const keyOf = check.optionalFunction<(request: FastifyRequest) => string>('key')
    const methods = new Set((config.methods ?? ['GET', 'HEAD']).map((m) => String(m).toUpperCase()))
    const statuses = new Set(config.statusCodes ?? [200])
    const shared = config.shared === true
    const hit = level === 'app' ? 'HIT-APP' : 'HIT-SESSION'
    const sessionCookie = app.multiCache?.sessionCookie

    // A request that may get a personal page is neither answered from nor stored at the application level.
    const personal = (request: FastifyRequest): boolean => {
      if (request.headers.authorization !== undefined) return true
      const cookies = request.headers.cookie
      if (cookies === undefined) return false
      return sessionCookie === undefined || cookies.includes(sessionCookie + '=')
    }

    return {
      async lookup (request: FastifyRequest, reply: FastifyReply): Promise<void> {
        if (!methods.has(request.method) || (level === 'app' && !shared && personal(request))) return
        const key = 'route:' + (keyOf === undefined ? request.method + ' ' + request.url : keyOf(request))
        const session = level === 'session' ? request.sessionCache : undefined
        const entry = await (session === undefined ? app.appCache.get<CachedResponse>(key) : session.get<CachedResponse>(key))
        // No session yet: caching would create one for every visitor, so the route runs uncached.
        if (session !== undefined && session.id === undefined) return
        if (entry === undefined) {
          (request as Slot)[kPending] = key
          return
        }
        if (xCache) reply.header('x-cache', hit)
        reply.header('etag', entry.etag)
        if (matchesEtag(request.headers['if-none-match'], entry.etag)) {
          await reply.code(304).send()
          return
        }
        await reply.code(entry.status).headers(entry.headers).send(replayBody(entry))
      },

      async store (request: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<void> {
        const key = (request as Slot)[kPending]
        if (key === null) return
        (request as Slot)[kPending] = null
        if (xCache) reply.header('x-cache', 'MISS')
        if (!statuses.has(reply.statusCode)) return
        const entry = toCachedResponse(reply.statusCode, reply.getHeaders(), payload, level === 'session')
        if (entry === undefined) return
        reply.header('etag', entry.etag)
        if (level === 'app') await app.appCache.set(key, entry, ttl)
        else await request.sessionCache.set(key, entry, ttl)
      }
    }
  }
}

function asArray<T> (value: T | T[] | undefined): T[] {
  if (value === undefined) return []
  return Array.isArray(value) ? value : [value]
}

/** Route response caching: `config: { cache: { level, ttl, key, shared } }` on a route. */
export const routeCache = fp(plugin, { fastify: '5.x', name: 'fastify-multi-cache/route' })
export default routeCache
