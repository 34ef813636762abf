// Typed keys: each level's keys and the type of each value, declared once by the app through declaration merging.
// Types only: nothing here exists at run time, and the levels' classes are what runs whatever is declared.
//
// While a level's interface is empty, its public type is its class, exactly as before (any string key, `<T>` per call).
// Once the app declares keys in it, its public type is the class with its keyed methods replaced by the ones below,
// which take only the declared keys (literal keys and template-literal index signatures) and give each its type.
import type { BatchLoad, BatchResult, BatchValue } from './batch.js'
import type { CacheLevel, CacheLookup as LookupClass, LookupLoadOptions } from './lookup.js'
import type { AppCache as AppClass, AppLoadOptions, AppSetOptions, DefineOptions, InvalidateOptions } from './scopes/application.js'
import type { RequestCache as RequestClass } from './scopes/request.js'
import type { SessionCache as SessionClass, SessionSetOptions } from './scopes/session.js'

/**
 * The keys of the application level (`fastify.appCache`) and the type of each value, declared by the app:
 * `declare module 'fastify-multi-cache' { interface AppCacheKeys { catalog: Product[], [key: `product:${number}`]: Product } }`.
 * Left empty, the level takes any string key, typed per call.
 */
export interface AppCacheKeys {}

/** The keys of the session level (`request.sessionCache`) and their types, declared as `AppCacheKeys` is. */
export interface SessionCacheKeys {}

/** The keys of the request level (`request.reqCache`) and their types, declared as `AppCacheKeys` is. */
export interface RequestCacheKeys {}

/** true once `M` declares a key (or an index signature), false while it is empty. */
export type Declares<M> = [keyof M] extends [never] ? false : true

/** The type of key `K` in `M`, without `undefined`, which every level reads as "absent". */
export type ValueOf<M, K extends keyof M> = Exclude<M[K], undefined>

declare const key: unique symbol

/**
 * No value is ever of this type: beside a key's type in `ValueFor`, it only makes the compiler's messages name the key
 * whose value is wrong.
 */
export interface Keyed<K extends string> { readonly [key]: K }

/** What a write of key `K` takes: its declared type `T` (the message of a wrong value reads `ValueFor<"key", T>`). */
export type ValueFor<K extends string, T> = T | Keyed<K>

/** What a loader of key `K` answers: its declared type `T`, or a promise of it. */
export type Loaded<K extends string, T> = ValueFor<K, T> | Promise<ValueFor<K, T>> | PromiseLike<ValueFor<K, T>>

/** A loader of key `K`. */
export type LoaderFor<K extends string, T> = () => Loaded<K, T>

/**
 * The answer of a batch loader of keys `K` whose values are of type `T`: a value per key in their order, or values by key
 * (`BatchResult`, with the mutable Array and Map beside their readonly forms so that the compiler's message about a
 * wrong answer looks inside it).
 */
export type BatchResultFor<K extends string, T> = Array<ValueFor<K, T> | Error> | ReadonlyArray<ValueFor<K, T> | Error>
  | Map<K, ValueFor<K, T> | Error> | ReadonlyMap<K, ValueFor<K, T> | Error> | Readonly<Record<string, ValueFor<K, T> | Error>>

/** A batch loader of keys `K` answering `R` (a promise of it spelt out, so that the compiler's messages look inside it). */
export type BatchLoaderFor<K extends string, R> = (keys: K[]) => R | Promise<R> | PromiseLike<R>

/** What a key gets from a batch answer of type `R` besides its value: `undefined` when `R` may leave it out (a Map or an object). */
type LeftOut<R> = R extends ReadonlyArray<unknown> ? never : undefined

/** Each of `Keys` mapped to its type in `M`, and `Extra` (a miss). */
type ValuesOf<M, Keys extends readonly unknown[], Extra> = { -readonly [I in keyof Keys]: ValueOf<M, Keys[I] & keyof M> | Extra }

// ---- the levels ---------------------------------------------------------------------------------------------------

/** The methods of `RequestCache` that take a key. */
type RequestKeyed = 'get' | 'has' | 'set' | 'delete' | 'getOrLoad'

/** `request.cache`'s memo in the request level: the lookup's, not the app's, so not given to declared keys. */
type RequestMemo = 'memo' | 'memoize'

/** `request.reqCache` with declared keys. The batch `loader()` is unchanged: its keys and values are its own. */
export interface TypedRequestCache<M> extends Omit<RequestClass, RequestKeyed | RequestMemo> {
  get<K extends keyof M & string> (key: K): ValueOf<M, K> | undefined
  has (key: keyof M & string): boolean
  set<K extends keyof M & string> (key: K, value: NoInfer<ValueFor<K, ValueOf<M, K>>>): this
  delete (key: keyof M & string): boolean
  getOrLoad<K extends keyof M & string> (key: K, loader: NoInfer<LoaderFor<K, ValueOf<M, K>>>): Promise<ValueOf<M, K>>
}

/** The methods of `SessionCache` that take a key. */
type SessionKeyed = 'get' | 'has' | 'set' | 'delete' | 'getOrLoad'

/** `request.sessionCache` with declared keys. */
export interface TypedSessionCache<M> extends Omit<SessionClass, SessionKeyed> {
  get<K extends keyof M & string> (key: K): Promise<ValueOf<M, K> | undefined>
  has (key: keyof M & string): Promise<boolean>
  set<K extends keyof M & string> (key: K, value: NoInfer<ValueFor<K, ValueOf<M, K>>>, options?: SessionSetOptions): Promise<void>
  delete (key: keyof M & string): Promise<boolean>
  getOrLoad<K extends keyof M & string> (key: K, loader: NoInfer<LoaderFor<K, ValueOf<M, K>>>, options?: SessionSetOptions): Promise<ValueOf<M, K>>
}

/** The methods of `AppCache` that take a key. */
type AppKeyed = 'get' | 'has' | 'set' | 'delete' | 'invalidate' | 'getOrLoad' | 'getMany' | 'getOrLoadMany' | 'define' | 'refresh'

/** `fastify.appCache` with declared keys. */
export interface TypedAppCache<M> extends Omit<AppClass, AppKeyed> {
  get<K extends keyof M & string> (key: K): Promise<ValueOf<M, K> | undefined>
  has (key: keyof M & string): Promise<boolean>
  set<K extends keyof M & string> (key: K, value: NoInfer<ValueFor<K, ValueOf<M, K>>>, options?: AppSetOptions): Promise<void>
  delete (key: keyof M & string): Promise<boolean>
  invalidate (keys: (keyof M & string) | ReadonlyArray<keyof M & string>, options?: InvalidateOptions): Promise<void>
  getOrLoad<K extends keyof M & string> (key: K, loader: NoInfer<LoaderFor<K, ValueOf<M, K>>>, options?: AppLoadOptions): Promise<ValueOf<M, K>>
  /** Each key's value, in the order of `keys`, or undefined for a miss. */
  getMany<const Keys extends ReadonlyArray<keyof M & string>> (keys: Keys): Promise<ValuesOf<M, Keys, undefined>>
  /** The loader answers values of the keys' types: in their order, or a Map or an object by key (a key left out stays a miss). */
  getOrLoadMany<const Keys extends ReadonlyArray<keyof M & string>, R extends BatchResultFor<Keys[number], ValueOf<M, Keys[number]>>> (
    keys: Keys, loader: BatchLoaderFor<Keys[number], R>, options?: AppLoadOptions
  ): Promise<ValuesOf<M, Keys, LeftOut<R>>>
  define<K extends keyof M & string> (key: K, loader: NoInfer<LoaderFor<K, ValueOf<M, K>>>, options?: DefineOptions): void
  refresh<K extends keyof M & string> (key: K): Promise<ValueOf<M, K>>
}

// ---- the lookup ---------------------------------------------------------------------------------------------------

/** Each level's declared keys. */
interface LevelKeys {
  request: RequestCacheKeys
  session: SessionCacheKeys
  app: AppCacheKeys
}

/** The levels that declare keys. */
export type DeclaringLevel = { [L in CacheLevel]: Declares<LevelKeys[L]> extends true ? L : never }[CacheLevel]

/** The levels that declare none: they take any key, typed per call. */
export type SilentLevel = Exclude<CacheLevel, DeclaringLevel>

/** The keys level `L` declares (when `L` is a union, the keys every one of them declares: the load may go to any). */
type KeyAt<L extends CacheLevel> = keyof LevelKeys[L] & string

/** The type key `K` has at level `L` (at each level, when `L` is a union). */
type ValueAt<L extends CacheLevel, K> = L extends CacheLevel ? ValueOf<LevelKeys[L], K & keyof LevelKeys[L]> : never

/** The keys `request.cache.get` takes: those of every level that declares keys. */
export type LookupKey = { [L in DeclaringLevel]: KeyAt<L> }[DeclaringLevel]

/** The type key `K` has at every level that declares it: a read may find it at any of them. */
export type LookupValue<K> = { [L in DeclaringLevel]: K extends keyof LevelKeys[L] ? ValueOf<LevelKeys[L], K> : never }[DeclaringLevel]

/** `request.cache` once every level declares keys: each key typed by the level named, or by every level that declares it. */
export interface TypedCacheLookup extends Omit<LookupClass, 'get' | 'getOrLoad' | 'getOrLoadMany'> {
  /** The first value found from the request level up: a key declared at some level, of the type it has at each. */
  get<K extends LookupKey> (key: K): Promise<LookupValue<K> | undefined>
  /** Typed by `level`: a key it declares, with a loader of that key's type. */
  getOrLoad<L extends DeclaringLevel, K extends KeyAt<L>> (key: K, loader: NoInfer<LoaderFor<K, ValueAt<L, K>>>, options: LookupLoadOptions & { level: L }): Promise<ValueAt<L, K>>
  /** Typed by `level`: keys it declares, with a loader answering values of their types. */
  getOrLoadMany<L extends DeclaringLevel, const Keys extends ReadonlyArray<KeyAt<L>>, R extends BatchResultFor<Keys[number], ValueAt<L, Keys[number]>>> (
    keys: Keys, loader: BatchLoaderFor<Keys[number], R>, options: LookupLoadOptions & { level: L }
  ): Promise<{ -readonly [I in keyof Keys]: ValueAt<L, Keys[I]> | LeftOut<R> }>
}

/**
 * `request.cache` once some levels declare keys and others none: a load into a level that declares keys is typed by
 * them, a load into one that declares none takes any key and the loader's type, as without declarations.
 */
export interface PartlyTypedCacheLookup extends Omit<LookupClass, 'get' | 'getOrLoad' | 'getOrLoadMany'> {
  get<K extends LookupKey> (key: K): Promise<LookupValue<K> | undefined>
  getOrLoad<L extends DeclaringLevel, K extends KeyAt<L>> (key: K, loader: NoInfer<LoaderFor<K, ValueAt<L, K>>>, options: LookupLoadOptions & { level: L }): Promise<ValueAt<L, K>>
  getOrLoad<T> (key: string, loader: () => T | PromiseLike<T>, options: LookupLoadOptions & { level: SilentLevel }): Promise<T>
  getOrLoadMany<L extends DeclaringLevel, const Keys extends ReadonlyArray<KeyAt<L>>, R extends BatchResultFor<Keys[number], ValueAt<L, Keys[number]>>> (
    keys: Keys, loader: BatchLoaderFor<Keys[number], R>, options: LookupLoadOptions & { level: L }
  ): Promise<{ -readonly [I in keyof Keys]: ValueAt<L, Keys[I]> | LeftOut<R> }>
  getOrLoadMany<R extends BatchResult<string, unknown>> (keys: readonly string[], loader: BatchLoad<string, R>, options: LookupLoadOptions & { level: SilentLevel }): Promise<Array<BatchValue<R>>>
}

// ---- what the app sees --------------------------------------------------------------------------------------------

/** `request.reqCache`: the class while `RequestCacheKeys` is empty, typed by its keys once it declares some. */
export type RequestCache = Declares<RequestCacheKeys> extends true ? TypedRequestCache<RequestCacheKeys> : RequestClass

/** `request.sessionCache`: the class while `SessionCacheKeys` is empty, typed by its keys once it declares some. */
export type SessionCache = Declares<SessionCacheKeys> extends true ? TypedSessionCache<SessionCacheKeys> : SessionClass

/** `fastify.appCache`: the class while `AppCacheKeys` is empty, typed by its keys once it declares some. */
export type AppCache = Declares<AppCacheKeys> extends true ? TypedAppCache<AppCacheKeys> : AppClass

/** `request.cache`: the class while no level declares keys, typed by the levels' keys once one does. */
export type CacheLookup = [DeclaringLevel] extends [never] ? LookupClass : [SilentLevel] extends [never] ? TypedCacheLookup : PartlyTypedCacheLookup
