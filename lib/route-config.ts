import type { Duration } from './durations.js'
import type { QueryRule } from './http/request.js'
import { readOptions, type OptionReader } from './options.js'

/** `config.cache` of a route, for a request type `R` (the plugin fills in Fastify's). */
export interface RouteConfig<R> {
  /** `'app'`: one copy for every anonymous user; `'session'`: one per session, never shared. */
  level: 'app' | 'session'
  /** Longest a response is kept: ms or a duration string. Default: the plugin's `ttl` (1 minute). */
  ttl?: Duration
  /** Replaces the path and query in the key (scoped to this route; method, host and `Vary` still count). */
  key?: (request: R) => string
  /**
   * At level `'app'`, also serve and store requests that carry `Authorization` or a cookie. Only for responses that
   * are the same for every user. Default false.
   */
  shared?: boolean
  /** Methods whose responses are stored. Default `['GET', 'HEAD']` (HEAD is answered from GET's entry). */
  methods?: string[]
  /** Status codes that are stored. Default `[200]`. */
  statusCodes?: number[]
  /** The query parameters in the key: `'all'` (default), `'none'`, or a list of names. */
  query?: 'all' | 'none' | string[]
  /**
   * Where the lookup runs. `'preHandler'` (default): as the route's last preHandler, after every hook that can refuse
   * the request. `'onRequest'`: after every onRequest hook (as the route's first preParsing hook), so that a hit skips
   * every later hook (auth included): only for routes that are public to everyone.
   */
  hook?: 'preHandler' | 'onRequest'
  /**
   * After its lifetime, how long a stored response is still served (`x-cache: STALE`) while the first request to
   * find it stale runs the handler to refresh it. Default 0.
   */
  staleWhileRevalidate?: Duration
  /**
   * Tags of the stored response (or a function of the request that gives them): `appCache.invalidateTag(tag)` drops
   * it, on every instance. Needs the application level.
   */
  tags?: string[] | ((request: R) => string[])
}

/** A route's `config.cache`, checked, with its defaults. */
export interface RouteRule<R> {
  level: 'app' | 'session'
  /** ms, never 0: a stored response always expires. */
  ttl: number
  key: ((request: R) => string) | undefined
  shared: boolean
  methods: ReadonlySet<string>
  statusCodes: ReadonlySet<number>
  query: QueryRule
  hook: 'preHandler' | 'onRequest'
  /** ms; 0: none. */
  staleWhileRevalidate: number
  tags: readonly string[] | ((request: R) => string[]) | undefined
}

const KEYS = ['level', 'ttl', 'key', 'shared', 'methods', 'statusCodes', 'query', 'hook', 'staleWhileRevalidate', 'tags']

/** Reads `config.cache`; an invalid one throws an error naming the route (`where`) and the option. */
export function readRouteRule<R> (where: string, config: unknown, defaultTtl: number): RouteRule<R> {
  const read: OptionReader = readOptions(where, config)
  read.only(KEYS)
  const { level, shared = false, methods = ['GET', 'HEAD'], statusCodes = [200], query = 'all', hook = 'preHandler' } = config as Record<string, unknown>
  if (level !== 'app' && level !== 'session') read.fail('level', "must be 'app' or 'session'")
  const ttl = read.duration('ttl', defaultTtl)
  if (ttl === 0) read.fail('ttl', 'must be greater than 0: a stored response always expires')
  if (typeof shared !== 'boolean') read.fail('shared', 'must be a boolean')
  if (shared && level === 'session') read.fail('shared', "only applies at level 'app': session-level entries are never shared")
  if (!nonEmptyArray(methods, (m) => typeof m === 'string' && m !== '')) read.fail('methods', 'must be a non-empty array of method names')
  if (!nonEmptyArray(statusCodes, (s) => Number.isInteger(s) && (s as number) >= 200 && (s as number) <= 599 && s !== 206 && s !== 304)) {
    read.fail('statusCodes', 'must be a non-empty array of status codes from 200 to 599 (not 206 or 304, which answer one request only)')
  }
  if (query !== 'all' && query !== 'none' && !nonEmptyArray(query, (name) => typeof name === 'string' && name !== '')) {
    read.fail('query', "must be 'all', 'none' or a non-empty array of parameter names")
  }
  if (hook !== 'preHandler' && hook !== 'onRequest') read.fail('hook', "must be 'preHandler' or 'onRequest'")
  const { tags } = config as { tags?: unknown }
  if (tags !== undefined && typeof tags !== 'function' && !(Array.isArray(tags) && tags.every((tag) => typeof tag === 'string' && tag !== ''))) {
    read.fail('tags', 'must be an array of non-empty strings, or a function of the request that returns one')
  }
  return {
    level,
    ttl,
    key: read.optionalFunction<(request: R) => string>('key'),
    shared,
    methods: new Set((methods as string[]).map((method) => method.toUpperCase())),
    statusCodes: new Set(statusCodes as number[]),
    query: Array.isArray(query) ? [...query as string[]] : query as 'all' | 'none',
    hook,
    staleWhileRevalidate: read.duration('staleWhileRevalidate', 0),
    tags: typeof tags === 'function' ? tags as (request: R) => string[] : tags === undefined ? undefined : [...tags as string[]]
  }
}

function nonEmptyArray (value: unknown, valid: (element: unknown) => boolean): boolean {
  return Array.isArray(value) && value.length > 0 && value.every(valid)
}
