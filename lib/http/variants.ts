import { variantOf } from './request.js'
import type { HeaderMap } from './headers.js'
import type { CachedResponse } from './response.js'

/**
 * Everything stored under one key: the request headers its responses vary on, and one response per combination of
 * their values, newest first (RFC 9111 §4.1).
 */
export interface StoredVariants {
  vary: string[]
  variants: Array<[string, CachedResponse]>
}

/** The stored response for this request's variant, unless it has expired. */
export function findVariant (stored: StoredVariants, headers: HeaderMap, now: number): CachedResponse | undefined {
  const wanted = variantOf(stored.vary, headers)
  const found = stored.variants.find(([variant]) => variant === wanted)?.[1]
  return found !== undefined && found.expires > now ? found : undefined
}

/**
 * A new value for the key with `response` as the variant of `headers`: at most `max` variants, dropping expired ones
 * and then the oldest. A response that varies on other headers than those stored replaces them all. A new object
 * every time, so that a memory bound measures what it holds.
 */
export function withVariant (
  stored: StoredVariants | undefined,
  vary: string[],
  headers: HeaderMap,
  response: CachedResponse,
  max: number,
  now: number
): StoredVariants {
  const variant = variantOf(vary, headers)
  const kept = stored !== undefined && sameNames(stored.vary, vary)
    ? stored.variants.filter(([other, held]) => other !== variant && held.expires > now).slice(0, max - 1)
    : []
  return { vary, variants: [[variant, response], ...kept] }
}

function sameNames (a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name) => b.includes(name))
}

/** When the last variant expires, in epoch ms. */
export function expiresOf (stored: StoredVariants): number {
  return Math.max(...stored.variants.map(([, response]) => response.expires))
}

/**
 * About the bytes a stored value takes in memory: each body twice (the text, and its bytes once sent) and its
 * headers.
 */
export function sizeOf (stored: StoredVariants): number {
  let size = 0
  for (const [variant, response] of stored.variants) {
    size += variant.length + 2 * response.body.length + response.etag.length + 64
    for (const [name, value] of Object.entries(response.headers)) size += name.length + String(value).length
  }
  return size
}
