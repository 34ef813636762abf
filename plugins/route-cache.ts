import type {
  FastifyPluginAsync, FastifyReply, FastifyRequest, FastifySchema, FastifyTypeProvider, FastifyTypeProviderDefault, RawRequestDefaultExpression,
  RawServerDefault, RouteGenericInterface, RouteOptions, onErrorHookHandler, onSendHookHandler
} from 'fastify'
import fp from 'fastify-plugin'
import type { Duration } from '../lib/durations.js'
import { InvalidKeyError, InvalidOptionError, describe } from '../lib/errors.js'
import { isNotModified, notModifiedHeaders } from '../lib/http/conditional.js'
import type { HeaderMap } from '../lib/http/headers.js'
import { forwardStatus, hitStatus, type RouteReason } from '../lib/http/cache-status.js'
import { credentialsOf, pathOf, responseKey, routeIdentity, targetOf, type IgnoredCookies } from '../lib/http/request.js'
import { ageOf, fromRecord, privateCacheControl, responseTime, storable, toCachedResponse, toRecord, withOwnArrays, type CachedResponse, type ResponseRecord, type StorePolicy } from '../lib/http/response.js'
import { findVariant, withVariant, type StoredVariants } from '../lib/http/variants.js'
import { observeLookup, type CacheOperation } from '../lib/events.js'
import { KeyRule } from '../lib/keys.js'
import { readOptions, type OptionReader } from '../lib/options.js'
import { exposeMetrics, type MetricsOptions } from './metrics.js'
import { ResponseCache } from '../lib/response-cache.js'
import { readRouteRule, type RouteConfig, type RouteRule } from '../lib/route-config.js'
import type { KeptVersions } from '../lib/tags.js'
import { addLevel, levelsOf } from './levels.js'
import { asArray, beforeHandler, bracketOnSend } from './route-hooks.js'
import { declaredRoutes } from './route-table.js'

/**
 * `config.cache` of a route: store whole responses and replay them without running the handler. Its `key` and `tags`
 * callbacks get the route's request: name the route's generics (and, with a type provider, its schema and provider)
 * through `cacheConfig<RouteGeneric>({ … })`, since Fastify types `config` alike for every route.
 */
export interface RouteCacheConfig<
  RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault
> extends RouteConfig<FastifyRequest<RouteGeneric, RawServerDefault, RawRequestDefaultExpression, SchemaCompiler, TypeProvider>> {}

/**
 * A route's `config.cache` whose `key` and `tags` callbacks get the request typed as the route's handler gets it:
 * `cacheConfig<{ Params: { id: string } }>({ level: 'app', key: (request) => request.params.id })`. The generics are
 * the route's own, in Fastify's order: `RouteGeneric` (as given to `app.get<…>`), then, for a schema read by a type
 * provider, `SchemaCompiler` (`typeof schema`) and `TypeProvider`. It returns `config` itself: only its type changes.
 */
export function cacheConfig<
  RouteGeneric extends RouteGenericInterface = RouteGenericInterface,
  SchemaCompiler extends FastifySchema = FastifySchema,
  TypeProvider extends FastifyTypeProvider = FastifyTypeProviderDefault
> (config: RouteCacheConfig<RouteGeneric, SchemaCompiler, TypeProvider>): RouteCacheConfig {
  // Fastify types `config` alike for every route, so what `config.cache` takes is the plain request's; the callbacks
  // are called with the route's own request, which is what their type says.
  return config as RouteCacheConfig
}

export interface RouteCacheOptions {
  /** Add `x-cache: HIT-APP | HIT-SESSION | STALE | MISS | BYPASS` to cached routes' responses. Default true. */
  xCacheHeader?: boolean
  /**
   * Add the standard `Cache-Status` header (RFC 9211) to cached routes' responses: a hit with its ttl, or why the
   * handler ran and whether its response was stored (`detail` names the reason when it was not). Default true.
   */
  cacheStatusHeader?: boolean
  /**
   * Cookies that are not credentials (analytics, consent, preferences), by name or pattern: a request that carries
   * only those is still served from and stored into the application level. Any other cookie, and the session level's
   * own, still bypass. A page that varies on an ignored cookie must say so in `Vary`, or not be cached. Default none.
   */
  ignoreCookies?: Array<string | RegExp>
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
  /** Why the cache forwarded the request to the handler (`Cache-Status`'s `fwd`). */
  fwd: 'uri-miss' | 'stale'
  /** Why what the handler produced cannot be stored, when `produced` is undefined. */
  unproduced: RouteReason
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
const OPTIONS = ['xCacheHeader', 'cacheStatusHeader', 'ignoreCookies', 'ttl', 'max', 'maxSize', 'maxVariants', 'metrics', 'logKeys']

const plugin: FastifyPluginAsync<RouteCacheOptions> = async (fastify, options) => {
  const read = readOptions('routeCache', options)
  read.only(OPTIONS)
  const xCache = read.boolean('xCacheHeader', true)
  const cacheStatus = read.boolean('cacheStatusHeader', true)
  const ignoredNames = readIgnoredCookies(read, options.ignoreCookies)
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
  fastify.decorateRequest(kPending, null)
  // The session level's cookie is a credential whatever the list says; it is known once every plugin is registered.
  let ignored: IgnoredCookies | undefined
  fastify.addHook('onReady', async () => {
    if (ignoredNames === undefined) return
    const session = levelsOf(fastify).session?.options.cookieName
    ignored = { ...ignoredNames, always: new Set(session === undefined ? [] : [session]) }
  })
  let toldOfSessionPlugin = false
  const lastPreHandlers: Array<{ where: string, route: RouteOptions, lookup: unknown }> = []
  // Each method and URL this plugin was shown, for finding at `onReady` the cached routes it never saw.
  const shown = new Set<string>()

  // Only routes that opt in get hooks: every other route pays nothing for this plugin.
  fastify.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) shown.add(`${method} ${route.url}`)
    const config = route.config?.cache
    if (config === undefined) return
    const where = `routeCache (${String(route.method)} ${route.url})`
    const rule = readRouteRule<FastifyRequest>(where, config, ttl)
    if (rule.level === 'session' && !fastify.hasPlugin('fastify-multi-cache/session')) {
      throw new InvalidOptionError(where, 'level', "'session' needs the sessionCache plugin registered before the route", describe(rule.level))
    }
    if (rule.tags !== undefined && levelsOf(fastify).app === undefined) {
      throw new InvalidOptionError(where, 'tags', 'need the appCache plugin registered before the route (its invalidateTag drops tagged responses)', describe(rule.tags))
    }
    const identity = routeIdentity(route.url, route.constraints)
    if (rule.level === 'app') cache.addRoute(route.url, rule.key === undefined ? pathOf : (target) => target)
    const { lookup, handled, capture, decide, failed } = hooksOf(identity, rule, route.url, `${String(route.method)} ${route.url}`)
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

  // A route declared before this plugin's onRoute hook existed, or where it does not reach, keeps its config.cache
  // and is never cached: nothing else would say so. Read from the route table once, at start-up, never per request.
  fastify.addHook('onReady', async () => {
    // By URL: a GET and the HEAD route Fastify adds beside it are two routes, and one line.
    const missed = new Map<string, string[]>()
    for (const { methods, url, config } of declaredRoutes(fastify)) {
      if (config.cache === undefined) continue
      for (const method of methods) if (!shown.has(`${method} ${url}`)) missed.set(url, [...missed.get(url) ?? [], method])
    }
    for (const [url, methods] of missed) {
      const route = `${methods.join(', ')} ${url}`
      fastify.log.warn({ route }, `routeCache: ${route} has config.cache but is not cached: it was declared before routeCache was registered, or in a plugin context routeCache does not reach. Register routeCache (or multiCache) and await it before declaring cached routes`)
    }
  })

  function hooksOf (identity: string, rule: RouteRule<FastifyRequest>, url: string, name: string): Hooks {
    const app = rule.level === 'app'
    const hit = app ? 'HIT-APP' : 'HIT-SESSION'
    const policy: StorePolicy = { shared: app, statusCodes: rule.statusCodes, ttl: rule.ttl }
    const tagsOf = (request: FastifyRequest): readonly string[] | undefined => typeof rule.tags === 'function' ? readTags(rule.tags(request)) : rule.tags

    const keyOf = (request: FastifyRequest): string => {
      const target = rule.key === undefined ? targetOf(request.url, rule.query, request.query) : customKey(rule.key(request))
      // The host as the handler sees it, case included: a handler may tell `SHOP-A` from `shop-a`, so the key must.
      return responseKey(identity, request.method, request.protocol + '://' + request.host, target)
    }

    // The reasons this route already told the app of, so that a client repeating a bad request cannot flood the log.
    const toldOfUnusable = new Set<string>()
    /**
     * What the route's `key` or `tags` function made of this request, or undefined when it is not usable (a key past
     * `maxKeyLength`, an empty tag): such a value comes from what the client sent, so the request runs uncached rather
     * than fail. The first time, the app is told why at `warn`.
     */
    function derived<T> (request: FastifyRequest, reason: 'invalid-key' | 'invalid-tags', derive: (request: FastifyRequest) => T): T | undefined {
      try {
        return derive(request)
      } catch (error) {
        if (!(error instanceof InvalidKeyError || error instanceof InvalidOptionError)) throw error
        if (!toldOfUnusable.has(reason)) {
          toldOfUnusable.add(reason)
          request.log.warn({ route: name, err: error }, `routeCache: a request of ${name} runs uncached (${reason}): ${error.message}`)
        }
        return undefined
      }
    }
    function bypass (request: FastifyRequest, reply: FastifyReply, reason: RouteReason): undefined {
      cache.uncached(reason, name, request.log)
      if (xCache) reply.header('x-cache', 'BYPASS')
      if (cacheStatus) reply.header('cache-status', forwardStatus(reason === 'method' ? 'method' : 'bypass', reason))
      return undefined
    }

    async function lookup (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> {
      if (!rule.methods.has(request.method)) return bypass(request, reply, 'method')
      if (app && !rule.shared) {
        const credentials = credentialsOf(request.headers, ignored)
        if (credentials !== undefined) return bypass(request, reply, credentials)
      }
      const op = observeLookup('route', 'get', request.method + ' ' + (request.url.split(/[?;#]/, 1)[0] as string), undefined, cache)
      if (op === undefined) return await serve(request, reply)
      op.route = url
      return await op.promise(async () => await serve(request, reply, op))
    }

    /** Answers from the cache, or marks the response to be stored once the handler has produced it. */
    async function serve (request: FastifyRequest, reply: FastifyReply, op?: CacheOperation): Promise<FastifyReply | undefined> {
      const key = derived(request, 'invalid-key', keyOf)
      if (key === undefined) return bypass(request, reply, 'invalid-key')
      // A session's records count in epoch ms (see `ResponseRecord`); a response held in memory, on its own clock.
      const epoch = Date.now()
      const now = responseTime(epoch)
      let found: CachedResponse | undefined
      if (app) {
        found = cache.find(key, request.headers, now)
      } else {
        const pages = await request.sessionCache.pagesOf(key)
        // No session: caching would create one for every visitor, so the route runs uncached.
        if (request.sessionCache.id === undefined) return bypass(request, reply, 'no-session')
        const stored = variantsOf(pages as SessionPages)
        const record = stored === undefined ? undefined : findVariant(stored, request.headers, epoch)
        found = record === undefined ? undefined : fromRecord(record)
      }
      if (found?.tags !== undefined && !fastify.appCache.tags.current(found.tags, found.tagVersions ?? [], found.tagEpoch)) found = undefined
      // A stale response: the first request to find it runs the handler to refresh it, the others are served it.
      const stale = found?.fresh !== undefined && now >= found.fresh
      const refreshing = stale ? (app ? '' : `${String(request.sessionCache.id)}\n`) + key : undefined
      if (found === undefined || (refreshing !== undefined && cache.refresh(refreshing, now, rule.ttl))) {
        op?.missed()
        cache.stats.misses++
        cache.log.miss(key, request.log)
        const tags = rule.tags === undefined ? undefined : derived(request, 'invalid-tags', tagsOf)
        if (tags === undefined && rule.tags !== undefined) return bypass(request, reply, 'invalid-tags')
        ;(request as Slot)[kPending] = {
          key,
          since: cache.since,
          setBefore: reply.getHeaders(),
          fromHandler: false,
          produced: undefined,
          tags,
          versions: tags === undefined ? undefined : fastify.appCache.tags.of(tags),
          refreshing,
          fwd: stale ? 'stale' : 'uri-miss',
          unproduced: 'error'
        }
        return undefined
      }
      cache.stats.hits++
      op?.found(stale)
      if (stale) cache.stats.staleServed++
      reply.header('age', ageOf(found, now))
      if (xCache) reply.header('x-cache', stale ? 'STALE' : hit)
      if (cacheStatus) reply.header('cache-status', hitStatus(Math.floor(((found.fresh ?? found.expires) - now) / 1000)))
      const headers = withOwnArrays(app ? found.headers : { ...found.headers, 'cache-control': privateCacheControl(found.headers['cache-control']) })
      if (isNotModified(request.method, request.headers, found)) reply.code(304).headers(notModifiedHeaders({ ...found, headers })).send()
      else reply.code(found.status).headers(headers).header('etag', found.etag).send(found.body)
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
        pending.unproduced = !pending.fromHandler ? 'error' : request.method === 'HEAD' ? 'head' : 'stream'
        pending.produced = pending.fromHandler && request.method !== 'HEAD' && bytes
          ? { status: reply.statusCode, headers: withOwnArrays(reply.getHeaders()), payload }
          : undefined
      }
      done(null, payload)
    }

    // The last onSend hook: the response as sent decides whether what the handler produced is stored.
    function decide (request: FastifyRequest, reply: FastifyReply, payload: unknown, done: (error: null, payload: unknown) => void): void {
      const pending = (request as Slot)[kPending]
      ;(request as Slot)[kPending] = null
      if (pending !== null) {
        // A page of one user's session: no shared cache in front may keep it.
        if (!app) reply.header('cache-control', privateCacheControl(reply.getHeader('cache-control')))
        const outcome = pending.produced === undefined ? pending.unproduced : keep(request, reply, pending, pending.produced)
        if (outcome !== 'stored') refused(request, outcome)
        if (cacheStatus) reply.header('cache-status', forwardStatus(pending.fwd, outcome))
        if (pending.refreshing !== undefined) cache.refreshed(pending.refreshing)
      }
      done(null, payload)
    }

    function refused (request: FastifyRequest, reason: RouteReason): void {
      cache.uncached(reason, name, request.log)
      if (reason !== 'set-cookie' || toldOfSessionPlugin || !fastify.hasPlugin('@fastify/session')) return
      toldOfSessionPlugin = true
      request.log.warn({ route: name }, `routeCache: responses of ${name} carry a Set-Cookie and are not stored; @fastify/session is registered, and with saveUninitialized: true (its default) it sets a cookie on every response: register it with saveUninitialized: false`)
    }

    /** Stores what the handler produced if the response as sent allows it: 'stored', or why not. */
    function keep (request: FastifyRequest, reply: FastifyReply, pending: Pending, produced: NonNullable<Pending['produced']>): 'stored' | RouteReason {
      const now = Date.now()
      const verdict = storable(reply.statusCode, reply.getHeaders(), policy, now, produced.headers)
      if (typeof verdict === 'string') return verdict
      // A session the handler read, found by an id the request carries where no cookie shows it (`getSessionId` from a
      // header): the response may be that user's, so it is not kept for everyone.
      if (app && !rule.shared && levelsOf(fastify).session !== undefined && request.sessionCache.id !== undefined) return 'session'
      // Epoch ms for the headers and a session's records; the response held in memory counts on its own clock.
      const at = responseTime(now)
      const response = toCachedResponse(produced.status, produced.headers, produced.payload, at, verdict.lifetime, pending.setBefore, rule.staleWhileRevalidate)
      if (pending.tags !== undefined && pending.tags.length > 0 && pending.versions !== undefined) {
        response.tags = [...pending.tags]
        response.tagVersions = pending.versions.versions
        if (pending.versions.epoch !== undefined) response.tagEpoch = pending.versions.epoch
      }
      if (!reply.hasHeader('etag')) reply.header('etag', response.etag)
      if (app) return cache.store(pending.key, verdict.vary, request.headers, response, pending.since, at) ?? 'stored'
      // The response goes out now, whatever the store does: a failure is counted and logged, never the client's.
      const session = request.sessionCache
      session.pagesOf(pending.key).then(async (pages) => {
        const held = pages as SessionPages
        const next = withVariant(variantsOf(held), verdict.vary, request.headers, toRecord(response), cache.options.maxVariants, now)
        const [variant, record] = next.variants[0] as [string, ResponseRecord]
        // Each variant is a page of the session's: those withVariant let go (another Vary, expired, past maxVariants) go.
        const drop = held.map(([other]) => other).filter((other) => !next.variants.some(([kept]) => kept === other))
        await session.setPage(pending.key, variant, { vary: next.vary, record } satisfies SessionPage, record.expires - now, drop)
      }).catch((error: unknown) => { cache.fault('write', error, request.log) })
      return 'stored'
    }

    // An error, even one the error handler turns into a 200, is never stored: it would be served for the whole ttl.
    function failed (request: FastifyRequest, _reply: FastifyReply, _error: unknown, done: () => void): void {
      const pending = (request as Slot)[kPending]
      if (pending !== null) pending.fromHandler = false
      done()
    }

    return { lookup, handled, capture, decide, failed }
  }
}

/** `ignoreCookies`: names and patterns (without the `g` and `y` flags, which would make `test` remember). */
function readIgnoredCookies (read: OptionReader, option: unknown): Omit<IgnoredCookies, 'always'> | undefined {
  if (option === undefined) return undefined
  if (!Array.isArray(option) || !option.every((name) => (typeof name === 'string' && name !== '') || name instanceof RegExp)) {
    read.fail('ignoreCookies', 'must be an array of cookie names (non-empty strings) and regular expressions')
  }
  const entries = option as Array<string | RegExp>
  return {
    names: new Set(entries.filter((name): name is string => typeof name === 'string')),
    patterns: entries.filter((name): name is RegExp => name instanceof RegExp).map((pattern) => new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, '')))
  }
}

/** One variant of a page as the session keeps it: the names its response varies on, and the response. */
interface SessionPage {
  vary: string[]
  record: ResponseRecord
}
type SessionPages = Array<[variant: string, page: SessionPage]>

/** A session's variants of one key, newest first, as the stored variants of the application level's cache. */
function variantsOf (pages: SessionPages): StoredVariants<ResponseRecord> | undefined {
  const newest = pages[0]
  if (newest === undefined) return undefined
  return { vary: newest[1].vary, variants: pages.map(([variant, page]) => [variant, page.record]) }
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
