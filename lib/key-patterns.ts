// Keys grouped into patterns, so that what the advisor learns about `item:17` and `item:42` adds up under `item:*`, and
// what it keeps is bounded by the number of patterns an app uses, not the number of keys its clients make up.

/** The longest pattern kept, in characters: a longer one is cut, so a key of any length costs the same. */
export const MAX_PATTERN_LENGTH = 200

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi
// Random ids (base64url session-like tokens) are runs of letters of both cases, digits, `-` and `_`.
const TOKEN = /[A-Za-z0-9_-]{16,}/g
const WORD = /[A-Za-z0-9]+/g
const DIGITS = /^\d+$/
const HEX = /^[0-9a-f]+$/i
const HAS_DIGIT = /\d/
const HAS_LETTER = /[A-Za-z]/
const HAS_UPPER = /[A-Z]/
const HAS_LOWER = /[a-z]/
// `*-*` or `*_*`: the pieces of one id (a base64url token) that the word split cut apart.
const JOINED = /\*(?:[-_.]\*)+/g

/**
 * `item:17` → `item:*`: numbers, UUIDs, hex ids of 8 characters or more, and long tokens mixing letters and digits
 * (16 characters or more; with `-` and `_`, also both cases) become `*`. Words stay (`v2`, `page2`): a version or a page name is part of what a key is, not which one.
 */
export function keyPattern (key: string): string {
  const pattern = key.replace(UUID, '*').replace(TOKEN, (token) => isToken(token) ? '*' : token).replace(WORD, (word) => isId(word) ? '*' : word).replace(JOINED, '*')
  return pattern.length > MAX_PATTERN_LENGTH ? `${pattern.slice(0, MAX_PATTERN_LENGTH - 1)}…` : pattern
}

function isToken (token: string): boolean {
  return HAS_DIGIT.test(token) && HAS_UPPER.test(token) && HAS_LOWER.test(token)
}

function isId (word: string): boolean {
  if (DIGITS.test(word)) return true
  if (!HAS_DIGIT.test(word)) return false
  if (word.length >= 8 && HEX.test(word)) return true
  return word.length >= 16 && HAS_LETTER.test(word)
}

/** A 32-bit hash of `text` (FNV-1a, then murmur3's finaliser so that near keys land far apart), seeded. */
export function hash32 (text: string, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i)
    h = Math.imul(h, 0x01000193)
  }
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  h ^= h >>> 16
  return h >>> 0
}
