import type { Scenario } from '../harness/scenario.js'
import { overhead } from './overhead.js'

/**
 * Every scenario, in the order `npm run bench` runs them. The Redis scenarios (two tiers, Redis down, the stampede
 * across two instances) join this list with the Redis store.
 */
export const scenarios: readonly Scenario[] = [
  overhead
]
