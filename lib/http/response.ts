import { digest } from '../digest.js'
import type { RouteReason } from './cache-status.js'
import { cacheDirectives, headerText, listOf, secondsOf, type HeaderMap, type HeaderValue } from './headers.js'

/** A response as the route cache keeps it: everything needed to replay it without the handler or the serializer. */
export interface CachedResponse {
  status: number
  /** The headers to replay, as the handler set them: never a cookie, nor what describes one transmission. */
  headers: Record<string, string | string[]>
  /** The bytes the handler produced, held once, in a buffer of their own. */
  body: Buffer
  etag: string
  /** When it was stored, for `Age` (ms on the clock of `responseTime`, as the times below). */
  stored: number
  /** From when it is no longer served. */
  expires: number
  /** From when it is stale: served while one request runs the handler again. Absent: fresh until `expires`. */
  fresh?: number
  /** Tags, their versions when the handler ran, and the epoch those count in (with Redis): `invalidateTag` drops it. */
  tags?: string[]
  tagVersions?: number[]
  tagEpoch?: string
}

/**
 * A stored response in a form any serializer keeps (a session's store): its body in base64, its times in epoch ms (the
 * store may be read by other processes, each with a clock of its own).
 */
export interface ResponseRecord extends Omit<CachedResponse, 'body'> {
  body: string
}

/**
 * The times of a stored response are ms since this module was loaded, not since the epoch. Epoch ms do not fit a small
 * integer, and V8 keeps such a field in a number object of its own: one more place in memory that every hit reads.
 * Among 10^5 stored responses that read alone grew a hit's time 1.6 to 2.1 times as much as lru-cache's own get grew.
 * A time that fits 32 bits is held in the response itself; past 24 days of a process's life times are held as other
 * numbers are, as right and a little slower.
 */
const ORIGIN = Date.now()

/** `epoch` (ms since the epoch) as the times of stored responses count. */
export function responseTime (epoch: number): number {
  return whole(epoch - ORIGIN)
}

function whole (ms: number): number {
  const floor = Math.floor(ms)
  return floor === (floor | 0) ? floor | 0 : floor
}

export function toRecord (response: CachedResponse): ResponseRecord {
  const record: ResponseRecord = { ...response, body: response.body.toString('base64'), stored: response.stored + ORIGIN, expires: response.expires + ORIGIN }
  if (response.fresh !== undefined) record.fresh = response.fresh + ORIGIN
  return record
}

export function fromRecord (record: ResponseRecord): CachedResponse {
  const response: CachedResponse = { ...record, body: Buffer.from(record.body, 'base64'), stored: responseTime(record.stored), expires: responseTime(record.expires) }
  if (record.fresh !== undefined) response.fresh = responseTime(record.fresh)
  return response
}

/** Where a response would be stored, and for how long at most. */
export interface StorePolicy {
  /** How long past its lifetime it may still be served stale, in ms. */
  staleWhileRevalidate?: number
  /** Served to every user (the application level): `private` forbids storing, `s-maxage` counts. */
  shared: boolean
  statusCodes: ReadonlySet<number>
  /** The route's time to live, in ms. */
  ttl: number
}

/** A response that may be stored: for how long, and which request headers select it among its variants. */
export interface Storable {
  lifetime: number
  vary: string[]
}

/**
 * Whether a response may be stored (RFC 9111 §3), and for how long, judged on its headers as sent (`sent`, after
 * every onSend hook): never with a `Set-Cookie`, a `Vary: *`, `no-store` or `no-cache` (it would have to be
 * revalidated on every use), nor `private` in a shared cache. Its lifetime is the route's `ttl`, shortened by
 * `s-maxage` (shared only), `max-age` or `Expires`. `produced` are the headers as the handler left them, with the body
 * that is stored (see `varyOf`).
 */
export function storable (status: number, sent: HeaderMap, policy: StorePolicy, now: number, produced: HeaderMap = sent): Storable | Refusal {
  if (!policy.statusCodes.has(status)) return 'status'
  if (sent['set-cookie'] !== undefined) return 'set-cookie'
  const vary = varyOf(sent, produced)
  if (vary === '*') return 'vary-star'
  const directives = cacheDirectives(sent['cache-control'])
  if (directives.has('no-store')) return 'no-store'
  if (directives.has('no-cache')) return 'no-cache'
  if (policy.shared && directives.has('private')) return 'private'
  const fresh = (policy.shared ? secondsOf(directives.get('s-maxage')) : undefined) ??
    secondsOf(directives.get('max-age')) ??
    expiresIn(sent.expires, now)
  const lifetime = fresh === undefined ? policy.ttl : Math.min(policy.ttl, fresh)
  return lifetime > 0 ? { lifetime, vary } : 'expired'
}

/** Why `storable` refused a response. */
export type Refusal = Extract<RouteReason, 'status' | 'set-cookie' | 'vary-star' | 'no-store' | 'no-cache' | 'private' | 'expired'>

/**
 * The `Cache-Control` of a page kept in or served from one user's session: `private`, so that no shared cache in front
 * stores it, unless the handler said something as strict already (`private`, `no-store`). `public` and `s-maxage`,
 * which speak to shared caches, go.
 */
export function privateCacheControl (value: HeaderValue): string {
  const directives = listOf(value)
  const names = directives.map((directive) => directive.split('=')[0]?.trim().toLowerCase())
  if (names.includes('private') || names.includes('no-store')) return directives.join(', ')
  return ['private', ...directives.filter((_, i) => names[i] !== 'public' && names[i] !== 's-maxage')].join(', ')
}

/** `Expires` as ms from now; an invalid date means already expired (RFC 9111 §5.3). */
function expiresIn (value: HeaderValue, now: number): number | undefined {
  const text = headerText(value)
  if (text === undefined) return undefined
  const at = Date.parse(text)
  return Number.isNaN(at) ? 0 : Math.max(0, at - now)
}

/**
 * The request headers a stored body varies on: every name in the `Vary` of the response as sent or as the handler
 * left it (`produced`), lowercased, and `accept-encoding` when the handler encoded the body itself, so that a client
 * is only ever sent an encoding it asked for. An encoding applied after the handler (`@fastify/compress`) is applied
 * again on every hit, for each client: the `Vary: accept-encoding` that comes with it selects nothing among stored
 * bodies. `'*'`: it varies on anything.
 */
export function varyOf (sent: HeaderMap, produced: HeaderMap = sent): string[] | '*' {
  const encoding = encodingOf(produced)
  // What the sent Vary adds; its accept-encoding comes with an encoding applied after the handler, if there was one.
  const added = namesOf(sent.vary).filter((name) => name !== 'accept-encoding' || encodingOf(sent) === encoding)
  const names = [...namesOf(produced.vary), ...added]
  if (names.includes('*')) return '*'
  if (encoding !== undefined) names.push('accept-encoding')
  return [...new Set(names)]
}

function namesOf (vary: HeaderValue): string[] {
  return listOf(vary).map((name) => name.toLowerCase())
}

/** The `Content-Encoding` of a response, lowercased; undefined when there is none or it is `identity`. */
function encodingOf (headers: HeaderMap): string | undefined {
  const encoding = headerText(headers['content-encoding'])?.toLowerCase()
  return encoding === 'identity' ? undefined : encoding
}

/**
 * Headers that describe one transmission or are set again on each reply, never replayed; nor a cookie, which a hook
 * after the handler may have removed from the response as sent, and which is never shared.
 */
const NOT_REPLAYED = new Set([
  'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date', 'age', 'x-cache', 'etag', 'set-cookie',
  'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade'
])

/**
 * The entry to store for what the handler produced (its status, headers and payload), at `now` (see `responseTime`),
 * fresh for `lifetime` ms and then served stale for `stale` ms. `setBefore` are the headers the reply already had when
 * the lookup missed: the hooks that set them run before the lookup on every request, a hit included, so they are not
 * replayed (a rate limit's remaining count, a request id would be stale).
 */
export function toCachedResponse (
  status: number,
  headers: HeaderMap,
  payload: string | Buffer,
  now: number,
  lifetime: number,
  setBefore: HeaderMap = {},
  stale = 0
): CachedResponse {
  const replayed: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || NOT_REPLAYED.has(name) || setBefore[name] === value) continue
    replayed[name] = typeof value === 'object' ? [...value] : String(value)
  }
  const body = ownCopy(payload)
  const etag = headerText(headers.etag) ?? oneString(etagOf(body))
  const response: CachedResponse = { status, headers: sharedHeaders(replayed), body, etag, stored: whole(now), expires: whole(now + lifetime + stale) }
  if (stale > 0) response.fresh = whole(now + lifetime)
  return response
}

/**
 * Header sets to replay, each held once however many stored responses carry it: the responses of a route almost always
 * carry the same ones (`content-type`, `cache-control`), where an object each took 56 bytes a response. Frozen, so
 * that nothing done with one response changes another's (a reply copies them into headers of its own). A set with a
 * header of several values stays the response's own: a hook may change an array a reply holds in place. Emptied when
 * full rather than kept in order: a handler that sets a header of its own on each response (a `last-modified`) makes
 * a set each, and at most `HEADER_SETS` sets, of at most `HEADER_SET_TEXT` characters each, are held apart from the
 * responses.
 */
const headerSets = new Map<string, Readonly<Record<string, string>>>()
export const HEADER_SETS = 1000
const HEADER_SET_TEXT = 1024

/** The header set equal to `replayed` held already, or `replayed` itself (frozen, and held when it can be shared). */
function sharedHeaders (replayed: Record<string, string | string[]>): Record<string, string | string[]> {
  if (Object.values(replayed).some((value) => typeof value !== 'string')) return replayed
  // Names in the order the handler set them: a route sets them in the same order each time.
  const text = JSON.stringify(replayed)
  const held = headerSets.get(text)
  if (held !== undefined) return held
  Object.freeze(replayed)
  if (text.length > HEADER_SET_TEXT) return replayed
  if (headerSets.size >= HEADER_SETS) headerSets.clear()
  headerSets.set(text, replayed as Record<string, string>)
  return replayed
}

/** How many header sets are held apart from the responses: at most `HEADER_SETS`. */
export function heldHeaderSets (): number {
  return headerSets.size
}

/**
 * `headers` with arrays of their own: a reply keeps an array it is given, and a hook after it (`onSend`) may change that
 * array in place, which, were it a stored response's, would change what every later hit replays (and one client's
 * value would reach the next). Copied where the response is captured and where a hit is replayed; a set of strings
 * only, as shared sets are, is `headers` itself.
 */
export function withOwnArrays<T extends Readonly<Record<string, unknown>>> (headers: T): T {
  for (const name in headers) {
    if (Array.isArray(headers[name])) {
      const own: Record<string, unknown> = { ...headers }
      for (const key in own) if (Array.isArray(own[key])) own[key] = [...own[key] as unknown[]]
      return own as T
    }
  }
  return headers
}

/**
 * An ASCII string as one piece of memory of its own: V8 keeps a concatenation as its parts until something reads it
 * whole, and a weak ETag took 112 bytes against 48 in each response stored and not hit yet.
 */
function oneString (ascii: string): string {
  return Buffer.from(ascii, 'latin1').toString('latin1')
}

/**
 * The payload's bytes in a buffer of exactly their size: never a slice of Node's shared pool (a small buffer would
 * keep a whole 8 KiB slab alive) nor a buffer the handler may reuse.
 */
function ownCopy (payload: string | Buffer): Buffer {
  const text = typeof payload === 'string'
  const body = Buffer.allocUnsafeSlow(text ? Buffer.byteLength(payload) : payload.length)
  if (text) body.write(payload)
  else payload.copy(body)
  return body
}

/**
 * A weak validator of the body the handler produced: weak because a plugin such as `@fastify/compress` may encode
 * those bytes differently for each client (RFC 9110 §8.8.1).
 */
export function etagOf (payload: string | Buffer): string {
  return 'W/"' + digest('sha1', payload, 'base64url') + '"'
}

/** Whole seconds since the entry was stored, for the `Age` header (RFC 9111 §5.1). */
export function ageOf (entry: CachedResponse, now: number): string {
  return String(Math.max(0, Math.floor((now - entry.stored) / 1000)))
}
