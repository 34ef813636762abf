import { Redis } from 'ioredis'
import { test } from 'tap'
import { REDIS_URL, redisFor } from './helpers/redis.js'

/** The major version of the package a bare import of `name` reaches (through test/helpers/majors.mjs). */
async function majorOf (name: string): Promise<string> {
  const manifest = `${name}/package.json` // a variable: the type checker need not resolve JSON
  const { default: json } = await import(manifest, { with: { type: 'json' } }) as { default: { version: string } }
  return json.version.split('.')[0] as string
}

// `npm test` runs the test files that import ioredis or @fastify/redis twice: on ioredis 5 with @fastify/redis 7,
// then with IOREDIS_MAJOR=6 on ioredis 6 with @fastify/redis 9. This proves each run talks to the majors it claims.
test('the Redis tests run on the ioredis and @fastify/redis majors IOREDIS_MAJOR names', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const six = process.env.IOREDIS_MAJOR === '6'
  t.equal(await majorOf('ioredis'), six ? '6' : '5')
  t.equal(await majorOf('@fastify/redis'), six ? '9' : '7')
  t.ok(client instanceof Redis, 'the helpers connect with that ioredis')
  t.equal(await client.ping(), 'PONG', `connected to ${REDIS_URL}`)
})
