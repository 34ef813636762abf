import { BatchResultError, describe } from './errors.js'

/**
 * What a batch loader answers for its keys: one value per key in the order of the keys, or values by key (a Map, or an
 * object for string keys). `undefined`, or a key left out, is a key it has no value for; an `Error` fails its key alone.
 */
export type BatchResult<K, V> = ReadonlyArray<V | Error> | ReadonlyMap<K, V | Error> | Readonly<Record<string, V | Error>>

/**
 * The value a key gets from an answer of type `R`: an array's element (its length is checked), a Map's or an object's
 * value or `undefined` (a key left out). Errors are thrown, not answered.
 */
export type BatchValue<R> = R extends ReadonlyArray<infer V>
  ? Exclude<V, Error>
  : R extends ReadonlyMap<unknown, infer V>
    ? Exclude<V, Error> | undefined
    : R extends Readonly<Record<string, infer V>> ? Exclude<V, Error> | undefined : never

/** A batch loader: called with the keys to load, once per batch. */
export type BatchLoad<K, R extends BatchResult<K, unknown>> = (keys: K[]) => R | PromiseLike<R>

/**
 * The keys a batch loader is given: a frozen copy, typed as the plain array loaders are written against. A loader
 * that sorts or filters them in place (to build its query) would then answer in an order that is no longer the keys',
 * and its values would be kept under other keys: frozen, it throws instead.
 */
export function frozen<K> (keys: readonly K[]): K[] {
  return Object.freeze([...keys]) as K[]
}

/**
 * The answer of a batch loader as one entry per key, in the order of `keys`: a value, `undefined`, or an `Error`.
 * Matching is by position only for an array of exactly one value per key: an array of another length (rows a query
 * dropped or reordered) would give a key another key's value, so it fails the whole batch. Values under keys that
 * were not asked for are never looked at; an object is read by its own properties only (`__proto__` or `constructor`
 * are keys like any other).
 */
export function perKey<K> (method: string, keys: readonly K[], answer: unknown): unknown[] {
  if (Array.isArray(answer)) {
    if (answer.length !== keys.length) throw new BatchResultError(method, `${answer.length} values for ${keys.length} keys`)
    return answer
  }
  if (answer instanceof Map) return keys.map((key) => answer.get(key))
  if (answer === null || typeof answer !== 'object') throw new BatchResultError(method, describe(answer))
  return keys.map((key) => typeof key === 'string' && Object.hasOwn(answer, key) ? (answer as Record<string, unknown>)[key] : undefined)
}
