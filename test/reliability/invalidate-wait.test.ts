import { setTimeout as sleep } from 'node:timers/promises'
import { test } from 'tap'
import { Browser, forkInstance, type Instance } from '../helpers/instances.js'
import { REDIS_URL, distantRedis, redisFor, uniquePrefix } from '../helpers/redis.js'
import { until } from '../helpers/until.js'

// Without `wait`, another instance may serve its memory tier's copy for as long as the bus message takes to reach it
// (issue 18, finding 9). With it, `invalidate` resolves only once every instance has dropped its copy: a read that
// starts after that, on any instance, gets the new value. Two app processes, both read without pause; B hears Redis
// 20 ms late (a proxy holds what Redis sends it), so that without `wait` B would serve the old value to reads sent
// well after A's invalidate returned, as this test then reports.

const ROUNDS = 40
/** Readers per instance, each sending its next request as soon as the last is answered. */
const READERS = 6

test('after invalidate(key, { wait: true }) resolved on A, no read started on A or B returns the old value', async (t) => {
  const redis = await redisFor(t)
  if (redis === undefined) return
  const prefix = uniquePrefix(t)
  const price = `${prefix}db:price`
  await redis.set(price, '0')
  const a = await forkInstance(t, 'invalidation.ts', 'priced', { url: REDIS_URL, prefix })
  const b = await forkInstance(t, 'invalidation.ts', 'priced', { url: await distantRedis(t, REDIS_URL, 20), prefix })

  /** Every read: when the test sent it (this process's clock) and the price it got. */
  const reads: Array<{ sent: number, instance: string, price: number }> = []
  /** When the invalidation of each round had resolved: its answer reached this process. */
  const resolved: number[] = []
  const done = new AbortController()
  const reader = async (instance: Instance, name: string): Promise<void> => {
    const browser = new Browser()
    while (!done.signal.aborted) {
      const sent = performance.now()
      const response = await browser.request(instance.url + '/price')
      reads.push({ sent, instance: name, price: (response.json() as { price: number }).price })
    }
  }
  const readers = [...Array.from({ length: READERS }, async () => { await reader(a, 'A') }), ...Array.from({ length: READERS }, async () => { await reader(b, 'B') })]
  const latest = (name: string): number | undefined => reads.findLast((read) => read.instance === name)?.price

  try {
    const admin = new Browser()
    for (let round = 1; round <= ROUNDS; round++) {
      // B serves the last price, from its memory tier: what an invalidation must take away from it.
      await until(() => latest('B') === round - 1, 5000)
      await redis.set(price, String(round))
      const answer = await admin.request(a.url + '/invalidate', { method: 'POST' })
      t.equal(answer.status, 200, `round ${round}: every instance confirmed`)
      resolved.push(performance.now())
      await sleep(5)
    }
  } finally {
    done.abort()
    await Promise.all(readers)
  }

  // The database moved to `round` before the invalidation of `round`: a read sent after that had resolved gets at
  // least `round`.
  const stale = reads.filter((read) => read.price < resolved.filter((at) => at < read.sent).length)
  t.same({ stale: stale.length, first: stale.slice(0, 3) }, { stale: 0, first: [] }, `no stale read among ${reads.length}, ${reads.filter((read) => read.instance === 'B').length} of them on B`)
})
