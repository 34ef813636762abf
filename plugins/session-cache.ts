import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Duration } from '../lib/durations.js'
import { MAX_KEY_LENGTH } from '../lib/keys.js'
import { readOptions } from '../lib/options.js'
import { exposeMetrics, type MetricsOptions } from './metrics.js'
import { SessionLevel, type PresentedId, type SessionCache } from '../lib/scopes/session.js'
import type { SessionCache as TypedSessionCache } from '../lib/typed-keys.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { addLevel, provide } from './levels.js'
// Kept in the emitted .d.ts, unlike the import above: it brings the declaration of `fastify.multiCache` to apps.
import './levels.js'
import { sessionCookie, type SessionCookieOptions } from './session-cookie.js'
import { SHARED_STORE_OPTIONS, type SharedStoreOptions, type StoreOption } from '../lib/backend.js'
import { backendOf } from './stores.js'

export interface SessionCacheOptions extends SharedStoreOptions {
  /** Signs the cookie: a string of 32+ characters, or an array of them (the first signs, all verify). */
  secret?: string | string[]
  /** Name of the session cookie. Default `'sid'`. */
  cookieName?: string
  /** Cookie attributes, over the defaults `{ path: '/', httpOnly: true, sameSite: 'lax', secure: NODE_ENV === 'production' }`. */
  cookie?: SessionCookieOptions
  /** Inactivity expiry, rolling: ms or a duration string. Default `'30m'`. */
  ttl?: Duration
  /**
   * Most logged-in sessions (regenerated, or identified by `getSessionId`) held by the memory store; the least
   * recently used goes first. Default 100,000.
   */
  maxSessions?: number
  /** Most sessions never regenerated held by the memory store, bounded apart from logged-in ones. Default `maxSessions`. */
  maxAnonymousSessions?: number
  /** Most entries one session may hold; past it the oldest written goes first. Default 100. */
  maxEntriesPerSession?: number
  /**
   * With a shared store and a memory tier: `'strict'` (default) makes a write, a logout, `regenerate()` or
   * `destroyAllOf()` on any instance final for every request that starts after it returns. On one Redis each instance
   * serves sessions from memory under a lease that every change waits for; on a Redis Cluster or a Keyv store it
   * checks the session's version with the store on every request that reads it (one small round trip). `'bus'` serves
   * the memory tier alone and hears of other instances' changes over pub/sub, after a window (p99 14 ms under load in
   * the `session-window` benchmark).
   */
  coherence?: 'strict' | 'bus'
  /** Most sessions of one user (linked by `regenerate({ user })` or `setUser`): a login past it ends the earliest. Default 1,000. */
  maxSessionsPerUser?: number
  /** Most pages one session may hold for route caching (`level: 'session'`), apart from its entries. Default 10. */
  maxPagesPerSession?: number
  /** `'memory'` (default), `'redis'` (`fastify.redis`), a Redis URL, an ioredis client, a Keyv, or a `Store`. */
  store?: StoreOption
  /** Ends a session this long after it was created, however active: ms or a duration string. Default 0: never. */
  absoluteTtl?: Duration
  /** After an entry's `ttl`, how long `getOrLoad` still serves it at once while it loads a new one. Default 0. */
  staleWhileRevalidate?: Duration
  /** Longest key taken, in characters. Default 1,024. */
  maxKeyLength?: number
  /** Identify sessions yourself (a JWT subject, `@fastify/session`): no cookie is issued. */
  getSessionId?: (request: FastifyRequest) => string | undefined | Promise<string | undefined>
  /** Prometheus series of this level on `registry`, read at scrape time. */
  metrics?: MetricsOptions
  /** false: log lines show a short hash of each key instead of the key. Default true. */
  logKeys?: boolean
}

declare module 'fastify' {
  interface FastifyRequest {
    /** This user's data, across this user's requests. */
    sessionCache: TypedSessionCache
  }
}

const OPTIONS = ['secret', 'cookieName', 'cookie', 'ttl', 'absoluteTtl', 'staleWhileRevalidate', 'maxSessions', 'maxAnonymousSessions', 'maxEntriesPerSession', 'maxSessionsPerUser', 'coherence', 'maxPagesPerSession', 'maxKeyLength', 'store', 'getSessionId', 'metrics', 'logKeys', ...SHARED_STORE_OPTIONS]
const kSession = Symbol('fastify-multi-cache.session')
type Slot = FastifyRequest & { [kSession]: SessionCache | null }

const plugin: FastifyPluginAsync<SessionCacheOptions> = async (fastify, options) => {
  const read = readOptions('sessionCache', options)
  read.only(OPTIONS)
  const ttl = read.duration('ttl', 30 * 60_000)
  if (ttl === 0) read.fail('ttl', 'must be greater than 0')
  const maxSessions = read.positiveInteger('maxSessions', 100_000)
  const maxAnonymousSessions = read.positiveInteger('maxAnonymousSessions', maxSessions)
  // A session the memory store drops by itself leaves its user's index, so that the index lives as long as its sessions.
  const inMemory = (max: number, onEvict: () => void): MemoryStore => new MemoryStore({ max, ttl, rolling: true, onEvict, onDrop: (key, session) => { level.dropped(key, session) } })
  const backend = await backendOf(fastify, read, options, {
    prefix: 'fmc:session:',
    // A tier entry is at most this old, and with 'bus' (where reads served from the tier do not restart the
    // session's expiry in the store) a read reaches the store at least this often: at most half the ttl, so that a
    // session in use never expires there.
    l1: { max: 10_000, ttl: Math.min(5000, Math.ceil(ttl / 2)), longest: Math.ceil(ttl / 2) },
    // Read about once a request: a clock read each time, not a timer for each request of a quiet server.
    exactClock: true,
    verified: read.oneOf('coherence', ['strict', 'bus']) === 'strict',
    memory: () => inMemory(maxSessions, () => { level.stats.evictions++ })
  })
  // In memory, anonymous visitors get a pool of their own: a crowd of them cannot push logged-in users out. Users'
  // indexes of sessions get one too, with room for one per session held: an index goes with its last session, so none
  // is ever pushed out while a session it lists lives.
  const inMemoryOnly = backend.redis === undefined && backend.store instanceof MemoryStore
  const absoluteTtl = read.duration('absoluteTtl', 0)
  const level: SessionLevel = new SessionLevel({
    ttl,
    absoluteTtl,
    staleWhileRevalidate: read.duration('staleWhileRevalidate', 0),
    maxEntriesPerSession: read.positiveInteger('maxEntriesPerSession', 100),
    maxSessionsPerUser: read.positiveInteger('maxSessionsPerUser', 1000),
    // Checked with the cookie's other options below.
    ...(options.getSessionId === undefined ? { cookieName: typeof options.cookieName === 'string' ? options.cookieName : 'sid' } : {}),
    maxPagesPerSession: read.positiveInteger('maxPagesPerSession', 10),
    maxKeyLength: read.positiveInteger('maxKeyLength', MAX_KEY_LENGTH),
    store: backend.store,
    ...(inMemoryOnly
      ? {
          anonymous: inMemory(maxAnonymousSessions, () => { level.stats.evictions++; level.stats.anonymousEvictions++ }),
          users: new MemoryStore({ max: maxSessions + maxAnonymousSessions })
        }
      : {}),
    log: fastify.log,
    logKeys: read.boolean('logKeys', true)
  })
  level.stats.breaker = backend.breaker
  level.stats.bus = backend.bus
  if (backend.unreachable !== undefined) level.log?.warn({ operation: 'connect' }, backend.unreachable)
  const getSessionId = read.optionalFunction<NonNullable<SessionCacheOptions['getSessionId']>>('getSessionId')
  addLevel(fastify, 'session', level)
  exposeMetrics(fastify, read, options.metrics, [['session', level.stats]])
  fastify.decorateRequest(kSession, null)

  if (getSessionId !== undefined) {
    provide(fastify, 'sessionCache', (request) => ((request as Slot)[kSession] ??= level.open(async () => presentedByApp(await getSessionId(request)), true, request.log)))
    return
  }
  const cookie = await sessionCookie(fastify, read, options)
  provide(fastify, 'sessionCache', (request) => ((request as Slot)[kSession] ??= level.open(() => cookie.presented(request), false, request.log)))
  fastify.addHook('onSend', (request, reply, payload, next) => {
    const session = (request as Slot)[kSession]
    const change = session?.cookie
    if (change === 'set' || change === 'clear') cookie.write(reply, change, session?.id)
    next(null, payload)
  })
}

function presentedByApp (id: string | undefined): PresentedId | undefined {
  return typeof id === 'string' && id !== '' ? { id } : undefined
}

/** The session level: `request.sessionCache`. */
export const sessionCache = fp(plugin, { fastify: '5.x', name: 'fastify-multi-cache/session' })
export default sessionCache
export type { TypedSessionCache as SessionCache, SessionCookieOptions }
