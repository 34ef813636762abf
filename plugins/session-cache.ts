import { randomBytes } from 'node:crypto'
import fastifyCookie, { signerFactory, type SerializeOptions } from '@fastify/cookie'
import type { FastifyPluginAsync, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Duration } from '../lib/durations.js'
import { readOptions, type OptionReader } from '../lib/options.js'
import { SessionLevel, type PresentedId, type SessionCache } from '../lib/scopes/session.js'
import { MemoryStore } from '../lib/stores/memory.js'
import { addLevel } from './levels.js'
// Kept in the emitted .d.ts, unlike the import above: it brings the declaration of `fastify.multiCache` to apps.
import './levels.js'
import { SHARED_STORE_OPTIONS, resolveStore, type SharedStoreOptions, type StoreOption } from './stores.js'

export interface SessionCacheOptions extends SharedStoreOptions {
  /** Signs the cookie: a string of 32+ characters, or an array of them (the first signs, all verify). */
  secret?: string | string[]
  /** Name of the session cookie. Default `'sid'`. */
  cookieName?: string
  /** Cookie attributes, over the defaults `{ path: '/', httpOnly: true, sameSite: 'lax', secure: NODE_ENV === 'production' }`. */
  cookie?: SerializeOptions
  /** Inactivity expiry, rolling: ms or a duration string. Default `'30m'`. */
  ttl?: Duration
  /** Most sessions held by the memory store; the least recently used goes first. Default 100,000. */
  maxSessions?: number
  /** Most entries one session may hold; past it the oldest written goes first. Default 100. */
  maxEntriesPerSession?: number
  /** `'memory'` (default), `'redis'` (`fastify.redis`), a Redis URL, an ioredis client, a Keyv, or a `Store`. */
  store?: StoreOption
  /** Identify sessions yourself (a JWT subject, `@fastify/session`): no cookie is issued. */
  getSessionId?: (request: FastifyRequest) => string | undefined | Promise<string | undefined>
}

declare module 'fastify' {
  interface FastifyRequest {
    /** This user's data, across this user's requests. */
    sessionCache: SessionCache
  }
}

const OPTIONS = ['secret', 'cookieName', 'cookie', 'ttl', 'maxSessions', 'maxEntriesPerSession', 'store', 'getSessionId', ...SHARED_STORE_OPTIONS]
const MIN_SECRET = 32
const kSession = Symbol('fastify-multi-cache.session')
type Slot = FastifyRequest & { [kSession]: SessionCache | null }

const plugin: FastifyPluginAsync<SessionCacheOptions> = async (fastify, options) => {
  const read = readOptions('sessionCache', options)
  read.only(OPTIONS)
  const ttl = read.duration('ttl', 30 * 60_000)
  if (ttl === 0) read.fail('ttl', 'must be greater than 0')
  const maxSessions = read.positiveInteger('maxSessions', 100_000)
  const backend = await resolveStore(fastify, read, options, {
    prefix: 'fmc:session:',
    // A tier entry is at most this old, and reads that reach Redis restart the session's expiry at least this often.
    l1: { max: 10_000, ttl: Math.min(5000, ttl) },
    memory: () => new MemoryStore({ max: maxSessions, ttl, rolling: true, onEvict: () => { level.stats.evictions++ } })
  })
  const level: SessionLevel = new SessionLevel({
    ttl,
    maxEntriesPerSession: read.positiveInteger('maxEntriesPerSession', 100),
    store: backend.store,
    log: fastify.log
  })
  const getSessionId = read.optionalFunction<NonNullable<SessionCacheOptions['getSessionId']>>('getSessionId')
  addLevel(fastify, 'session', level)
  fastify.decorateRequest(kSession, null)

  if (getSessionId !== undefined) {
    fastify.decorateRequest('sessionCache', {
      getter (this: FastifyRequest) {
        return ((this as Slot)[kSession] ??= level.open(async () => presentedByApp(await getSessionId(this)), true))
      }
    })
  } else {
    await useCookie(fastify, read, options)
  }

  async function useCookie (app: typeof fastify, reader: OptionReader, opts: SessionCacheOptions): Promise<void> {
    const signer = signerFactory(readSecret(reader, opts.secret, (message) => { app.log.warn(message) }))
    const cookieName = opts.cookieName ?? 'sid'
    if (typeof cookieName !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(cookieName)) {
      reader.fail('cookieName', 'must be a non-empty cookie name (letters, digits and !#$%&\'*+-.^_`|~)')
    }
    if (opts.cookie !== undefined && (typeof opts.cookie !== 'object' || opts.cookie === null)) reader.fail('cookie', 'must be an object of cookie attributes')
    const cookieOptions: SerializeOptions = {
      path: '/', httpOnly: true, sameSite: 'lax', secure: process.env.NODE_ENV === 'production', ...opts.cookie
    }
    const clearOptions: SerializeOptions = { ...cookieOptions, maxAge: 0, expires: new Date(0) }
    app.multiCache.sessionCookie = cookieName
    if (!app.hasDecorator('parseCookie')) await app.register(fastifyCookie, { hook: false })

    const presented = (request: FastifyRequest): PresentedId | undefined => {
      // Use the cookies @fastify/cookie parsed if its hook runs; otherwise parse the header only now, on first use.
      const cookies = request.cookies ?? parseHeader(request.headers.cookie)
      const raw = cookies?.[cookieName]
      if (raw === undefined) return undefined
      const unsigned = signer.unsign(raw)
      return unsigned.valid && unsigned.value !== null ? { id: unsigned.value, reissue: unsigned.renew } : undefined
    }
    const parseHeader = (header: string | undefined): Record<string, string | undefined> | undefined =>
      header === undefined ? undefined : app.parseCookie(header)

    app.decorateRequest('sessionCache', {
      getter (this: FastifyRequest) {
        return ((this as Slot)[kSession] ??= level.open(() => presented(this)))
      }
    })
    app.addHook('onSend', (request, reply, payload, next) => {
      const session = (request as Slot)[kSession]
      if (session !== null) {
        const change = session.cookie
        if (change === 'set') reply.header('set-cookie', app.serializeCookie(cookieName, signer.sign(session.id as string), cookieOptions))
        else if (change === 'clear') reply.header('set-cookie', app.serializeCookie(cookieName, '', clearOptions))
      }
      next(null, payload)
    })
  }
}

function presentedByApp (id: string | undefined): PresentedId | undefined {
  return typeof id === 'string' && id !== '' ? { id } : undefined
}

function readSecret (read: OptionReader, secret: unknown, warn: (message: string) => void): string | string[] {
  if (secret === undefined) {
    if (process.env.NODE_ENV === 'production') read.fail('secret', 'is required when NODE_ENV=production')
    warn('sessionCache: no "secret" given, so a random one is used and sessions end when the process does; set one in production')
    return randomBytes(32).toString('base64url')
  }
  const secrets = Array.isArray(secret) ? secret : [secret]
  const valid = secrets.length > 0 && secrets.every((s) => typeof s === 'string' && s.length >= MIN_SECRET)
  return valid ? secret as string | string[] : read.fail('secret', `must be a string of at least ${MIN_SECRET} characters, or a non-empty array of them`)
}

/** The session level: `request.sessionCache`. */
export const sessionCache = fp(plugin, { fastify: '5.x', name: 'fastify-multi-cache/session' })
export default sessionCache
export type { SessionCache }
