import type { FastifyPluginAsync, FastifyReply, FastifyRequest, RouteOptions, onErrorHookHandler, onSendHookHandler } from 'fastify'
import fp from 'fastify-plugin'
import type { Duration } from '../lib/durations.js'
import { InvalidOptionError, describe } from '../lib/errors.js'
import { isNotModified, notModifiedHeaders } from '../lib/http/conditional.js'
import type { HeaderMap } from '../lib/http/headers.js'
import { isAnonymous, pathOf, responseKey, routeIdentity, targetOf } from '../lib/http/request.js'
import { ageOf, fromRecord, storable, toCachedResponse, toRecord, type CachedResponse, type ResponseRecord, type StorePolicy } from '../lib/http/response.js'
import { expiresOf, findVariant, withVariant, type StoredVariants } from '../lib/http/variants.js'
import { KeyRule } from '../lib/keys.js'
import { readOptions } from '../lib/options.js'
import { exposeMetrics, type MetricsOptions } from './metrics.js'
import { ResponseCache } from '../lib/response-cache.js'
import { readRouteRule, type RouteConfig, type RouteRule } from '../lib/route-config.js'
import type { KeptVersions } from '../lib/tags.js'
import { addLevel } from './levels.js'
import { asArray, beforeHandler, bracketOnSend } from './route-hooks.js'

/** `config.cache` of a route: store whole responses and replay them without running the handler. */
export interface RouteCacheConfig extends RouteConfig<FastifyRequest> {}

export interface RouteCacheOptions {
  /** Add `x-cache: HIT-APP | HIT-SESSION | MISS | BYPASS` to cached routes' responses. Default true. */
  xCacheHeader?: boolean
  /** Time to live of a stored response whose route sets none: ms or a duration string. Default `'1m'`. */
  ttl?: Duration
  /** Most URLs whose responses are held at the application level. Default 1,000. */
  max?: number
  /** Most bytes of responses held at the application level. Default 32 MiB. */
  maxSize?: number
  /** Most variants of one URL (one per combination of the values of the headers its `Vary` names). Default 8. */
  maxVariants?: number
  /** Prometheus series of route caching (`level="route"`) on `registry`, read at scrape time. */
  metrics?: MetricsOptions
  /** false: log lines show a short hash of each key (method, host, path and query) instead of the key. Default true. */
  logKeys?: boolean
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Cache this route's whole responses (see `RouteCacheConfig`). */
    cache?: RouteCacheConfig
  }
  interface FastifyInstance {
    /** Route response caching at the application level: `invalidate(route, url?)` and its counters. */
    routeCache: ResponseCache
  }
}

/**
 * What a miss hands from the lookup to the response: where to store it, the generation it started under, the headers
 * the reply had then (set again by their hooks on every request, so not stored), and what the handler produced.
 */
interface Pending {
  key: string
  since: number
  setBefore: HeaderMap
  /** True once the route's handler runs, false again if it fails: only a response it produced is stored. */
  fromHandler: boolean
  /** The status, headers and payload as the handler produced them, before the route's onSend hooks. */
  produced: { status: number, headers: HeaderMap, payload: string | Buffer } | undefined
  /** The response's tags, and their versions before the handler ran. */
  tags: readonly string[] | undefined
  versions: KeptVersions | undefined
  /** This request refreshes a stale response: until it is done, others are served the stale one. */
  refreshing: string | undefined
}

interface Hooks {
  lookup: (request: FastifyRequest, reply: FastifyReply) => Promise<FastifyReply | undefined>
  handled: (request: FastifyRequest) => void
  capture: onSendHookHandler
  decide: onSendHookHandler
  failed: onErrorHookHandler
}

const kPending = Symbol('fastify-multi-cache.route')
type Slot = FastifyRequest & { [kPending]: Pending | null }
const OPTIONS = ['xCacheHeader', 'ttl', 'max', 'maxSize', 'maxVariants', 'metrics', 'logKeys']

const plugin: FastifyPluginAsync<RouteCacheOptions> = async (fastify, options) => {
  const read = readOptions('routeCache', options)
  read.only(OPTIONS)
  const xCache = options.xCacheHeader ?? true
  if (typeof xCache !== 'boolean') read.fail('xCacheHeader', 'must be a boolean')
  const ttl = read.duration('ttl', 60_000)
  if (ttl === 0) read.fail('ttl', 'must be greater than 0: a stored response always expires')
  const cache = new ResponseCache({
    max: read.positiveInteger('max', 1000),
    maxSize: read.positiveInteger('maxSize', 32 * 1024 * 1024),
    maxVariants: read.positiveInteger('maxVariants', 8),
    log: fastify.log,
    logKeys: read.boolean('logKeys', true)
  })
  addLevel(fastify, 'route', cache)
  exposeMetrics(fastify, read, options.metrics, [['route', cache.stats]])
  fastify.decorate('routeCache', cache)
  fastify.decorateRequest(kPending, null)
  const lastPreHandlers: Array<{ where: string, route: RouteOptions, lookup: unknown }> = []

  // Only routes that opt in get hooks: every other route pays nothing for this plugin.
  fastify.addHook('onRoute', (route) => {
    const config = route.config?.cache
    if (config === undefined) return
    const where = `routeCache (${String(route.method)} ${route.url})`
    const rule = readRouteRule<FastifyRequest>(where, config, ttl)
    if (rule.level === 'session' && !fastify.hasPlugin('fastify-multi-cache/session')) {
      throw new InvalidOptionError(where, 'level', "'session' needs the sessionCache plugin registered before the route", describe(rule.level))
    }
    if (rule.tags !== undefined && !fastify.hasDecorator('appCache')) {
      throw new InvalidOptionError(where, 'tags', 'need the appCache plugin registered before the route (its invalidateTag drops tagged responses)', describe(rule.tags))
    }
    const identity = routeIdentity(route.url, route.constraints)
    if (rule.level === 'app') cache.addRoute(route.url, rule.key === undefined ? pathOf : (target) => target)
    const { lookup, handled, capture, decide, failed } = hooksOf(identity, rule)
    if (rule.hook === 'onRequest') {
      // A preParsing hook runs after every onRequest hook, those a plugin registered later adds included.
      route.preParsing = [lookup, ...asArray(route.preParsing)]
    } else {
      route.preHandler = [...asArray(route.preHandler), lookup]
      lastPreHandlers.push({ where, route, lookup })
    }
    beforeHandler(route, handled)
    route.onError = [...asArray(route.onError), failed]
    // What is stored is what the handler produced, and a hit goes through the same hooks again, so that each client
    // gets its own encoding; whether it is stored depends on the headers as sent, after every hook.
    bracketOnSend(route, capture, decide)
  })

  // A plugin registered later may add preHandlers through its own onRoute hook, after the lookup: a hit would skip them.
  fastify.addHook('onReady', async () => {
    for (const { where, route, lookup } of lastPreHandlers) {
      if (asArray(route.preHandler).at(-1) !== lookup) {
        throw new InvalidOptionError(where, 'hook', 'is \'preHandler\', so the lookup must run last, but a plugin registered after routeCache added a preHandler to this route: register that plugin first', describe('preHandler'))
      }
    }
  })

  function hooksOf (identity: string, rule: RouteRule<FastifyRequest>): Hooks {
    const app = rule.level === 'app'
    const hit = app ? 'HIT-APP' : 'HIT-SESSION'
    const policy: StorePolicy = { shared: app, statusCodes: rule.statusCodes, ttl: rule.ttl }
    const tagsOf = (request: FastifyRequest): readonly string[] | undefined => typeof rule.tags === 'function' ? readTags(rule.tags(request)) : rule.tags

    const keyOf = (request: FastifyRequest): string => {
      const target = rule.key === undefined ? targetOf(request.url, rule.query, request.query) : customKey(rule.key(request))
      return responseKey(identity, request.method, request.protocol + '://' + request.host.toLowerCase(), target)
    }

    async function lookup (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
      if (!rule.methods.has(request.method) || (app && !rule.shared && !isAnonymous(request.headers))) return bypass(reply)
      const key = keyOf(request)
      const now = Date.now()
      let found: CachedResponse | undefined
      if (app) {
        found = cache.find(key, request.headers, now)
      } else {
        const page = await request.sessionCache.getPage(key) as StoredVariants<ResponseRecord> | undefined
        // No session: caching would create one for every visitor, so the route runs uncached.
        if (request.sessionCache.id === undefined) return bypass(reply)
        const record = page === undefined ? undefined : findVariant(page, request.headers, now)
        found = record === undefined ? undefined : fromRecord(record)
      }
      if (found?.tags !== undefined && !fastify.appCache.tags.current(found.tags, found.tagVersions ?? [], found.tagEpoch)) found = undefined
      // A stale response: the first request to find it runs the handler to refresh it, the others are served it.
      const stale = found?.fresh !== undefined && now >= found.fresh
      const refreshing = stale ? (app ? '' : `${String(request.sessionCache.id)}\n`) + key : undefined
      if (found === undefined || (refreshing !== undefined && cache.refresh(refreshing, now, rule.ttl))) {
        cache.stats.misses++
        cache.log.miss(key, request.log)
        const tags = tagsOf(request)
        ;(request as Slot)[kPending] = {
          key,
          since: cache.since,
          setBefore: reply.getHeaders(),
          fromHandler: false,
          produced: undefined,
          tags,
          versions: tags === undefined ? undefined : fastify.appCache.tags.of(tags),
          refreshing
        }
        return undefined
      }
      cache.stats.hits++
      if (stale) cache.stats.staleServed++
      reply.header('age', ageOf(found, now))
      if (xCache) reply.header('x-cache', stale ? 'STALE' : hit)
      if (isNotModified(request.method, request.headers, found)) reply.code(304).headers(notModifiedHeaders(found)).send()
      else reply.code(found.status).headers(found.headers).header('etag', found.etag).send(found.body)
      return reply
    }

    function handled (request: FastifyRequest): void {
      const pending = (request as Slot)[kPending]
      if (pending !== null) pending.fromHandler = true
    }

    // The first onSend hook: what the handler produced, before any route-level hook (`@fastify/compress`) changes it.
    function capture (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: null, payload: unknown) => void): void {
      const pending = (request as Slot)[kPending]
      if (pending !== null) {
        if (xCache) reply.header('x-cache', 'MISS')
        // A HEAD request's handler may answer without a body: only GET fills the entry both share. A stream cannot be
        // replayed. Set on each pass: a failing hook sends the error handler's response through these hooks again.
        const bytes = typeof payload === 'string' || Buffer.isBuffer(payload)
        pending.produced = pending.fromHandler && request.method !== 'HEAD' && bytes
          ? { status: reply.statusCode, headers: reply.getHeaders(), payload }
          : undefined
      }
      done(null, payload)
    }

    // The last onSend hook: the response as sent decides whether what the handler produced is stored.
    function decide (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: null, payload: unknown) => void): void {
      const pending = (request as Slot)[kPending]
      ;(request as Slot)[kPending] = null
      if (pending?.produced !== undefined) keep(request, reply, pending, pending.produced)
      if (pending?.refreshing !== undefined) cache.refreshed(pending.refreshing)
      done(null, payload)
    }

    function keep (request: FastifyRequest, reply: FastifyReply, pending: Pending, produced: NonNullable<Pending['produced']>): void {
      const now = Date.now()
      const verdict = storable(reply.statusCode, reply.getHeaders(), policy, now, produced.headers)
      if (verdict === undefined) return
      const response = toCachedResponse(produced.status, produced.headers, produced.payload, now, verdict.lifetime, pending.setBefore, rule.staleWhileRevalidate)
      if (pending.tags !== undefined && pending.tags.length > 0 && pending.versions !== undefined) {
        response.tags = [...pending.tags]
        response.tagVersions = pending.versions.versions
        if (pending.versions.epoch !== undefined) response.tagEpoch = pending.versions.epoch
      }
      if (!reply.hasHeader('etag')) reply.header('etag', response.etag)
      if (app) {
        cache.store(pending.key, verdict.vary, request.headers, response, pending.since, now)
        return
      }
      // The response goes out now, whatever the store does: a failure is counted and logged, never the client's.
      const session = request.sessionCache
      session.getPage(pending.key).then(async (held) => {
        const page = withVariant(held as StoredVariants<ResponseRecord> | undefined, verdict.vary, request.headers, toRecord(response), cache.options.maxVariants, now)
        await session.setPage(pending.key, page, expiresOf(page) - now)
      }).catch((error: unknown) => { cache.fault('write', error, request.log) })
    }

    // An error, even one the error handler turns into a 200, is never stored: it would be served for the whole ttl.
    function failed (request: FastifyRequest, _reply: FastifyReply, _error: unknown, done: () => void): void {
      const pending = (request as Slot)[kPending]
      if (pending !== null) pending.fromHandler = false
      done()
    }

    return { lookup, handled, capture, decide, failed }
  }

  function bypass (reply: FastifyReply): undefined {
    if (xCache) reply.header('x-cache', 'BYPASS')
    return undefined
  }
}

const KEYS: KeyRule = new KeyRule()

/** Tags a route's function gave: an array of non-empty strings, or the request fails with an error that says so. */
function readTags (tags: unknown): string[] {
  if (!Array.isArray(tags) || !tags.every((tag) => typeof tag === 'string' && tag !== '')) {
    throw new InvalidOptionError('routeCache', 'tags', 'must be a function that returns an array of non-empty strings', describe(tags))
  }
  return tags as string[]
}

function customKey (key: unknown): string {
  KEYS.assert(key)
  return key
}

/** Route response caching: `config: { cache: { level, ttl, key, shared, query, hook } }` on a route. */
export const routeCache = fp(plugin, { fastify: '5.x', name: 'fastify-multi-cache/route' })
export default routeCache
export type { ResponseCache }
