import { test, type Test } from 'tap'
import { secret } from '../helpers/app.js'
import { Browser, forkInstance, type Instance } from '../helpers/instances.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

// Two app processes over one Redis, each with the session level's default memory tier: a logout, a regenerate() or
// a destroyAllOf() on one is final on the other for every request that starts after it returned (issue 18, 4).

const CYCLES = 60

/** How many requests with an ended id are sent to B at once, as soon as the call on A returned. */
async function staleAnswers (browser: Browser, url: string): Promise<number> {
  const answers = await Promise.all(Array.from({ length: 4 }, async () => (await browser.clone().request(`${url}/me`)).json().user))
  return answers.filter((user) => user !== null).length
}

async function twoInstances (t: Test): Promise<[Instance, Instance] | undefined> {
  if (await redisFor(t) === undefined) return undefined
  const params = { redis: REDIS_URL, prefix: uniquePrefix(t), secret }
  return await Promise.all([forkInstance(t, 'sessions.ts', 'sessions', params), forkInstance(t, 'sessions.ts', 'sessions', params)])
}

/** Other users browsing B all along: the light load under which B's memory tier answered ended sessions. */
function backgroundLoad (t: Test, b: Instance, a: Instance): void {
  const load = { running: true }
  t.teardown(() => { load.running = false })
  const run = async (visitor: Browser): Promise<void> => {
    await visitor.request(`${a.url}/login`, { method: 'POST', body: { user: 'visitor' } })
    while (load.running) await visitor.request(`${b.url}/me`)
  }
  for (let i = 0; i < 2; i++) run(new Browser()).catch(() => {})
}

test('a logout on one instance is final on the other at once', async (t) => {
  const instances = await twoInstances(t)
  if (instances === undefined) return
  const [a, b] = instances
  backgroundLoad(t, b, a)
  let stale = 0
  for (let i = 0; i < CYCLES; i++) {
    const browser = new Browser()
    await browser.request(`${a.url}/login`, { method: 'POST', body: { user: `u${i}` } })
    if ((await browser.request(`${b.url}/me`)).json().user !== `u${i}`) throw new Error('B does not see the login')
    const stolen = browser.clone()
    await browser.request(`${a.url}/logout`, { method: 'POST' })
    stale += await staleAnswers(stolen, b.url)
  }
  t.equal(stale, 0, `none of ${4 * CYCLES} requests after the logout returned was served the ended session`)
})

test('regenerate() on one instance ends the old id on the other at once', async (t) => {
  const instances = await twoInstances(t)
  if (instances === undefined) return
  const [a, b] = instances
  backgroundLoad(t, b, a)
  let stale = 0
  for (let i = 0; i < CYCLES; i++) {
    const browser = new Browser()
    await browser.request(`${a.url}/login`, { method: 'POST', body: { user: `u${i}` } })
    await browser.request(`${b.url}/me`)
    const before = browser.clone()
    await browser.request(`${a.url}/regenerate`, { method: 'POST' })
    stale += await staleAnswers(before, b.url)
    if ((await browser.request(`${b.url}/me`)).json().user !== `u${i}`) throw new Error('the new id must work on B')
  }
  t.equal(stale, 0, `none of ${4 * CYCLES} requests with the old id was served the session`)
})

test('destroyAllOf() on one instance ends every session of the user on the other at once', async (t) => {
  const instances = await twoInstances(t)
  if (instances === undefined) return
  const [a, b] = instances
  backgroundLoad(t, b, a)
  let stale = 0
  for (let i = 0; i < CYCLES / 3; i++) {
    const laptop = new Browser()
    const phone = new Browser()
    await laptop.request(`${a.url}/login`, { method: 'POST', body: { user: `u${i}` } })
    await phone.request(`${b.url}/login`, { method: 'POST', body: { user: `u${i}` } })
    for (const browser of [laptop, phone]) await browser.request(`${b.url}/me`)
    const ended = (await laptop.request(`${a.url}/everywhere`, { method: 'POST' })).json().ended
    if (ended !== 2) throw new Error(`destroyAllOf ended ${String(ended)} sessions, not 2`)
    for (const browser of [laptop, phone]) stale += await staleAnswers(browser, b.url)
  }
  t.equal(stale, 0, 'no request after it returned was served one of the ended sessions')
})

test('a logout while the other instance is stalled returns, and the stalled instance, resumed, serves the ended session to no request', async (t) => {
  const instances = await twoInstances(t)
  if (instances === undefined) return
  const [a, b] = instances
  let stale = 0
  for (let i = 0; i < 5; i++) {
    const browser = new Browser()
    await browser.request(`${a.url}/login`, { method: 'POST', body: { user: `u${i}` } })
    if ((await browser.request(`${b.url}/me`)).json().user !== `u${i}`) throw new Error('B does not see the login')
    const stolen = browser.clone()
    b.pause()
    try {
      // B holds the session in memory under a lease and cannot acknowledge: the logout waits for the lease to end.
      t.equal((await browser.request(`${a.url}/logout`, { method: 'POST' })).status, 200, 'the logout returns while B is stalled')
    } finally {
      b.resume()
    }
    stale += await staleAnswers(stolen, b.url)
  }
  t.equal(stale, 0, 'no request B began once it was resumed served the ended session')
})
