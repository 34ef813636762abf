import type { Scenario } from '../harness/scenario.js'
import { appLevel } from './app-level.js'
import { hotPath } from './hot-path.js'
import { memory } from './memory.js'
import { overhead } from './overhead.js'
import { redisDown } from './redis-down.js'
import { redisTwoTier } from './redis-two-tier.js'
import { requestLevel } from './request-level.js'
import { sessionLevel } from './session-level.js'
import { stampede } from './stampede.js'
import { stampedeRedis } from './stampede-redis.js'

/**
 * Every scenario, in the order `npm run bench` runs them. The Redis scenarios (two tiers, Redis down, the stampede
 * across two instances) join this list with the Redis store.
 */
export const scenarios: readonly Scenario[] = [
  overhead,
  requestLevel,
  sessionLevel,
  appLevel,
  hotPath,
  stampede,
  memory,
  redisTwoTier,
  stampedeRedis,
  redisDown
]
