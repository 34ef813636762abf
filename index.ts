import { multiCache } from './plugins/multi-cache.js'

export default multiCache
export { multiCache, type MultiCacheOptions } from './plugins/multi-cache.js'
export type { AdvisorOptions } from './plugins/advisor.js'
export { requestCache, type RequestCacheOptions } from './plugins/request-cache.js'
export { sessionCache, type SessionCacheOptions, type SessionCookieOptions } from './plugins/session-cache.js'
export { appCache, type AppCacheOptions } from './plugins/app-cache.js'
export { routeCache, cacheConfig, type RouteCacheOptions, type RouteCacheConfig, type ResponseCache } from './plugins/route-cache.js'

export type { Store, Awaitable, GroupOperations, Group, GroupChange, Announcement, AnnouncedChange, FenceOperations, TagOperations, TagEpoch, Invalidation, TimedValue, KeyQuery, KeyPage, StoreEntry, FencedEntry } from './lib/store.js'
export { MemoryStore, type MemoryStoreOptions } from './lib/stores/memory.js'
export { RedisStore, type RedisStoreOptions, type RedisClient, type RedisConnection, type RedisClusterClient } from './lib/stores/redis.js'
export { KeyvStore, type KeyvStoreOptions, type KeyvLike } from './lib/stores/keyv.js'
export { TieredStore, type TieredStoreOptions } from './lib/tiers.js'
export { jsonSerializer, type Serializer } from './lib/serializer.js'
export type { StoreOption, SharedStoreOptions, L1Options } from './lib/backend.js'
export type { Duration } from './lib/durations.js'
export type { BatchLoad, BatchResult, BatchValue } from './lib/batch.js'
export type { BatchLoader, BatchLoaderOptions } from './lib/batch-loader.js'
export type { SessionSetOptions } from './lib/scopes/session.js'
export type { AppSetOptions, AppLoadOptions, DefineOptions, DefinedKey, InvalidateOptions, LoadLock } from './lib/scopes/application.js'
export type { Logger } from './lib/burst-log.js'
export type { CacheLevel, LookupLoadOptions } from './lib/lookup.js'
export type {
  AppCacheKeys, SessionCacheKeys, RequestCacheKeys, AppCache, SessionCache, RequestCache, CacheLookup,
  TypedAppCache, TypedSessionCache, TypedRequestCache, TypedCacheLookup, PartlyTypedCacheLookup, DeclaringLevel, SilentLevel, LookupKey, LookupValue,
  Declares, ValueOf, ValueFor, Loaded, LoaderFor, BatchResultFor, BatchLoaderFor, Keyed
} from './lib/typed-keys.js'
export type { CacheLevels, MultiCacheStats } from './lib/levels.js'
export type { LevelStatsSnapshot } from './lib/stats.js'
export type { AdviceFinding, AdviceKind, AdvisorLevel } from './lib/advice.js'
export type { MetricsOptions, MetricsRegistry } from './plugins/metrics.js'
export {
  CACHE_OPERATION_CHANNEL, subscribeCacheOperations,
  type CacheOperationContext, type CacheOperationName, type CacheEventLevel, type CacheTier, type CacheOperationListener, type CacheOperationSubscribeOptions,
  type CacheDropReason
} from './lib/events.js'
export {
  InvalidOptionError, InvalidKeyError, InvalidValueError, PreloadError, DefineError, UnsupportedError, SerializeError, StoreError,
  NoSessionError, AlreadyRegisteredError, EntryTooLargeError, LoadTimeoutError, UnconfirmedInvalidationError, StoreUnreachableError, NotRegisteredError,
  TooManyKeysError, BatchResultError
} from './lib/errors.js'
