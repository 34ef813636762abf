import type { FastifyInstance } from 'fastify'
import { CacheLevels } from '../lib/levels.js'
import { AlreadyRegisteredError } from '../lib/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The registered cache levels and their counters. */
    multiCache: CacheLevels
  }
}

/** The plugin that adds each level, for messages. */
export const LEVEL_PLUGINS = { request: 'requestCache', session: 'sessionCache', app: 'appCache', route: 'routeCache' } as const

/** The app's registry of levels, created by whichever level comes first. */
export function levelsOf (fastify: FastifyInstance): CacheLevels {
  if (!fastify.hasDecorator('multiCache')) fastify.decorate('multiCache', new CacheLevels())
  return fastify.multiCache
}

/** Adds a level to the app's registry, refusing a second of its kind. */
export function addLevel<K extends keyof typeof LEVEL_PLUGINS> (fastify: FastifyInstance, name: K, level: NonNullable<CacheLevels[K]>): void {
  const levels = levelsOf(fastify)
  if (levels[name] !== undefined) {
    throw new AlreadyRegisteredError(LEVEL_PLUGINS[name], `register each level once. multiCache registers only the levels not registered yet, so give a level its options either in multiCache's options ({ ${name}: { … } }) or by registering ${LEVEL_PLUGINS[name]} yourself before multiCache`)
  }
  levels[name] = level
}
