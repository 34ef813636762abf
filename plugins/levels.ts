import type { FastifyInstance } from 'fastify'
import { CacheLevels } from '../lib/levels.js'
import { UnsupportedError } from '../lib/errors.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The registered cache levels and their counters. */
    multiCache: CacheLevels
  }
}

/** Adds a level to the app's registry (created by whichever level comes first), refusing a second of its kind. */
export function addLevel<K extends keyof CacheLevels> (fastify: FastifyInstance, name: K, level: NonNullable<CacheLevels[K]>): void {
  if (!fastify.hasDecorator('multiCache')) fastify.decorate('multiCache', new CacheLevels())
  const levels = fastify.multiCache
  if (levels[name] !== undefined) throw new UnsupportedError(`fastify-multi-cache: the ${name} level is already registered on this instance`)
  levels[name] = level
}
