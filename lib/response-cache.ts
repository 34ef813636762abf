import { createHash } from 'node:crypto'

/** A response as the route cache keeps it: everything needed to replay it without the handler or the serializer. */
export interface CachedResponse {
  status: number
  headers: Record<string, string | string[]>
  /** The serialized body: text as is, bytes as base64, so that any serializer can keep the entry. */
  body: string
  binary: boolean
  etag: string
}

/**
 * Headers that describe one particular transmission or one particular client, never replayed. `set-cookie` is not
 * here because a response that sets a cookie is not stored at all at the application level.
 */
const NOT_REPLAYED = new Set([
  'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'date', 'age', 'x-cache', 'etag',
  'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'upgrade'
])

/**
 * Builds the entry to store, or undefined when the payload cannot be replayed (a stream) or the response sets a
 * cookie and `allowCookies` is false.
 */
export function toCachedResponse (
  status: number,
  headers: Readonly<Record<string, unknown>>,
  payload: unknown,
  allowCookies: boolean
): CachedResponse | undefined {
  let body: string
  let binary = false
  if (typeof payload === 'string') {
    body = payload
  } else if (Buffer.isBuffer(payload)) {
    body = payload.toString('base64')
    binary = true
  } else {
    return undefined
  }
  const replayed: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(headers)) {
    if (name === 'set-cookie' && !allowCookies) return undefined
    if (value === undefined || NOT_REPLAYED.has(name) || name === 'set-cookie') continue
    replayed[name] = Array.isArray(value) ? value.map(String) : String(value)
  }
  return { status, headers: replayed, body, binary, etag: etagOf(payload) }
}

/**
 * The bytes of each entry a memory store holds by reference, encoded once: sending a text body costs its UTF-8
 * encoding on every hit (a third of a 100 KB hit's CPU), sending bytes costs a copy into the socket. An entry read
 * from a serializing store is a new object each time and is encoded each time, as before.
 */
const encoded = new WeakMap<CachedResponse, Buffer>()

/** The body to send for a stored entry: its bytes, encoded once per entry object. */
export function replayBody (entry: CachedResponse): Buffer {
  let bytes = encoded.get(entry)
  if (bytes === undefined) {
    bytes = Buffer.from(entry.body, entry.binary ? 'base64' : 'utf8')
    encoded.set(entry, bytes)
  }
  return bytes
}

/** A strong validator of the exact bytes. */
export function etagOf (payload: string | Buffer): string {
  return '"' + createHash('sha1').update(payload).digest('base64url') + '"'
}

/** True when an `If-None-Match` header names `etag` (weak comparison, as RFC 9110 asks for GET and HEAD). */
export function matchesEtag (ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false
  if (ifNoneMatch.trim() === '*') return true
  for (const candidate of ifNoneMatch.split(',')) {
    const tag = candidate.trim()
    if ((tag.startsWith('W/') ? tag.slice(2) : tag) === etag) return true
  }
  return false
}
