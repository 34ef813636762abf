import { randomBytes } from 'node:crypto'
import fastifyCookie, { signerFactory } from '@fastify/cookie'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { readOptions, type OptionReader } from '../lib/options.js'
import { messageOf } from '../lib/errors.js'
import { LRUCache } from 'lru-cache'
import { sessionStoreKey } from '../lib/keys.js'
import type { PresentedId } from '../lib/scopes/session.js'

/** Attributes of the session cookie, as in `Set-Cookie`. */
export interface SessionCookieOptions {
  domain?: string
  /** Default `'/'`. */
  path?: string
  /** Seconds the browser keeps the cookie. Unset by default: the browser keeps it for its session, the server decides expiry. */
  maxAge?: number
  expires?: Date
  /** Default true. */
  httpOnly?: boolean
  /** Default `NODE_ENV === 'production'`. Browsers require it with `sameSite: 'none'` and with `partitioned`. */
  secure?: boolean
  /** Default `'lax'`; `true` means `'strict'`, `false` leaves the attribute out. */
  sameSite?: 'lax' | 'strict' | 'none' | boolean
  priority?: 'low' | 'medium' | 'high'
  partitioned?: boolean
}

/** The session cookie as the plugin uses it: which id a request presents, and the header that sets or clears it. */
export interface SessionCookie {
  readonly name: string
  presented (request: FastifyRequest): PresentedId | undefined
  write (reply: FastifyReply, change: 'set' | 'clear', id: string | undefined): void
}

const MIN_SECRET = 32
/** Cookies whose signature was verified, kept so that a client's next requests skip the HMAC. */
const VERIFIED = 10_000
const boolean = (value: unknown): boolean => typeof value === 'boolean'
/** Each attribute: what it accepts, and how the error says it. */
const ATTRIBUTES: Record<keyof SessionCookieOptions, [(value: unknown) => boolean, string]> = {
  domain: [(value) => typeof value === 'string' && value !== '', 'must be a non-empty string'],
  path: [(value) => typeof value === 'string' && value.startsWith('/'), "must be a string starting with '/'"],
  maxAge: [(value) => Number.isSafeInteger(value) && (value as number) > 0, 'must be a positive whole number of seconds'],
  expires: [(value) => value instanceof Date && !Number.isNaN(value.getTime()), 'must be a valid Date'],
  httpOnly: [boolean, 'must be true or false'],
  secure: [boolean, 'must be true or false'],
  sameSite: [(value) => [true, false, 'lax', 'strict', 'none'].includes(value as string), "must be 'lax', 'strict', 'none', true or false"],
  priority: [(value) => ['low', 'medium', 'high'].includes(value as string), "must be 'low', 'medium' or 'high'"],
  partitioned: [boolean, 'must be true or false']
}

/**
 * Checks the session cookie's options at registration (so that no attribute can fail a session write later) and
 * returns how to read and write the cookie. The package never registers @fastify/cookie on the app: the app may
 * register it itself, before or after, and then owns `request.cookies`; cookies are otherwise parsed only by
 * requests that use their session.
 */
export async function sessionCookie (
  fastify: FastifyInstance,
  read: OptionReader,
  options: { secret?: unknown, cookieName?: unknown, cookie?: unknown }
): Promise<SessionCookie> {
  const signer = signerFactory(readSecret(read, options.secret, (message) => { fastify.log.warn(message) }))
  const name = options.cookieName ?? 'sid'
  if (typeof name !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
    read.fail('cookieName', 'must be a non-empty cookie name (letters, digits and !#$%&\'*+-.^_`|~)')
  }
  const attributes = readAttributes(read, options.cookie, name)
  const clearing = { ...attributes, maxAge: 0, expires: new Date(0) }
  const verified = new LRUCache<string, PresentedId>({ max: VERIFIED })
  let toldOfClash = false
  const codec = await cookieCodec(fastify)
  try {
    codec.serializeCookie(name, signer.sign('id'), attributes)
  } catch (error) {
    read.fail('cookie', `must be attributes the cookie serializer accepts (${messageOf(error)})`)
  }
  fastify.addHook('onReady', async function () {
    for (const [plugin, cookie] of SESSION_PLUGINS) {
      if (name === cookie && this.hasPlugin(plugin)) this.log.warn(`sessionCache: the session cookie is named "${name}", the default of ${plugin}, which is registered too: unless it was given another cookieName, each would take the other's cookie for a forged one; give sessionCache a cookieName of its own`)
    }
    this.log.debug(this.hasRequestDecorator('cookies')
      ? `sessionCache: session cookie "${name}"; @fastify/cookie is registered, so request.cookies is the app's and sessions reuse what it parsed`
      : `sessionCache: session cookie "${name}", parsed only by requests that use their session; request.cookies is not set: register @fastify/cookie (before or after this plugin) for the app's own cookies`)
  })

  return {
    name,
    presented (request) {
      // What @fastify/cookie parsed when the app registered it with its hook; otherwise the header, parsed only now.
      const cookies = request.cookies ?? (request.headers.cookie === undefined ? undefined : codec.parseCookie(request.headers.cookie))
      const raw = cookies?.[name]
      if (raw === undefined) return undefined
      // A cookie seen before is not checked again: its HMAC and its store key's SHA-256 were a quarter of a session
      // read's CPU. Only a cookie whose signature was valid is kept, as the exact string, signature included.
      const known = verified.get(raw)
      if (known !== undefined) return known
      const unsigned = signer.unsign(raw)
      if (!unsigned.valid || unsigned.value === null) return undefined
      const presented = { id: unsigned.value, key: sessionStoreKey(unsigned.value), reissue: unsigned.renew }
      verified.set(raw, presented)
      return presented
    },
    write (reply, change, id) {
      if (!toldOfClash && writesName(reply.getHeader('set-cookie'), name)) {
        toldOfClash = true
        reply.log.warn(`sessionCache: another plugin sets a cookie named "${name}" too (a second session plugin?): each takes the other's cookie for a forged one; give sessionCache a cookieName of its own`)
      }
      reply.header('set-cookie', change === 'set' ? codec.serializeCookie(name, signer.sign(id as string), attributes) : codec.serializeCookie(name, '', clearing))
    }
  }
}

/** Session plugins an app may register beside this one, and the name of their cookie when none is given. */
const SESSION_PLUGINS: ReadonlyArray<[string, string]> = [['@fastify/session', 'sessionId'], ['@fastify/secure-session', 'session']]

/** Whether a `Set-Cookie` header already names the cookie `name`. */
function writesName (header: unknown, name: string): boolean {
  const lines = Array.isArray(header) ? header : header === undefined ? [] : [header]
  return lines.some((line) => typeof line === 'string' && line.startsWith(name + '='))
}

function readAttributes (read: OptionReader, cookie: unknown, name: string): SessionCookieOptions {
  if (cookie !== undefined && (typeof cookie !== 'object' || cookie === null || Array.isArray(cookie))) {
    read.fail('cookie', 'must be an object of cookie attributes')
  }
  const attributes = readOptions(`${read.name} (cookie)`, cookie)
  attributes.only(Object.keys(ATTRIBUTES))
  const given = Object.fromEntries(Object.entries((cookie ?? {}) as object).filter(([, value]) => value !== undefined))
  for (const [name, value] of Object.entries(given)) {
    const [accepts, expected] = ATTRIBUTES[name as keyof SessionCookieOptions]
    if (!accepts(value)) attributes.fail(name, expected)
  }
  // A prefixed name (`__Host-`, `__Secure-`) is a promise to the browser that the cookie is Secure: it is by default.
  const prefixed = name.startsWith('__Host-') || name.startsWith('__Secure-')
  const resolved: SessionCookieOptions = { path: '/', httpOnly: true, sameSite: 'lax', secure: prefixed || process.env.NODE_ENV === 'production', ...given }
  // Browsers drop a prefixed cookie whose attributes break the prefix's rules (RFC 6265bis 4.1.3).
  if (prefixed && resolved.secure !== true) attributes.fail('secure', `must be true with the cookie name "${name}" (browsers drop a ${name.slice(0, name.indexOf('-') + 1)} cookie without Secure)`)
  if (name.startsWith('__Host-') && (resolved.path !== '/' || resolved.domain !== undefined)) {
    attributes.fail(resolved.domain !== undefined ? 'domain' : 'path', `must be left out with the cookie name "${name}" (a __Host- cookie has path '/' and no domain)`, resolved.domain ?? resolved.path)
  }
  // Browsers drop these cookies without Secure: every session write would then be lost, silently.
  if (!resolved.secure && resolved.sameSite === 'none') attributes.fail('sameSite', 'must come with secure: true (browsers drop a SameSite=None cookie without Secure)')
  if (!resolved.secure && resolved.partitioned === true) attributes.fail('partitioned', 'must come with secure: true (browsers drop a Partitioned cookie without Secure)')
  return resolved
}

/**
 * @fastify/cookie's parse and serialize: the app's when it registered the plugin, otherwise from a registration in
 * a context of the package's own. Its functions work only once the plugin is registered (it loads `cookie` then);
 * registered there, it decorates nothing of the app's and its hooks run for no route.
 */
async function cookieCodec (fastify: FastifyInstance): Promise<CookieCodec> {
  if (fastify.hasDecorator('parseCookie')) return codecOf(fastify)
  let codec: CookieCodec | undefined
  await fastify.register(async (own) => {
    await own.register(fastifyCookie, { hook: false })
    codec = codecOf(own)
  })
  return codec as CookieCodec
}

type CookieCodec = Pick<FastifyInstance, 'parseCookie' | 'serializeCookie'>

// A plain object, not the instance: an instance is thenable, and an async function would resolve it.
function codecOf ({ parseCookie, serializeCookie }: FastifyInstance): CookieCodec {
  return { parseCookie, serializeCookie }
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
