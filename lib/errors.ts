// The named import: the emitted declarations then say `import('@fastify/error').FastifyErrorConstructor`, which
// every module resolution finds. Through the default import they said `createError.FastifyErrorConstructor`, which
// under `moduleResolution: bundler` is not a namespace.
import { createError } from '@fastify/error'

// One typed error per failure a user may want to match on, by `code` or with `instanceof`. `instanceof` holds across
// copies of the package (an app that imports it and also requires it loads the ESM and the CommonJS build, each with
// its own classes): @fastify/error answers it from a `Symbol.for` of the error's code on the prototype, not from the
// class that made it. test/package.test.ts proves it on the packed package.

/** An option given at registration is invalid: `<plugin>: option "<name>" <what was expected>, got <value>`. */
export const InvalidOptionError = createError<[string, string, string, string]>(
  'FST_MULTICACHE_INVALID_OPTION', '%s: option "%s" %s, got %s', 500, TypeError)

/** A cache key is not a non-empty string, is longer than `maxKeyLength`, or (on a shared store) holds a lone surrogate. */
export const InvalidKeyError = createError<[string]>(
  'FST_MULTICACHE_INVALID_KEY', '%s', 500, TypeError)

/**
 * One call was given more keys than its level's `maxKeysPerCall`: refused whole, before any key is read, so that a list
 * a client chooses cannot make one call hold memory without bound.
 */
export const TooManyKeysError = createError<[string, number, number]>(
  'FST_MULTICACHE_TOO_MANY_KEYS', '%s: %d keys in one call, more than maxKeysPerCall (%d): split the list, or raise maxKeysPerCall', 500, RangeError)

/**
 * A batch loader answered something that cannot be matched to its keys: nothing of it is cached, and every caller
 * waiting for one of its keys gets this error.
 */
export const BatchResultError = createError<[string, string]>(
  'FST_MULTICACHE_BATCH_RESULT', '%s: the loader answered %s; it must answer an array with one value per key in the order of the keys (undefined for a key it has no value for), a Map or an object by key', 500, TypeError)

/** `undefined` was given as a value: it means "absent" and cannot be cached. */
export const InvalidValueError = createError<[string]>(
  'FST_MULTICACHE_INVALID_VALUE', 'cannot cache undefined under key "%s": use delete() to remove an entry, or null to cache absence', 500, TypeError)

/** A key defined with `appCache.define()` could not be loaded before the server started. */
export const PreloadError = createError<[string, string, { cause: unknown }?]>(
  'FST_MULTICACHE_PRELOAD_FAILED', 'appCache: preloading the defined key "%s" failed: %s', 500)

/** `appCache.define()` was misused (the key is taken, or the app is already running). */
export const DefineError = createError<[string, string]>(
  'FST_MULTICACHE_DEFINE', 'appCache.define("%s"): %s', 500)

/** A plugin of the package registered a second time on one instance, or again in a context that inherits it. */
export const AlreadyRegisteredError = createError<[string, string]>(
  'FST_MULTICACHE_ALREADY_REGISTERED', '%s is already registered on this instance: %s', 500)

/** A call the configuration does not allow (`regenerate()` with `getSessionId`, a level left out). */
export const UnsupportedError = createError<[string]>(
  'FST_MULTICACHE_UNSUPPORTED', '%s', 500)

/** A session write with `getSessionId` when it gave no id for the request: there is no session to write to. */
export const NoSessionError = createError(
  'FST_MULTICACHE_NO_SESSION', 'sessionCache: getSessionId gave no id for this request, so there is no session to write to (write after authentication, or check request.sessionCache.id)', 500)

/**
 * The message of what was thrown, without ever throwing: a thrown value may be anything, even one that cannot be made
 * a string (`Object.create(null)`, a `toString` or a `message` getter that throws), and the code reporting it must not
 * fail in its turn (a background refresh would leave an unhandled rejection).
 */
export function messageOf (error: unknown, unprintable = 'a thrown value that cannot be printed'): string {
  try {
    return error instanceof Error ? error.message : String(error)
  } catch {
    return unprintable
  }
}

/**
 * Whether `error` (or what it wraps) is Redis refusing a script sent by its SHA-1: not loaded (NOSCRIPT, after
 * `SCRIPT FLUSH` or a restart) or not allowed (an ACL without `EVALSHA`). The script did not run, and the store is as
 * healthy as before: see lib/stores/scripts.ts.
 */
export function scriptRefused (error: unknown): boolean {
  for (let at = error, depth = 0; at instanceof Error && depth < 3; at = at.cause, depth++) {
    const message = at.message
    if (message.startsWith('NOSCRIPT') || (message.startsWith('NOPERM') && message.includes("'evalsha'"))) return true
  }
  return false
}

/** Renders a value for an error message without ever throwing. */
export function describe (value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'function') return 'a function'
  if (value === null || typeof value !== 'object') return String(value)
  return Array.isArray(value) ? 'an array' : 'an object'
}

/** A value the serializer cannot keep faithfully (a function, a BigInt, a circular object, a Map): nothing is stored. */
export const SerializeError = createError<[string, string]>(
  'FST_MULTICACHE_SERIALIZE', 'cannot store the value of "%s": %s', 500, TypeError)

/** A value bigger than `maxEntryBytes` once serialized: refused before it reaches the store, and nothing is evicted. */
export const EntryTooLargeError = createError<[string, number, number]>(
  'FST_MULTICACHE_ENTRY_TOO_LARGE', 'cannot store the value of "%s": %d bytes, more than maxEntryBytes (%d)', 500, RangeError)

/** A load took longer than its `hardTimeout`; it goes on, and fills the cache when it ends. */
export const LoadTimeoutError = createError<[string, number]>(
  'FST_MULTICACHE_LOAD_TIMEOUT', 'appCache: loading "%s" took longer than hardTimeout (%d ms); it goes on in the background', 504)

/**
 * `invalidate(…, { wait })`: some instances did not confirm in time that they dropped the keys. The keys are gone from
 * the shared store all the same; those instances drop their copies when the message reaches them, or at `l1.ttl`.
 */
export const UnconfirmedInvalidationError = createError<[number, number, number]>(
  'FST_MULTICACHE_UNCONFIRMED', 'invalidation: %d of the %d subscribers of the bus did not confirm within %d ms that they dropped the keys; the shared store no longer holds them, but those instances may serve their copy until the message reaches them (at most l1.ttl)', 504)

/**
 * With `requireStore`, the Redis of a `redis://` URL did not answer at start-up: registration fails rather than start
 * without it. The message names the plugin, the URL (without its password) and what the connection met.
 */
export const StoreUnreachableError = createError<[string, string, string]>(
  'FST_MULTICACHE_STORE_UNREACHABLE', '%s: the Redis at %s did not answer at start-up (%s), and requireStore is set: the app does not start without it', 503)

/**
 * A store operation failed or ran out of its time budget; levels read it as a miss. What reaches a client (a session
 * write) is a 503: the service is unavailable for now, not broken. While the circuit breaker is open the error carries
 * `headers: { 'retry-after': seconds }`, which Fastify's default error handler sends.
 */
export const StoreError = createError<[string, string, { cause: unknown }?]>(
  'FST_MULTICACHE_STORE', 'store %s failed: %s', 503)

/** A decorator of a level that is not registered on this instance: the types promise it, the app did not register it. */
export const NotRegisteredError = createError<[string, string]>(
  'FST_MULTICACHE_NOT_REGISTERED', '%s is not available: register %s on this instance (or multiCache, which registers every level) before using it', 500)
