import { variantOf } from './request.js'
import type { HeaderMap } from './headers.js'
import type { CachedResponse } from './response.js'

/** What a stored variant must say: when it stops being served. */
interface Expiring {
  expires: number
}

/**
 * Everything stored under one key: the request headers its responses vary on, and one response per combination of
 * their values, newest first (RFC 9111 §4.1). `R` is how a response is held: as it is in memory, or as a record a
 * serializer keeps.
 */
export interface StoredVariants<R extends Expiring = CachedResponse> {
  vary: string[]
  variants: Array<[string, R]>
}

/** The stored response for this request's variant, unless it has expired. */
export function findVariant<R extends Expiring> (stored: StoredVariants<R>, headers: HeaderMap, now: number): R | undefined {
  const wanted = variantOf(stored.vary, headers)
  // A loop, not `find`: a hit allocates nothing, and touches no more of the heap than it reads.
  for (const [variant, response] of stored.variants) {
    if (variant === wanted) return response.expires > now ? response : undefined
  }
  return undefined
}

/**
 * A new value for the key with `response` as the variant of `headers`: at most `max` variants, dropping expired ones
 * and then the oldest. A response that varies on other headers than those stored replaces them all. A new object
 * every time, so that a memory bound measures what it holds.
 */
export function withVariant<R extends Expiring> (
  stored: StoredVariants<R> | undefined,
  vary: string[],
  headers: HeaderMap,
  response: R,
  max: number,
  now: number
): StoredVariants<R> {
  const variant = variantOf(vary, headers)
  const kept = stored !== undefined && sameNames(stored.vary, vary)
    ? stored.variants.filter(([other, held]) => other !== variant && held.expires > now).slice(0, max - 1)
    : []
  return { vary, variants: [[variant, response], ...kept] }
}

function sameNames (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name) => b.includes(name))
}

// What the objects around the strings and bytes take: a cache entry (its slots in the LRU and its value), one variant
// (its tuple, response, headers object and buffer) and one header, Vary name or tag. Measured on Node 20 (64-bit), an
// entry with a short key and one header takes about 770 bytes in all and is counted 860: these err above.
const ENTRY = 200
const VARIANT = 400
const FIELD = 40

/**
 * The bytes a stored value takes in memory, its key included: every string at two bytes a character (V8 keeps some at
 * one, never more than two), each body's bytes (held once), its tags and their versions, and the objects around them.
 */
export function sizeOf (stored: StoredVariants, key: string): number {
  let size = ENTRY + 2 * key.length
  for (const name of stored.vary) size += FIELD + 2 * name.length
  for (const [variant, response] of stored.variants) {
    size += VARIANT + 2 * (variant.length + response.etag.length) + response.body.length
    for (const [name, value] of Object.entries(response.headers)) size += FIELD + 2 * (name.length + String(value).length)
    // Tags come from a function of the request: a long list of them may outweigh the body.
    for (const tag of response.tags ?? []) size += FIELD + 2 * tag.length
    size += 2 * (response.tagEpoch?.length ?? 0)
  }
  return size
}
