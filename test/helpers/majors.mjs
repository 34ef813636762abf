// Loaded into every test process (tap's node-arg). With IOREDIS_MAJOR=6, `ioredis` and `@fastify/redis` resolve to
// the newest majors, installed under npm aliases (ioredis 6, @fastify/redis 9), in the tests and in the package
// alike (a Redis URL store imports ioredis itself): the Redis tests prove both majors the peer ranges accept.
import { register } from 'node:module'

const major = process.env.IOREDIS_MAJOR ?? '5'
if (major === '6') {
  register('./majors-hooks.mjs', { parentURL: import.meta.url, data: { ioredis: 'ioredis-6', '@fastify/redis': 'fastify-redis-9' } })
} else if (major !== '5') {
  throw new Error(`IOREDIS_MAJOR must be 5 or 6, got ${major}`)
}
