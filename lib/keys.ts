import { createHash, randomBytes } from 'node:crypto'
import { InvalidKeyError, InvalidValueError, describe } from './errors.js'

/** True for a valid key: a non-empty string. `__proto__` and friends are ordinary keys: no store is a plain object. */
export function isKey (key: unknown): key is string {
  return typeof key === 'string' && key.length > 0
}

/** Throws unless `key` is a valid key. */
export function assertKey (key: unknown): asserts key is string {
  if (!isKey(key)) throw new InvalidKeyError(describe(key))
}

/** The rejection a method that answers with a promise gives for an invalid key, so that `.catch()` sees it. */
export function rejectKey (key: unknown): Promise<never> {
  return Promise.reject(new InvalidKeyError(describe(key)))
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
  return createHash('sha256').update(id).digest('base64url')
}
