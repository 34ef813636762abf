import { randomBytes } from 'node:crypto'
import { digest } from './digest.js'
import { InvalidKeyError, InvalidValueError, TooManyKeysError, describe } from './errors.js'

/** The longest key a level takes by default, in characters. */
export const MAX_KEY_LENGTH = 1024

/** The most keys one call of a batch method takes by default. */
export const MAX_KEYS_PER_CALL = 1000

/** ES2024's `String.prototype.isWellFormed`, in Node since 20 (the project's types stop at ES2023). */
interface MaybeWellFormed { isWellFormed: () => boolean }

/** False when `text` holds a lone surrogate: UTF-8 writes it as U+FFFD, the name of another string. */
function isWellFormed (text: string): boolean {
  return (text as unknown as MaybeWellFormed).isWellFormed()
}

/**
 * What a level takes as a key: a non-empty string of at most `maxLength` characters, and with `wellFormed` (a level
 * whose store writes keys as UTF-8, see `Store.exactKeys`) one without a lone surrogate, which UTF-8 cannot tell from
 * another key. `__proto__` and friends are ordinary keys: no store is a plain object. A key refused here never reaches
 * a store or the bus. A batch method takes at most `maxKeys` keys in one call.
 */
export class KeyRule {
  constructor (readonly maxLength = MAX_KEY_LENGTH, readonly maxKeys = MAX_KEYS_PER_CALL, readonly wellFormed = false) {}

  valid (key: unknown): key is string {
    return typeof key === 'string' && key.length > 0 && key.length <= this.maxLength && this.storable(key)
  }

  /** Whether the store can tell `name` (a key, a tag, a user id) from every other: with `wellFormed`, no lone surrogate. */
  storable (name: string): boolean {
    return !this.wellFormed || isWellFormed(name)
  }

  assert (key: unknown): asserts key is string {
    if (!this.valid(key)) throw this.error(key)
  }

  /** The keys of one call of `method`: an array of at most `maxKeys` (counted before any is looked at). */
  assertCount (method: string, keys: unknown): asserts keys is readonly unknown[] {
    if (!Array.isArray(keys)) throw new InvalidKeyError(`${method}: keys must be an array, got ${describe(keys)}`)
    if (keys.length > this.maxKeys) throw new TooManyKeysError(method, keys.length, this.maxKeys)
  }

  /**
   * The keys of one call, checked (`assertCount`, then every key valid) in a copy: what is checked is what is used,
   * whatever the array given does when read again (an element getter, a change made by the caller meanwhile).
   */
  checkedKeys (method: string, keys: unknown): string[] {
    this.assertCount(method, keys)
    const copy: unknown[] = Array.from(keys)
    for (const key of copy) this.assert(key)
    return copy as string[]
  }

  /** The rejection a method that answers with a promise gives for an invalid key, so that `.catch()` sees it. */
  reject (key: unknown): Promise<never> {
    return Promise.reject(this.error(key))
  }

  private error (key: unknown): Error {
    if (typeof key === 'string' && key.length > this.maxLength) return new InvalidKeyError(`cache key of ${key.length} characters is longer than maxKeyLength (${this.maxLength})`)
    if (typeof key === 'string' && key.length > 0) {
      return new InvalidKeyError(`cache key holds a lone surrogate (at index ${loneSurrogateAt(key)}): a shared store writes keys as UTF-8, where it would name the same entry as another key; keys must be well-formed Unicode`)
    }
    return new InvalidKeyError(`cache key must be a non-empty string, got ${describe(key)}`)
  }
}

/** Where the first UTF-16 code unit that is half of no pair is: in a `u` pattern a pair is one code point, not `Cs`. */
function loneSurrogateAt (text: string): number {
  return text.search(/\p{Cs}/u)
}

/** A value that may be cached: anything but `undefined` itself, which means "absent" (a `set(key, undefined)` does not compile). */
export type Defined<T> = [T] extends [undefined] ? never : T

/** Throws when `value` is undefined, which every level reads as "absent". */
export function assertValue (key: string, value: unknown): void {
  if (value === undefined) throw new InvalidValueError(key)
}

/** A new session id: 256 random bits, base64url (43 characters, cookie-safe). */
export function newSessionId (): string {
  return randomBytes(32).toString('base64url')
}

/**
 * The name a session is stored under: a SHA-256 of its id, so that whoever can list the store's keys cannot
 * present them as cookies. It does not depend on the cookie secret, so rotating the secret loses no session.
 */
export function sessionStoreKey (id: string): string {
  return digest('sha256', id, 'base64url')
}
