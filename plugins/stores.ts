import type { FastifyInstance } from 'fastify'
import { openBackend, type Backend, type BackendContext, type SharedStoreOptions } from '../lib/backend.js'
import type { OptionReader } from '../lib/options.js'
import type { RedisClient } from '../lib/stores/redis.js'
import { levelsOf } from './levels.js'

/**
 * A level's backend (see `openBackend`), with what only Fastify knows: `fastify.redis` for `store: 'redis'`, the app's
 * log and levels, and `onClose` to close what the backend opened.
 */
export async function backendOf (fastify: FastifyInstance, read: OptionReader, options: SharedStoreOptions & { store?: unknown, lock?: unknown }, level: Omit<BackendContext, 'log' | 'levels' | 'redis'>): Promise<Backend> {
  const backend = await openBackend(read, options, { ...level, log: fastify.log, levels: levelsOf(fastify), redis: (namespace) => redisOf(fastify, namespace) })
  fastify.addHook('onClose', async () => { await backend.close() })
  return backend
}

function redisOf (fastify: FastifyInstance, namespace: string | undefined): RedisClient | undefined {
  const redis = (fastify as unknown as { redis?: RedisClient & Record<string, RedisClient | undefined> }).redis
  if (redis === undefined) return undefined
  return namespace === undefined ? redis : redis[namespace]
}
