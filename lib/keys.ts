import { randomBytes } from 'node:crypto'
import { digest } from './digest.js'
import { InvalidKeyError, InvalidValueError, TooManyKeysError, describe } from './errors.js'

/** The longest key a level takes by default, in characters. */
export const MAX_KEY_LENGTH = 1024

/** The most keys one call of a batch method takes by default. */
export const MAX_KEYS_PER_CALL = 1000

/**
 * What a level takes as a key: a non-empty string of at most `maxLength` characters. `__proto__` and friends are
 * ordinary keys: no store is a plain object. A key refused here never reaches a store or the bus. A batch method takes
 * at most `maxKeys` keys in one call.
 */
export class KeyRule {
  constructor (readonly maxLength = MAX_KEY_LENGTH, readonly maxKeys = MAX_KEYS_PER_CALL) {}

  valid (key: unknown): key is string {
    return typeof key === 'string' && key.length > 0 && key.length <= this.maxLength
  }

  assert (key: unknown): asserts key is string {
    if (!this.valid(key)) throw this.error(key)
  }

  /** The keys of one call of `method`: an array of at most `maxKeys` (counted before any is looked at). */
  assertCount (method: string, keys: unknown): asserts keys is readonly unknown[] {
    if (!Array.isArray(keys)) throw new InvalidKeyError(`${method}: keys must be an array, got ${describe(keys)}`)
    if (keys.length > this.maxKeys) throw new TooManyKeysError(method, keys.length, this.maxKeys)
  }

  /** `assertCount`, then every key valid. */
  assertMany (method: string, keys: unknown): asserts keys is readonly string[] {
    this.assertCount(method, keys)
    for (const key of keys) this.assert(key)
  }

  /** The rejection a method that answers with a promise gives for an invalid key, so that `.catch()` sees it. */
  reject (key: unknown): Promise<never> {
    return Promise.reject(this.error(key))
  }

  private error (key: unknown): Error {
    return new InvalidKeyError(typeof key === 'string' && key.length > this.maxLength
      ? `cache key of ${key.length} characters is longer than maxKeyLength (${this.maxLength})`
      : `cache key must be a non-empty string, got ${describe(key)}`)
  }
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
