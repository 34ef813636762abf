import type { Duration } from './durations.js'
import type { QueryRule } from './http/request.js'
import { readOptions, type OptionReader } from './options.js'

/** `config.cache` of a route, for a request type `R` (the plugin fills in Fastify's). */
export interface RouteConfig<R> {
  level: 'app' | 'session'
  ttl?: Duration
  key?: (request: R) => string
  shared?: boolean
  methods?: string[]
  statusCodes?: number[]
  query?: 'all' | 'none' | string[]
  hook?: 'preHandler' | 'onRequest'
  staleWhileRevalidate?: Duration
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
