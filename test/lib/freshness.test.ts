import FakeTimers from '@sinonjs/fake-timers'
import { test, type Test } from 'tap'
import { AppCache, type AppLevelOptions } from '../../lib/scopes/application.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import { Gates } from '../helpers/gate.js'

// Stale-while-revalidate, grace on errors, loader timeouts, tags and refresh jitter at the application level. The
// clock of freshness (Date) is faked; the memory store keeps entries for ttl + window on its own clock.

function level (t: Test, options: Partial<AppLevelOptions> = {}): { app: AppCache, warnings: string[] } {
  const warnings: string[] = []
  const app = new AppCache({ store: new MemoryStore({ max: 100 }), ttl: 0, log: { warn: (_d, message) => { warnings.push(message) } }, ...options })
  t.teardown(() => { app.stop() })
  return { app, warnings }
}

function clock (t: Test): ReturnType<typeof FakeTimers.install> {
  const fake = FakeTimers.install({ toFake: ['Date'] })
  t.teardown(() => fake.uninstall())
  return fake
}

test('stale-while-revalidate: a stale value is served at once, one background load runs, then the fresh one is served', async (t) => {
  const time = clock(t)
  const { app } = level(t)
  const gates = new Gates()
  let version = 0
  const loader = async (): Promise<number> => {
    const mine = ++version
    if (mine > 1) await gates.get(`load${mine}`).pass()
    return mine
  }
  const options = { ttl: 1000, staleWhileRevalidate: 10_000 }
  t.equal(await app.getOrLoad('rates', loader, options), 1)
  time.tick(999)
  t.equal(await app.getOrLoad('rates', loader, options), 1, 'fresh')
  time.tick(2)
  const stale = await Promise.all([1, 2, 3].map(async () => await app.getOrLoad('rates', loader, options)))
  t.same(stale, [1, 1, 1], 'past its ttl: the stale value, at once, while the new one loads')
  await gates.get('load2').reached
  t.equal(version, 2, 'one background load for three stale reads')
  t.equal(await app.get('rates'), 1, 'still stale while it runs')
  gates.get('load2').release()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(await app.getOrLoad('rates', loader, options), 2, 'then the fresh value')
  const stats = app.stats.snapshot()
  t.same([stats.staleServed, stats.backgroundLoads, stats.loads], [4, 1, 2])
  time.tick(1000 + 10_001)
  t.equal(await app.getOrLoad('rates', async () => 'waited for', options), 'waited for', 'past the window, callers wait for a load')
})

test('a background load that fails keeps the stale value until its window ends, and is logged once per burst', async (t) => {
  const time = clock(t)
  const { app, warnings } = level(t, { staleWhileRevalidate: 5000 })
  t.equal(await app.getOrLoad('k', () => 'good', { ttl: 100 }), 'good')
  time.tick(200)
  for (let i = 0; i < 3; i++) {
    t.equal(await app.getOrLoad('k', async () => { throw new Error('db down') }, { ttl: 100 }), 'good')
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(warnings.filter((w) => /background load of "k" failed/.test(w)).length, 1)
  time.tick(5000)
  await t.rejects(app.getOrLoad('k', async () => { throw new Error('db down') }, { ttl: 100 }), /db down/, 'the window is over')
})

test('graceOnError: the last good value stands in for a failing load, counted and logged; without it the error goes to every caller', async (t) => {
  const time = clock(t)
  const { app, warnings } = level(t)
  const failing = async (): Promise<string> => { throw new Error('db down') }
  t.equal(await app.getOrLoad('k', () => 'good', { ttl: 100, graceOnError: 1000 }), 'good')
  time.tick(150)
  const answers = await Promise.all([1, 2].map(async () => await app.getOrLoad('k', failing, { ttl: 100, graceOnError: 1000 })))
  t.same(answers, ['good', 'good'])
  t.equal(app.stats.snapshot().graceServed, 2)
  t.equal(warnings.filter((w) => /loading "k" failed; serving its last good value/.test(w)).length, 1)
  time.tick(1000)
  await t.rejects(app.getOrLoad('k', failing, { ttl: 100, graceOnError: 1000 }), /db down/, 'past the grace')
  // Without a window, an entry is the store's to expire: on its own clock, which is not faked here.
  t.equal(await app.getOrLoad('plain', () => 'v', { ttl: 20 }), 'v')
  await new Promise((resolve) => setTimeout(resolve, 40))
  await t.rejects(app.getOrLoad('plain', failing, { ttl: 20 }), /db down/, 'without grace nothing stands in')
  t.equal(await app.has('k'), false, 'a value in grace is not "had"')
})

test('softTimeout serves the grace value while the load goes on; hardTimeout rejects, and the late value still fills the cache', async (t) => {
  const time = clock(t)
  const { app } = level(t)
  const gates = new Gates()
  const options = { ttl: 100, graceOnError: 10_000, softTimeout: 20 }
  t.equal(await app.getOrLoad('soft', () => 'old', options), 'old')
  time.tick(200)
  t.equal(await app.getOrLoad('soft', async () => { await gates.get('soft').pass(); return 'new' }, options), 'old', 'the loader is slower than softTimeout')
  gates.get('soft').release()
  await gates.get('soft').reached
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(await app.get('soft'), 'new', 'the load went on and filled the cache')

  await t.rejects(app.getOrLoad('hard', async () => { await gates.get('hard').pass(); return 'late' }, { hardTimeout: 20 }), {
    code: 'FST_MULTICACHE_LOAD_TIMEOUT', message: 'appCache: loading "hard" took longer than hardTimeout (20 ms); it goes on in the background'
  })
  gates.get('hard').release()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(await app.get('hard'), 'late', 'the late result still fills the cache')

  t.equal(await app.getOrLoad('graced', () => 'old', { ttl: 100, graceOnError: 10_000 }), 'old')
  time.tick(200)
  t.equal(await app.getOrLoad('graced', async () => await new Promise<string>(() => {}), { ttl: 100, graceOnError: 10_000, hardTimeout: 20 }), 'old', 'a hard timeout with a grace value serves it')
  await t.rejects(app.getOrLoad('x', () => 1, { softTimeout: 'soon' as '1s' }), { code: 'FST_MULTICACHE_INVALID_OPTION', message: /appCache.getOrLoad: option "softTimeout"/ })
})

test('tags: invalidateTag drops every entry with the tag at once, fences loads in flight, and leaves the others', async (t) => {
  const { app } = level(t)
  const gates = new Gates()
  await app.set('p1', 'shoe', { tags: ['product:1', 'catalog'] })
  await app.set('p2', 'sock', { tags: ['product:2', 'catalog'] })
  t.same(await app.getOrLoad('list', () => ['shoe', 'sock'], { tags: ['catalog'] }), ['shoe', 'sock'])
  await app.set('untagged', 'u')
  const inFlight = app.getOrLoad('p3', async () => { await gates.get('p3').pass(); return 'old hat' }, { tags: ['catalog'] })
  await gates.get('p3').reached
  await app.invalidateTag('product:1')
  t.equal(await app.get('p1'), undefined)
  t.equal(await app.get('p2'), 'sock')
  await app.invalidateTag(['catalog'])
  t.same([await app.get('p2'), await app.get('list'), await app.get('untagged')], [undefined, undefined, 'u'])
  t.equal(await app.getOrLoad('p3', () => 'new hat', { tags: ['catalog'] }), 'new hat', 'a caller after the invalidation does not join the load from before')
  gates.get('p3').release()
  t.equal(await inFlight, 'old hat')
  t.equal(await app.get('p3'), 'new hat', 'the load from before wrote nothing')
  await app.set('p1', 'new shoe', { tags: ['product:1'] })
  t.equal(await app.get('p1'), 'new shoe', 'a value written after the invalidation is current')
  t.equal(app.stats.snapshot().tagInvalidations, 2)
  await t.rejects(app.invalidateTag([''] as never), { message: /appCache.invalidateTag: option "tags" must be an array of non-empty strings/ })
  await t.rejects(app.set('x', 1, { tags: 'catalog' as never }), { message: /appCache.set: option "tags"/ })
})

test('invalidateTag fences a second load started while the first, invalidated, still runs', async (t) => {
  const { app } = level(t)
  const gates = new Gates()
  const load = (name: string) => async (): Promise<string> => { await gates.get(name).pass(); return name }
  const first = app.getOrLoad('p', load('first'), { tags: ['catalog'] })
  await gates.get('first').reached
  await app.invalidate('p')
  const second = app.getOrLoad('p', load('second'), { tags: ['catalog'] })
  await gates.get('second').reached
  // The first load ends while the second runs: what it leaves behind must still name the second.
  gates.get('first').release()
  t.equal(await first, 'first')
  await app.invalidateTag('catalog')
  const third = app.getOrLoad('p', load('third'), { tags: ['catalog'] })
  gates.get('second').release()
  gates.get('third').release()
  t.equal(await second, 'second')
  t.equal(await third, 'third', 'a caller after invalidateTag does not join the load from before it')
  t.equal(await app.get('p'), 'third', 'and the load from before wrote nothing')
})

test('one background load at a time, even when a load of the key that was fenced ends while it runs', async (t) => {
  const time = clock(t)
  const { app } = level(t)
  const gates = new Gates()
  let version = 0
  const loader = async (): Promise<number> => {
    const mine = ++version
    if (mine > 1) await gates.get(`load${mine}`).pass()
    return mine
  }
  const options = { ttl: 1000, staleWhileRevalidate: 10_000 }
  t.equal(await app.getOrLoad('rates', loader, options), 1)
  time.tick(1001)
  t.equal(await app.getOrLoad('rates', loader, options), 1, 'stale: served while load 2 runs in the background')
  await gates.get('load2').reached
  t.equal(await app.getOrLoad('rates', loader, options), 1)
  t.equal(app.stats.backgroundLoads, 1, 'a second stale hit joins it')
  gates.get('load2').release()
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(await app.getOrLoad('rates', loader, options), 2)
  t.equal(app.stats.backgroundLoads, 1)
})

test('refresh jitter: each instance refreshes a defined key refreshInterval ± jitter after the last', async (t) => {
  const fake = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout', 'Date'] })
  t.teardown(() => fake.uninstall())
  const random = Math.random
  t.teardown(() => { Math.random = random })
  for (const [draw, earliest] of [[0, 900], [0.999_999, 1100]] as const) {
    Math.random = () => draw
    const { app } = level(t)
    let loads = 0
    app.define('k', () => ++loads, { refreshInterval: 1000, jitter: 100 })
    await app.start()
    fake.tick(earliest - 1)
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(loads, 1, `not before ${earliest} ms`)
    fake.tick(1)
    await new Promise((resolve) => setImmediate(resolve))
    t.equal(loads, 2, `at ${earliest} ms`)
    app.stop()
  }
  const { app } = level(t)
  t.throws(() => { app.define('j', () => 1, { refreshInterval: 1000, jitter: 1000 }) }, { message: /option "jitter" must be less than refreshInterval/ })
})

test('a grace value is served only while its window lasts, checked when the load fails, not when it started', async (t) => {
  const time = clock(t)
  const { app } = level(t)
  t.equal(await app.getOrLoad('k', () => 'good', { ttl: 100, graceOnError: 300 }), 'good')
  time.tick(150)
  const gates = new Gates()
  const answer = app.getOrLoad('k', async () => { await gates.get('slow').pass(); throw new Error('db down') }, { ttl: 100, graceOnError: 300 })
  await gates.get('slow').reached
  time.tick(1000)
  gates.get('slow').release()
  await t.rejects(answer, /db down/, 'the window ended while the load ran')
})

test('without the versions of the shared store, a tagged entry is loaded again rather than served', async (t) => {
  const inner = new MemoryStore({ max: 10 })
  let readable = false
  const store = Object.assign(inner, {
    tags: {
      read: async () => { if (!readable) throw new Error('redis paused'); return { epoch: 'e', versions: { catalog: 0 } } },
      bump: async (names: readonly string[]) => ({ epoch: 'e', versions: Object.fromEntries(names.map((name) => [name, 1])) })
    }
  })
  const warnings: string[] = []
  const app = new AppCache({ store, ttl: 0, log: { warn: (_details, message) => { warnings.push(message) } } })
  t.teardown(() => { app.stop() })
  await app.start()
  await app.set('p', 'OLD', { tags: ['catalog'] })
  t.equal(await app.getOrLoad('p', () => 'loaded', { tags: ['catalog'] }), 'loaded', 'the versions are unknown: not served')
  t.equal(await app.getOrLoad('p', () => 'loaded again', { tags: ['catalog'] }), 'loaded again', 'nor what was loaded meanwhile')
  t.equal(await app.get('untagged-missing'), undefined)
  t.equal(app.stats.snapshot().tagsUnknown, 2, 'counted, each time')
  t.same(warnings.filter((message) => message.includes('tag versions are unknown')).length, 1, 'and logged once per burst')
  readable = true
  await new Promise((resolve) => setTimeout(resolve, 1100))
  await app.set('q', 'NEW', { tags: ['catalog'] })
  t.equal(await app.get('q'), 'NEW', 'once read again (retried each second), tagged entries are served')
})

test('session level: a write to the session keeps an entry that is stale but still served', async (t) => {
  const { SessionLevel } = await import('../../lib/scopes/session.js')
  const level = new SessionLevel({ ttl: 60_000, maxEntriesPerSession: 10, store: new MemoryStore({ max: 10, rolling: true }) })
  const first = level.open(() => undefined)
  await first.set('profile', 'v1', { ttl: 20, staleWhileRevalidate: '10s' })
  const id = first.id as string
  await new Promise((resolve) => setTimeout(resolve, 40))
  await level.open(() => ({ id })).set('other', 1)
  t.equal(await level.open(() => ({ id })).getOrLoad('profile', () => 'v2', { ttl: 20, staleWhileRevalidate: '10s' }), 'v1', 'still served stale after another write')
})
