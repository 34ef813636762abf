import { test } from 'tap'
import { Overdue, withBudget } from '../../lib/budget.js'
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

test('operations that outlive their budget are counted until the backend answers; past the bound the next fails at once', async (t) => {
  const overdue = new Overdue(3)
  const answers: Array<(value: string) => void> = []
  const stalled = async (): Promise<string> => await new Promise<string>((resolve) => { answers.push(resolve) })
  const timedOut = await Promise.allSettled([1, 2, 3].map(async () => await withBudget('get', 10, stalled, overdue)))
  t.same(timedOut.map((outcome) => outcome.status), ['rejected', 'rejected', 'rejected'])
  t.equal(overdue.count, 3, 'each still waits for its answer')
  const started = Date.now()
  await t.rejects(withBudget('get', 1000, stalled, overdue), { code: 'FST_MULTICACHE_STORE', message: 'store get failed: 3 operations that ran out of their time budget still wait for the store to answer' })
  t.ok(Date.now() - started < 100, 'refused at once, not after its budget')
  t.equal(answers.length, 3, 'and never sent')
  for (const answer of answers) answer('late')
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(overdue.count, 0, 'answered late: no longer overdue')
  t.equal(await withBudget('get', 1000, async () => 'v', overdue), 'v', 'the next goes through')
  // One that fails late counts as answered too, and one answered in time never counted.
  await t.rejects(withBudget('get', 10, async () => await new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('late')) }, 30)), overdue))
  t.equal(overdue.count, 1)
  await new Promise((resolve) => setTimeout(resolve, 40))
  t.equal(overdue.count, 0)
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
