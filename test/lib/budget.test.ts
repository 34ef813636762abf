import { test } from 'tap'
import { withBudget } from '../../lib/budget.js'
import type { InvalidationBus } from '../../lib/bus.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import { TieredStore } from '../../lib/tiers.js'
import { redisFor } from '../helpers/redis.js'

test('a budget measures the backend, not a busy event loop: an answer that arrived while it was blocked counts', async (t) => {
  const client = await redisFor(t)
  if (client === undefined) return
  const answered = withBudget('ping', 20, async () => await client.ping())
  // A GC pause or a CPU-bound request: the timer fires late, and Redis's answer is already waiting to be read.
  const until = Date.now() + 100
  while (Date.now() < until) { /* busy */ }
  t.equal(await answered, 'PONG')
  await t.rejects(withBudget('never', 20, async () => await new Promise(() => {})), { code: 'FST_MULTICACHE_STORE', message: 'store never failed: no answer within 20 ms' })
})

test('a change stored in L2 stands when telling the other instances fails: the fault is reported, not thrown', async (t) => {
  const l2 = new MemoryStore({ max: 10 })
  const faults: string[] = []
  const bus = { connected: true, publish: async () => { throw new Error('publish timed out') } } as unknown as InvalidationBus
  const tier = new TieredStore({ l2, max: 10, ttl: 1000, bus, onFault: (operation, error) => { faults.push(`${operation}: ${(error as Error).message}`) } })
  await tier.set('k', 'v')
  t.equal(l2.get('k'), 'v')
  t.equal(tier.get('k'), 'v')
  await tier.delete('k')
  t.equal(l2.get('k'), undefined)
  t.same(faults, ['publish: publish timed out', 'publish: publish timed out'])
})
