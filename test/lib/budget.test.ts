import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { Waiting, bytesOf, withBudget } from '../../lib/budget.js'
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

test('a backend that answers in time is never refused, however many operations wait on it', async (t) => {
  const waiting = new Waiting(3)
  const answers = await Promise.all(Array.from({ length: 50 }, async (_, i) => await withBudget('get', 1000, async () => await new Promise<number>((resolve) => setTimeout(() => { resolve(i) }, 5)), waiting)))
  t.equal(answers.length, 50, 'fifty at once, past the bound of 3: each answered')
  t.same([waiting.count, waiting.late, waiting.bytes], [0, 0, 0])
})

test('once the backend is behind, no more is sent while the bound of operations waiting (within their budget or past it) is reached; all flows again once it answers', async (t) => {
  const waiting = new Waiting(3)
  const answers: Array<(value: string) => void> = []
  const stalled = async (): Promise<string> => await new Promise<string>((resolve) => { answers.push(resolve) })
  await t.rejects(withBudget('get', 10, stalled, waiting), { message: /no answer within 10 ms/ })
  t.same([waiting.count, waiting.late], [1, 1], 'past its budget, it still waits for its answer')
  // Sent while the first is late: within their budget, they count too (each started before any timed out escaped a
  // count of late ones only).
  const within = [withBudget('get', 1000, stalled, waiting), withBudget('get', 1000, stalled, waiting)]
  t.same([waiting.count, waiting.late], [3, 1])
  const started = Date.now()
  await t.rejects(withBudget('get', 1000, stalled, waiting), { code: 'FST_MULTICACHE_STORE', message: 'store get failed: 3 operations (0 bytes) still wait for the store, 1 of them past their time budget' })
  t.ok(Date.now() - started < 100, 'refused at once, not after its budget')
  t.equal(answers.length, 3, 'and never sent')
  for (const answer of answers) answer('late')
  t.same(await Promise.all(within), ['late', 'late'], 'those within their budget are answered')
  await new Promise((resolve) => setImmediate(resolve))
  t.same([waiting.count, waiting.late], [0, 0], 'answered late: no longer waiting')
  t.equal(await withBudget('get', 1000, async () => 'v', waiting), 'v', 'the next goes through')
  // One that fails late counts as answered too.
  await t.rejects(withBudget('get', 10, async () => await new Promise((_resolve, reject) => setTimeout(() => { reject(new Error('late')) }, 30)), waiting))
  t.same([waiting.count, waiting.late], [1, 1])
  await new Promise((resolve) => setTimeout(resolve, 40))
  t.same([waiting.count, waiting.late], [0, 0])
})

test('once the backend is behind, no more is sent while what the waiting operations write reaches the bound of bytes', async (t) => {
  const waiting = new Waiting(100, 1000)
  const answers: Array<(value: string) => void> = []
  const stalled = async (): Promise<string> => await new Promise<string>((resolve) => { answers.push(resolve) })
  await t.rejects(withBudget('set', 10, stalled, waiting, 600))
  const second = withBudget('set', 1000, stalled, waiting, 500)
  t.same([waiting.count, waiting.bytes], [2, 1100])
  await t.rejects(withBudget('set', 1000, stalled, waiting, 1), { message: 'store set failed: 2 operations (1100 bytes) still wait for the store, 1 of them past their time budget' })
  for (const answer of answers) answer('done')
  await second
  await new Promise((resolve) => setImmediate(resolve))
  t.same([waiting.count, waiting.bytes, waiting.late], [0, 0, 0])
  t.equal(bytesOf(['ab', Buffer.alloc(3), 7, [['set', 'key', 'value']]]), 16, 'strings and buffers by length, nested commands too; numbers not')
})

test('a backend that rejects with what cannot be printed: the caller gets a StoreError, in time or late, and nothing is left waiting', async (t) => {
  const unprintable = [Object.create(null) as object, { toString: () => { throw new Error('no') } }]
  for (const reason of unprintable) {
    const waiting = new Waiting()
    await t.rejects(withBudget('get', 1000, async () => await Promise.reject(reason), waiting), { code: 'FST_MULTICACHE_STORE', message: 'store get failed: the store failed with a value that cannot be printed' })
    t.same([waiting.count, waiting.late, waiting.bytes], [0, 0, 0])
  }
  // Rejected after its budget: the caller already has the timeout; the late rejection must not escape as unhandled.
  const escaped: unknown[] = []
  const onUnhandled = (reason: unknown): void => { escaped.push(reason) }
  process.on('unhandledRejection', onUnhandled)
  t.teardown(() => { process.off('unhandledRejection', onUnhandled) })
  const waiting = new Waiting()
  let fail: (reason: unknown) => void = () => {}
  await t.rejects(withBudget('get', 10, async () => await new Promise((_resolve, reject) => { fail = reject }), waiting, 5), { message: /no answer within 10 ms/ })
  fail(Object.create(null))
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.same(escaped, [])
  t.same([waiting.count, waiting.late, waiting.bytes], [0, 0, 0])
})

test('a change stored in L2 stands when telling the other instances fails: the fault is reported, not thrown', async (t) => {
  const l2 = new MemoryStore({ max: 10 })
  const faults: string[] = []
  const bus = { connected: true, hears: () => true, publish: async () => { throw new Error('publish timed out') } } as unknown as InvalidationBus
  const tier = new TieredStore({ l2, max: 10, ttl: 1000, bus, onFault: (operation, error) => { faults.push(`${operation}: ${(error as Error).message}`) } })
  await tier.set('k', 'v')
  t.equal(l2.get('k'), 'v')
  t.equal(tier.get('k'), 'v')
  await tier.delete('k')
  t.equal(l2.get('k'), undefined)
  t.same(faults, ['publish: publish timed out', 'publish: publish timed out'])
})

test('operations under budgets of one length share one timer: each still fails at its own deadline, an answered one never, and nothing keeps the process alive once all are answered', async (t) => {
  const timers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length
  const before = timers()
  const stalled = async (): Promise<never> => await new Promise<never>(() => {})
  const started = performance.now()
  const failedAt = (operation: Promise<unknown>): Promise<number> => operation.then(() => -1, () => performance.now() - started)
  const first = failedAt(withBudget('first', 60, stalled))
  const answers = Array.from({ length: 100 }, (_, i) => withBudget('answered', 60, async () => await new Promise<number>((resolve) => setTimeout(() => { resolve(i) }, 5))))
  t.ok(timers() - before <= 101, 'the hundred answered ones set their own 5 ms timers; the budgets add one')
  await sleep(30)
  const second = failedAt(withBudget('second', 60, stalled))
  t.same(await Promise.all(answers), Array.from({ length: 100 }, (_, i) => i), 'answered in time: none fails')
  const [firstAt, secondAt] = await Promise.all([first, second])
  t.ok(firstAt >= 58 && firstAt < 200, `the first failed after ${Math.round(firstAt)} ms`)
  t.ok(secondAt >= 88 && secondAt < 230, `the second at its own deadline, 60 ms after it started 30 ms later: ${Math.round(secondAt)} ms`)
  await Promise.all(Array.from({ length: 50 }, async (_, i) => await withBudget('lengths', 100 + i, async () => 'v')))
  t.equal(timers(), before, 'once every operation is answered, no budget timer keeps the process alive')
})
