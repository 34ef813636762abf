import { headerText, listOf, type HeaderMap, type HeaderValue } from './headers.js'
import type { CachedResponse } from './response.js'

/**
 * True when a request may be answered 304 from a stored response: a GET or HEAD whose answer would otherwise be a
 * 200 (RFC 9110 §15.4.5; other statuses ignore preconditions, §13.2.1), with validators that match it (§13.2.2):
 * `If-None-Match` by weak comparison, or, without it, `If-Modified-Since` against the stored `Last-Modified`.
 */
export function isNotModified (method: string, request: HeaderMap, response: CachedResponse): boolean {
  if (response.status !== 200 || (method !== 'GET' && method !== 'HEAD')) return false
  const tags = request['if-none-match']
  if (tags !== undefined) return matchesEtag(tags, response.etag)
  const since = headerText(request['if-modified-since'])
  const modified = headerText(response.headers['last-modified'])
  if (since === undefined || modified === undefined) return false
  const sinceAt = Date.parse(since)
  const modifiedAt = Date.parse(modified)
  return !Number.isNaN(sinceAt) && !Number.isNaN(modifiedAt) && modifiedAt <= sinceAt
}

/** True when an `If-None-Match` header names `etag`, or is `*` (weak comparison: `W/` is ignored on both sides). */
export function matchesEtag (ifNoneMatch: HeaderValue, etag: string): boolean {
  const wanted = opaque(etag)
  return listOf(ifNoneMatch).some((tag) => tag === '*' || opaque(tag) === wanted)
}

function opaque (tag: string): string {
  return tag.startsWith('W/') ? tag.slice(2) : tag
}

/** The fields a 304 carries: those the 200 would have sent that guide caches (RFC 9110 §15.4.5). */
const KEPT = ['cache-control', 'content-location', 'expires', 'vary']

/** The headers of a 304 for a stored response: the validator and the caching fields the 200 would carry. */
export function notModifiedHeaders (response: CachedResponse): Record<string, string | string[]> {
  const headers: Record<string, string | string[]> = { etag: response.etag }
  for (const name of KEPT) {
    const value = response.headers[name]
    if (value !== undefined) headers[name] = value
  }
  return headers
}
