import type { Scenario } from '../harness/scenario.js'
import { appLevel } from './app-level.js'
import { batchReads } from './batch-reads.js'
import { growth } from './growth.js'
import { hotPath } from './hot-path.js'
import { invalidationWindow } from './invalidation-window.js'
import { memory } from './memory.js'
import { overhead } from './overhead.js'
import { promises } from './promises.js'
import { redisCluster } from './redis-cluster.js'
import { redisDown } from './redis-down.js'
import { redisTwoTier } from './redis-two-tier.js'
import { requestLevel } from './request-level.js'
import { sessionLevel } from './session-level.js'
import { sessionRedis } from './session-redis.js'
import { sessionWindow } from './session-window.js'
import { stampede } from './stampede.js'
import { stampedeRedis } from './stampede-redis.js'
import { tags } from './tags.js'

/**
 * Every scenario, in the order `npm run bench` runs them. `redis-two-tier`, `stampede-redis`, `invalidation-window`,
 * `session-redis`, `session-window`, `batch-reads` and `redis-down` need the shared Redis on 127.0.0.1:6379 (`redis-down`
 * also needs `redis-server`, to start one of its own); `redis-cluster` starts a Redis Cluster and a Redis of its own
 * (`redis-server` and `redis-cli`).
 */
export const scenarios: readonly Scenario[] = [
  overhead,
  requestLevel,
  sessionLevel,
  appLevel,
  hotPath,
  tags,
  growth,
  stampede,
  memory,
  redisTwoTier,
  stampedeRedis,
  invalidationWindow,
  sessionRedis,
  sessionWindow,
  batchReads,
  redisDown,
  redisCluster,
  promises
]
