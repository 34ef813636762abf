import type { FastifyInstance, FastifyRequest } from 'fastify'
import { CacheLevels } from '../lib/levels.js'
import { AlreadyRegisteredError, NotRegisteredError } from '../lib/errors.js'
import type { CacheLookup } from '../lib/lookup.js'
import type { RequestCache } from '../lib/scopes/request.js'
import type { SessionCache } from '../lib/scopes/session.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The registered cache levels and their counters. */
    multiCache: CacheLevels
  }
}

/** The plugin that adds each level, for messages. */
export const LEVEL_PLUGINS = { request: 'requestCache', session: 'sessionCache', app: 'appCache', route: 'routeCache' } as const

/** How a request gets what a level gives it, once the level is registered. */
export interface RequestAccess {
  reqCache?: (request: FastifyRequest) => RequestCache
  sessionCache?: (request: FastifyRequest) => SessionCache
  cache?: (request: FastifyRequest) => CacheLookup
}

const access = new WeakMap<CacheLevels, RequestAccess>()

/**
 * The app's registry of levels, created by whichever level comes first. It also declares every decorator the package's
 * types promise (`request.reqCache`, `.sessionCache`, `.cache`, `fastify.appCache`, `.routeCache`), each answering
 * what its level gives, or throwing an error that names the plugin to register when that level is not registered:
 * not `Cannot read properties of undefined` at the first use.
 */
export function levelsOf (fastify: FastifyInstance): CacheLevels {
  if (fastify.hasDecorator('multiCache')) return fastify.multiCache
  const levels = new CacheLevels()
  const given: RequestAccess = {}
  access.set(levels, given)
  fastify.decorate('multiCache', levels)
  // One getter each (not one generic getter): each reads one field, on every use by every request. Each decorator
  // holds its level's class, typed as the app declared the level's keys (lib/typed-keys.ts): the same object, whose
  // keyed methods take only those keys. The casts are there, and in multi-cache.ts, which hands the classes on.
  fastify.decorateRequest('reqCache', {
    getter (this: FastifyRequest) { return (given.reqCache ?? missing('request.reqCache', 'requestCache (fastify-multi-cache/request)'))(this) as unknown as FastifyRequest['reqCache'] }
  })
  fastify.decorateRequest('sessionCache', {
    getter (this: FastifyRequest) { return (given.sessionCache ?? missing('request.sessionCache', 'sessionCache (fastify-multi-cache/session)'))(this) as unknown as FastifyRequest['sessionCache'] }
  })
  fastify.decorateRequest('cache', {
    getter (this: FastifyRequest) { return (given.cache ?? missing('request.cache', 'multiCache (fastify-multi-cache)'))(this) as unknown as FastifyRequest['cache'] }
  })
  fastify.decorate('appCache', { getter: () => (levels.app ?? missing('fastify.appCache', 'appCache (fastify-multi-cache/app)')) as unknown as FastifyInstance['appCache'] })
  fastify.decorate('routeCache', { getter: () => levels.route ?? missing('fastify.routeCache', 'routeCache (fastify-multi-cache/route)') })
  return levels
}

/** Makes `request[name]` answer what `get` gives, for the app whose registry is `levels`. */
export function provide<K extends keyof RequestAccess> (fastify: FastifyInstance, name: K, get: NonNullable<RequestAccess[K]>): void {
  (access.get(levelsOf(fastify)) as RequestAccess)[name] = get
}

function missing (decorator: string, plugin: string): never {
  throw new NotRegisteredError(decorator, plugin)
}

/** Adds a level to the app's registry, refusing a second of its kind. */
export function addLevel<K extends keyof typeof LEVEL_PLUGINS> (fastify: FastifyInstance, name: K, level: NonNullable<CacheLevels[K]>): void {
  const levels = levelsOf(fastify)
  if (levels[name] !== undefined) {
    throw new AlreadyRegisteredError(LEVEL_PLUGINS[name], `register each level once. multiCache registers only the levels not registered yet, so give a level its options either in multiCache's options ({ ${name}: { … } }) or by registering ${LEVEL_PLUGINS[name]} yourself before multiCache`)
  }
  levels[name] = level
}
