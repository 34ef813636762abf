import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, LogLevel } from 'fastify'
import fp from 'fastify-plugin'
import { DefineError, InvalidKeyError, messageOf } from '../lib/errors.js'
import type { LevelStatsSnapshot } from '../lib/stats.js'
import { readOptions } from '../lib/options.js'
import { adviceSchema, definedSchema, invalidateSchema, keysSchema, refreshSchema, statsSchema } from './admin-schemas.js'
import { dashboardPage } from './dashboard/page.js'
import { dashboardScript } from './dashboard/script.js'
import { dashboardStyle } from './dashboard/style.js'
// Brings the declaration of `fastify.multiCache`, which the routes read.
import './levels.js'

export interface AdminOptions {
  /**
   * Decides every call before anything else runs: true lets it through. It may answer itself (a 401 with
   * `WWW-Authenticate`), or set `reply.code(401)` and return false; otherwise a refusal is a 403.
   */
  authorize: (request: FastifyRequest, reply: FastifyReply) => boolean | Promise<boolean>
  /** Where the routes and the dashboard live. Default `'/_cache'`. */
  prefix?: string
  /**
   * Log level of the read-only routes (the dashboard and its assets, `stats`, `advice`, `defined`, `keys`): Fastify's request
   * lines and the call's own line are written only at this level or above. Default `'warn'`: a dashboard polling every
   * 2 s writes nothing at `info`. The routes that change something (`refresh`, `invalidate`) log at the app's level.
   */
  logLevel?: LogLevel
}

/** The bodies and query of the admin routes. */
export interface RefreshBody { key: string }
export interface InvalidateBody { keys?: string[], tags?: string[] }
export interface KeysQuery { match: string, limit: number, cursor?: string }

/** A level's stats as `GET {prefix}/stats` shows them. */
export type AdminLevelStats = LevelStatsSnapshot & { hitRatio: number | null }

const plugin: FastifyPluginAsync<AdminOptions> = async (fastify, options) => {
  const read = readOptions('cacheAdmin', options)
  read.only(['authorize', 'prefix', 'logLevel'])
  const authorize = read.optionalFunction<AdminOptions['authorize']>('authorize') ?? read.fail('authorize', 'is required: a function (request, reply) => boolean deciding who may use the admin API')
  const prefix = options.prefix ?? '/_cache'
  if (typeof prefix !== 'string' || !/^\/[\w\-./~]*[^/]$/.test(prefix)) read.fail('prefix', "must be a path starting with '/' and not ending with one, such as '/_cache'")
  // Where the routes really are: under the prefix of the context the plugin is registered in too.
  const page = dashboardPage(fastify.prefix + prefix)
  // Reading is what the dashboard does every 2 s: at `info` an open tab would write about 3,600 lines an hour.
  const reading = { logLevel: read.oneOf('logLevel', ['warn', 'fatal', 'error', 'info', 'debug', 'trace', 'silent']) }

  await fastify.register(async (admin) => {
    admin.addHook('onRequest', async (request, reply) => {
      const allowed = await authorize(request, reply)
      if (reply.sent) return reply
      // An `authorize` that set a refusal's status and still said yes is read as a refusal.
      if (allowed !== true || reply.statusCode >= 400) return await reply.code(reply.statusCode === 401 ? 401 : 403).send({ error: 'not allowed' })
      // What it answers names keys and counts: no cache between the operator and the app may keep it.
      reply.header('cache-control', 'no-store')
      if (request.method === 'POST' && crossSite(request)) return await reply.code(403).send({ error: 'cross-site requests are refused' })
      // JSON bodies only, whatever parsers the app added (@fastify/formbody): a form on another site can post text/plain,
      // a urlencoded or a multipart body without a preflight, but not JSON.
      if (request.method === 'POST' && !isJson(request.headers['content-type'])) return await reply.code(415).send({ error: 'the body must be application/json' })
      return undefined
    })
    admin.addHook('onResponse', async (request, reply) => {
      const status = reply.statusCode
      const outcome = status === 401 || status === 403 ? 'refused' : status < 400 ? 'ok' : 'failed'
      request.log.info({ route: `${request.method} ${request.routeOptions.url ?? request.url}`, statusCode: status, outcome }, `cacheAdmin: ${request.method} ${request.routeOptions.url ?? request.url} ${outcome}`)
    })

    admin.get('/', reading, async (_request, reply) => await reply.headers(PAGE_HEADERS).type('text/html; charset=utf-8').send(page))
    admin.get('/dashboard.js', reading, async (_request, reply) => await reply.headers(ASSET_HEADERS).type('text/javascript; charset=utf-8').send(dashboardScript))
    admin.get('/dashboard.css', reading, async (_request, reply) => await reply.headers(ASSET_HEADERS).type('text/css; charset=utf-8').send(dashboardStyle))

    admin.get('/stats', { ...reading, schema: statsSchema }, async () => ({ at: Date.now(), levels: withRatios(fastify) }))

    admin.get('/advice', { ...reading, schema: adviceSchema }, async () => ({
      at: Date.now(), sampleRate: fastify.multiCache.advisor?.sampleRate ?? null, findings: fastify.multiCache.advice()
    }))

    admin.get('/defined', { ...reading, schema: definedSchema }, async () => ({ keys: fastify.multiCache.app?.defined() ?? [] }))

    admin.post<{ Body: RefreshBody }>('/refresh', { schema: refreshSchema }, async (request, reply) => {
      const cache = fastify.multiCache.app
      const { key } = request.body
      if (cache === undefined) return await reply.code(404).send({ error: 'the application level is not registered' })
      try {
        await cache.refresh(key)
      } catch (error) {
        if (error instanceof DefineError || error instanceof InvalidKeyError) return await reply.code(404).send({ error: `"${key}" is not a defined key` })
        cache.log.logger.warn({ err: cache.log.err(error, key), cacheLevel: 'app', key: cache.log.key(key) }, 'cacheAdmin: refreshing a defined key failed; the last good value stays')
        return await reply.code(502).send({ error: `the refresh failed: ${messageOf(error)}` })
      }
      const refreshed = cache.defined().find((defined) => defined.key === key)
      return { key, lastRefresh: refreshed?.lastRefresh ?? null, durationMs: refreshed?.durationMs ?? null }
    })

    admin.post<{ Body: InvalidateBody }>('/invalidate', { schema: invalidateSchema }, async (request, reply) => {
      const cache = fastify.multiCache.app
      const { keys = [], tags = [] } = request.body
      if (cache === undefined) return await reply.code(404).send({ error: 'the application level is not registered' })
      const tooLong = keys.find((key) => !cache.keys.valid(key))
      if (tooLong !== undefined) return await reply.code(400).send({ error: `a key is longer than maxKeyLength (${cache.keys.maxLength})` })
      if (keys.length > 0) await cache.invalidate(keys)
      if (tags.length > 0) await cache.invalidateTag(tags)
      return { keys: keys.length, tags: tags.length }
    })

    admin.get<{ Querystring: KeysQuery }>('/keys', { ...reading, schema: keysSchema }, async (request, reply) => {
      const cache = fastify.multiCache.app
      if (cache === undefined) return await reply.code(404).send({ error: 'the application level is not registered' })
      // Redis's cursors are unsigned 64-bit numbers: it refuses a larger one as an error, which is the caller's, not the store's.
      if (request.query.cursor !== undefined && BigInt(request.query.cursor) > MAX_CURSOR) return await reply.code(400).send({ error: 'cursor is not one a page answered' })
      const page = await cache.list(request.query)
      if (page === undefined) return await reply.code(501).send({ error: "the application level's store cannot list its keys (memory and Redis can)" })
      return { keys: page.keys, cursor: page.cursor ?? null }
    })
  }, { prefix })
}

const MAX_CURSOR = 2n ** 64n - 1n

/** Whether a Content-Type names JSON itself (`application/json`, with parameters or not). */
function isJson (contentType: string | undefined): boolean {
  return contentType?.split(';', 1)[0]?.trim().toLowerCase() === 'application/json'
}

const PAGE_HEADERS = {
  'cache-control': 'no-store',
  // What @fastify/helmet sets, and framing refused: a page of buttons must not be clickjacked.
  'content-security-policy': "default-src 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff'
}
const ASSET_HEADERS = { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' }

function withRatios (fastify: FastifyInstance): Record<string, AdminLevelStats> {
  const levels: Record<string, AdminLevelStats> = {}
  for (const [name, stats] of Object.entries(fastify.multiCache.stats())) {
    const lookups = stats.hits + stats.misses
    levels[name] = { ...stats, hitRatio: lookups === 0 ? null : stats.hits / lookups }
  }
  return levels
}

/**
 * A browser tells where a request comes from: `Sec-Fetch-Site` (all current browsers), and `Origin` on every POST.
 * Either naming another site refuses the request; a client that sends neither (curl) is not a browser.
 */
function crossSite (request: FastifyRequest): boolean {
  const site = request.headers['sec-fetch-site']
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return true
  const origin = request.headers.origin
  if (origin === undefined) return false
  try {
    // Both through URL, which drops a default port the Host header may carry; the scheme counts too.
    return new URL(origin).origin !== new URL(`${request.protocol}://${request.host}`).origin
  } catch {
    return true // `null` (a sandboxed or privacy-sensitive context) or garbage
  }
}

/** The admin API and the dashboard page: `app.register(cacheAdmin, { authorize })`, after the levels. */
export const cacheAdmin = fp(plugin, { fastify: '5.x', name: 'fastify-multi-cache/admin', decorators: { fastify: ['multiCache'] } })
export default cacheAdmin
