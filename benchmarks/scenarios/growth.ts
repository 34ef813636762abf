// 15. Cost as the work grows: a hit, a session read and a route cache hit with a thousand times more data held; a
// user's sessions listed and ended with a hundred times more of them; a change of a level's only entry under a thousand
// times the bound; clear() of 100,000 keys in Redis.
import { randomBytes } from 'node:crypto'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { LRUCache } from 'lru-cache'
import { runTask, startWorker, type TaskFunctions, type WorkerFactories, type WorkerHandle } from '../harness/children.js'
import { SHARED_REDIS, namespaceFor, sweepRun } from '../harness/redis.js'
import { result, type Result } from '../harness/results.js'
import { alternate, percentile, spread } from '../harness/rounds.js'
import type { Scenario } from '../harness/scenario.js'
import { settings } from '../harness/settings.js'
import { MemoryStore, RedisStore, ResponseCache, SessionLevel, appCache, responseTime, sessionStoreKey, toCachedResponse } from '../harness/package.js'
import { heapAfterGc } from '../harness/heap.js'

/** Reads timed per figure, at random among the keys held, so that a large store is read all over (as caches are). */
const READS = 200_000
const SMALL = { id: 1, name: 'a small value', price: 10 }

/** A client of the shared Redis, once it is ready (the store fails a command at once while it is not). */
async function connected (): Promise<Redis> {
  const client = new Redis(SHARED_REDIS)
  await client.ping()
  return client
}

/**
 * `count` random indexes below `size`, drawn before the clock starts: over every key held (`all`), or over a hot set
 * of 1,000 of them spread across the store (`hot`), as a cache's reads mostly go. Reads over all of a large store miss
 * the CPU's caches whatever the code does (lru-cache alone slows down as much): the hot set shows what the code adds.
 */
function picks (size: number, count: number, pattern: 'hot' | 'all'): Uint32Array {
  const at = new Uint32Array(count)
  const step = Math.max(1, Math.floor(size / 1000))
  for (let i = 0; i < count; i++) at[i] = pattern === 'all' ? Math.floor(Math.random() * size) : Math.floor(Math.random() * Math.min(size, 1000)) * step
  return at
}

type Read = (index: number) => Promise<void> | void

/** ns per read of `read` at the indexes `at`. */
async function pass (at: Uint32Array, read: Read): Promise<number> {
  const started = process.hrtime.bigint()
  for (let i = 0; i < at.length; i++) await read(at[i] as number)
  return Number(process.hrtime.bigint() - started) / at.length
}

/**
 * A figure's measurement, warmed up over both patterns: each call times a pass over the hot set and one over every
 * key. The hot pass starts with a tenth of its reads untimed, since the pass over every key before it pushed the hot
 * set out of the CPU's caches.
 */
async function timed (size: number, count: number, read: Read, bytes?: number): Promise<() => Promise<Figure>> {
  const hot = picks(size, count, 'hot')
  const all = picks(size, count, 'all')
  await pass(hot, read)
  await pass(all, read)
  return async () => {
    await pass(hot.subarray(0, count / 10), read)
    return { hot: await pass(hot, read), all: await pass(all, read), bytes }
  }
}

type Measure = () => Promise<Figure>
interface Figure { hot: number, all: number, bytes?: number }
/** Every read's result lands here, so the engine cannot drop the reads as dead code. */
export let sink: unknown

/** An appCache hit among `size` entries, in memory or in the memory tier in front of Redis; bytes per entry beside lru-cache's. */
async function appHits (size: number, redis: boolean): Promise<Measure> {
  const before = heapAfterGc()
  const app = Fastify()
  const client = redis ? await connected() : undefined
  const prefix = namespaceFor(`growth-app-${size}`)
  await app.register(appCache, redis ? { store: client as never, prefix, l1: { max: size, ttl: '1h' } } : { max: size })
  await app.ready()
  const keys = Array.from({ length: size }, (_, i) => `product:${i}`)
  for (let i = 0; i < size; i += 1000) await Promise.all(keys.slice(i, i + 1000).map(async (key, j) => { await app.appCache.set(key, { ...SMALL, id: i + j }) }))
  const bytes = (heapAfterGc() - before) / size
  const neverCalled = async (): Promise<never> => { throw new Error('a hit must not load') }
  return await timed(size, READS, async (i) => { sink = await app.appCache.getOrLoad(keys[i] as string, neverCalled) }, bytes)
}

/**
 * The same values in lru-cache alone: the floor of what an entry takes, and of what a hit costs. The hit is used, as an
 * app uses one: the value found is read. A level reads its entry to answer (its expiry, its tags), where lru-cache's
 * `get` returns the value untouched; among 10^5 entries that first touch of the entry is a miss of the CPU's caches,
 * which an app using lru-cache alone pays right after, when it reads what it found.
 */
async function lruAlone (size: number): Promise<Measure> {
  const before = heapAfterGc()
  const lru = new LRUCache<string, typeof SMALL>({ max: size })
  const keys = Array.from({ length: size }, (_, i) => `product:${i}`)
  for (const [i, key] of keys.entries()) lru.set(key, { ...SMALL, id: i })
  const bytes = (heapAfterGc() - before) / size
  return await timed(size, READS, (i) => { sink = lru.get(keys[i] as string)?.id }, bytes)
}

/** A session read (the cart, by the session's cookie id) among `size` live sessions, in memory or in Redis. */
async function sessionReads (size: number, redis: boolean): Promise<Measure> {
  const client = redis ? await connected() : undefined
  const ttl = 30 * 60_000
  const store = redis ? new RedisStore({ client: client as never, prefix: namespaceFor(`growth-session-${size}`), timeout: 5000 }) : new MemoryStore({ max: size, ttl, rolling: true })
  const level = new SessionLevel({ ttl, maxEntriesPerSession: 100, store })
  const ids: string[] = []
  for (let i = 0; i < size; i += 500) {
    ids.push(...await Promise.all(Array.from({ length: Math.min(500, size - i) }, async () => {
      const session = level.open(() => undefined)
      await session.set('cart', { sku: 'SKU-1', quantity: 1 })
      return session.id as string
    })))
  }
  return await timed(size, redis ? READS / 20 : READS, async (i) => { sink = await level.open(() => ({ id: ids[i] as string })).get('cart') })
}

/**
 * The session row's floor: the least a session read among `size` sessions can do where a session is found by a hash of
 * the id its cookie carries. lru-cache alone holds each session's cart under the SHA-256 of a random id, as the level
 * keys its store, with a rolling ttl (each read restarts it and moves the session up the list, as the memory store
 * does); a read hashes the id, looks it up and reads the cart found.
 */
async function sessionsAlone (size: number): Promise<Measure> {
  const ttl = 30 * 60_000
  const lru = new LRUCache<string, { cart: { sku: string, quantity: number } }>({ max: size, ttl, updateAgeOnGet: true })
  const ids = Array.from({ length: size }, () => randomBytes(32).toString('base64url'))
  for (const id of ids) lru.set(sessionStoreKey(id), { cart: { sku: 'SKU-1', quantity: 1 } })
  return await timed(size, READS, (i) => { sink = lru.get(sessionStoreKey(ids[i] as string))?.cart })
}

/**
 * A route cache hit among `size` stored URLs; bytes a stored response takes beyond its body. `alone`: the same
 * responses under the same keys in lru-cache alone, the hit used (see `lruAlone`): the route row's floor.
 */
async function routeHits (size: number, alone = false): Promise<Measure> {
  const body = '{"page":"a small page of a catalog"}'
  const now = responseTime(Date.now())
  // Before the keys are made: a stored response's bytes include its key.
  const before = alone ? 0 : heapAfterGc()
  const keys = Array.from({ length: size }, (_, i) => `/products/:id\nGET\nhttp://shop\n/products/${i}`)
  const response = (): ReturnType<typeof toCachedResponse> => toCachedResponse(200, { 'content-type': 'application/json' }, body, now, 3_600_000)
  if (alone) {
    const lru = new LRUCache<string, ReturnType<typeof toCachedResponse>>({ max: size })
    for (const key of keys) lru.set(key, response())
    return await timed(size, READS, (i) => { sink = lru.get(keys[i] as string)?.status })
  }
  const cache = new ResponseCache({ max: size, maxSize: 2 ** 40, maxVariants: 8, log: { warn () {} } })
  for (const key of keys) cache.store(key, [], {}, response(), cache.since, now)
  const bytes = (heapAfterGc() - before) / size - Buffer.byteLength(body)
  return await timed(size, READS, (i) => { sink = cache.find(keys[i] as string, {}, now) }, bytes)
}

/** sessionsOf and destroyAllOf of a user with `sessions` sessions, in memory or in Redis: µs per call. */
async function userSessions (sessions: number, redis: boolean): Promise<{ list: number, end: number }> {
  const client = redis ? await connected() : undefined
  const ttl = 30 * 60_000
  const store = redis ? new RedisStore({ client: client as never, prefix: namespaceFor(`growth-users-${sessions}`), timeout: 5000 }) : new MemoryStore({ max: 10_000, ttl, rolling: true })
  const level = new SessionLevel({ ttl, maxEntriesPerSession: 100, store })
  const lists: number[] = []
  const ends: number[] = []
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < sessions; i++) {
      const session = level.open(() => undefined)
      await session.set('cart', [i])
      await session.regenerate({ user: 'alice' })
    }
    let started = performance.now()
    const listed = await level.sessionsOf('alice')
    lists.push((performance.now() - started) * 1000)
    started = performance.now()
    const ended = await level.destroyAllOf('alice')
    ends.push((performance.now() - started) * 1000)
    if (listed.length !== sessions || ended !== sessions) throw new Error(`listed ${listed.length}, ended ${ended} of ${sessions}`)
  }
  if (redis) await store.clear()
  client?.disconnect()
  return { list: spread(lists).median, end: spread(ends).median }
}

/**
 * µs per change (a set, then a delete) of the only entry an appCache on the memory store holds, bounded at `max`: what
 * a level holding one entry pays for each change (lru-cache, left to itself, empties arrays as long as `max` then).
 */
async function onlyEntry (max: number): Promise<number> {
  const app = Fastify()
  await app.register(appCache, { max })
  await app.ready()
  const change = async (times: number): Promise<void> => {
    for (let i = 0; i < times; i++) {
      await app.appCache.set('only', SMALL)
      await app.appCache.delete('only')
    }
  }
  await change(1000)
  const started = process.hrtime.bigint()
  await change(20_000)
  const µs = Number(process.hrtime.bigint() - started) / 20_000 / 1000
  await app.close()
  return µs
}

/** clear() of a level holding 100,000 keys in Redis: how long it takes, and the longest a PING waited meanwhile. */
interface Clear {
  ms: number
  /** The longest any one command of the clear ran in Redis, by its slow log: how long Redis was blocked at once. */
  commandMs: number
  /** The longest, and the 99th percentile, a PING from a client of this process waited meanwhile. */
  blockedMs: number
  p99Ms: number
}

/** Redis's slow log, set to record every command while `run` runs (and put back after): the longest one, in ms. */
async function longestCommand (client: Redis, run: () => Promise<void>): Promise<number> {
  const [, slower] = await client.config('GET', 'slowlog-log-slower-than') as [string, string]
  const [, length] = await client.config('GET', 'slowlog-max-len') as [string, string]
  await client.config('SET', 'slowlog-log-slower-than', '0')
  await client.config('SET', 'slowlog-max-len', '100000')
  await client.call('SLOWLOG', 'RESET')
  try {
    await run()
    // Each entry: id, when, µs it ran, its arguments, …: the clear's own (SCAN, UNLINK, the fences' script).
    const entries = await client.call('SLOWLOG', 'GET', '100000') as Array<[number, number, number, string[]]>
    const clears = entries.filter(([, , , args]) => ['SCAN', 'UNLINK', 'EVALSHA', 'EVAL'].includes(String(args[0]).toUpperCase()))
    return Math.max(0, ...clears.map(([, , micros]) => micros)) / 1000
  } finally {
    await client.config('SET', 'slowlog-log-slower-than', slower)
    await client.config('SET', 'slowlog-max-len', length)
  }
}

async function redisClear (): Promise<Clear> {
  const keys = 100_000
  const client = await connected()
  const probe = await connected()
  const prefix = namespaceFor('growth-clear')
  const store = new RedisStore({ client: client as never, prefix, timeout: 5000, fenced: true })
  for (let i = 0; i < keys; i += 1000) {
    const batch = client.pipeline()
    for (let j = i; j < i + 1000; j++) batch.set(prefix + `k${j}`, '{"v":1}')
    await batch.exec()
  }
  // A client of Redis's own, answered between the batches of the clear; it shares this process's event loop with the
  // clear, so it also waits for the clear's own JavaScript: the slow log tells how long Redis itself was held.
  const waits: number[] = []
  const probing = { on: true }
  const probeLoop = (async () => {
    while (probing.on) {
      const sent = performance.now()
      await probe.ping()
      waits.push(performance.now() - sent)
      await sleep(1)
    }
  })()
  let ms = 0
  const commandMs = await longestCommand(probe, async () => {
    const started = performance.now()
    await store.clear()
    ms = performance.now() - started
    probing.on = false
    await probeLoop
  })
  const left = await client.keys(prefix.replace(/[*?[\]\\]/g, '\\$&') + '*')
  if (left.length > 0) throw new Error(`${left.length} keys left after clear()`)
  client.disconnect()
  probe.disconnect()
  return { ms, commandMs, blockedMs: Math.max(...waits), p99Ms: percentile(waits, 99) }
}

const SIZES = [1000, 100_000, 1_000_000]
export const workers: WorkerFactories = {
  ...Object.fromEntries(SIZES.map((size) => [`app-memory-${size}`, async () => await appHits(size, false)])),
  ...Object.fromEntries(SIZES.map((size) => [`lru-${size}`, async () => await lruAlone(size)])),
  ...Object.fromEntries([1000, 100_000].map((size) => [`app-redis-${size}`, async () => await appHits(size, true)])),
  ...Object.fromEntries([1000, 100_000].flatMap((size) => [
    [`session-memory-${size}`, async () => await sessionReads(size, false)],
    [`session-redis-${size}`, async () => await sessionReads(size, true)],
    [`session-alone-${size}`, async () => await sessionsAlone(size)]
  ])),
  ...Object.fromEntries([100, 100_000].flatMap((size) => [
    [`route-${size}`, async () => await routeHits(size)],
    [`route-alone-${size}`, async () => await routeHits(size, true)]
  ]))
}

export const tasks: TaskFunctions = {
  ...Object.fromEntries([10, 1000].flatMap((size) => [
    [`users-memory-${size}`, async () => await userSessions(size, false)],
    [`users-redis-${size}`, async () => await userSessions(size, true)]
  ])),
  ...Object.fromEntries([1000, 1_000_000].map((max) => [`only-entry-${max}`, async () => await onlyEntry(max)])),
  'redis-clear': redisClear
}

const MODULE = fileURLToPath(import.meta.url)
const HEAP = ['--expose-gc', '--max-old-space-size=4096']

/** Each figure in a fresh process, `rounds` times. */
async function rounds<T> (task: string, count: number): Promise<T[]> {
  const all: T[] = []
  for (let i = 0; i < count; i++) all.push(await runTask<T>(MODULE, task, HEAP))
  return all
}

/**
 * The figures rows compare, a set per row (the smallest, the largest, and the floor at both where it has one): a set's
 * figures are measured together (see `together`).
 */
const SETS = {
  app: ['app-memory-1000', 'app-memory-1000000', 'lru-1000', 'lru-1000000', 'app-memory-100000', 'lru-100000'],
  appRedis: ['app-redis-1000', 'app-redis-100000', 'lru-1000', 'lru-100000'],
  session: ['session-memory-1000', 'session-memory-100000', 'session-alone-1000', 'session-alone-100000'],
  sessionRedis: ['session-redis-1000', 'session-redis-100000'],
  route: ['route-100', 'route-100000', 'route-alone-100', 'route-alone-100000']
} as const

/** Starts of a set's processes, and rounds measured of each: where a process's objects lie is drawn once a start. */
const STARTS = 7
const ROUNDS_PER_START = 3

/**
 * Each figure of `names` built in a process of its own, all alive at once and measured in turn, a pass over the hot set
 * and one over every key each, `ROUNDS_PER_START` rounds; the processes are started afresh `starts` times, since where
 * a process's objects lie in its heap moves a read among 10^5 by more than a row's target (see benchmarks/README.md).
 * The passes of one round are a second or two apart: a slow spell of the machine, which on these VMs slowed the same
 * read from 1.0 to 1.7 µs for seconds at a time, falls on the figures of one round alike, and a row's ratio is taken
 * within a round.
 */
async function together<N extends string> (names: readonly N[], starts: number): Promise<Map<string, Figure[]>> {
  const figures = new Map<string, Figure[]>(names.map((name) => [name, []]))
  for (let start = 0; start < starts; start++) {
    const handles = new Map<string, WorkerHandle<Figure>>()
    try {
      // One after another: each builds (and collects its heap) alone on the measuring core.
      for (const name of names) handles.set(name, await startWorker<Figure>(MODULE, name, HEAP))
      const measured = await alternate(names, ROUNDS_PER_START, async (name) => await (handles.get(name) as WorkerHandle<Figure>).measure())
      for (const name of names) figures.get(name)?.push(...measured[name])
    } finally {
      await Promise.all([...handles.values()].map(async (handle) => { await handle.stop() }))
    }
    // What the Redis figures stored: their processes exit without cleaning up, each start storing anew.
    await sweepRun()
  }
  return figures
}

/** Each row's median and spread over rounds of `largest ÷ smallest`. */
function grown (small: Figure[], large: Figure[], pattern: 'hot' | 'all'): ReturnType<typeof spread> {
  return spread(large.map((figure, i) => figure[pattern] / (small[i] as Figure)[pattern]))
}

function ns (figures: Figure[], pattern: 'hot' | 'all'): string {
  return spread(figures.map((f) => f[pattern])).median.toFixed(0) + ' ns'
}

export const growth: Scenario = {
  name: 'growth',
  async run () {
    const count = settings.quick ? 1 : 5
    const rows: Result[] = []
    const sets: Partial<Record<keyof typeof SETS, Map<string, Figure[]>>> = {}
    for (const set of Object.keys(SETS) as Array<keyof typeof SETS>) sets[set] = await together(SETS[set], settings.quick ? 1 : STARTS)
    const of = (set: keyof typeof SETS, name: string): Figure[] => sets[set]?.get(name) as Figure[]
    /**
     * Two rows for a figure: its growth over a hot set, and over every key. Where the level stands on lru-cache, the
     * growth is also given beside lru-cache's own at the same sizes (`floor`), and the hot set's target is on what the
     * level adds to it: lru-cache's own lookups slow down as its arrays outgrow the CPU's caches, whoever calls it.
     */
    const flat = (measure: string, small: Figure[], large: Figure[], smallName: string, largeName: string, floor?: [Figure[], Figure[]], extra = ''): void => {
      const beside = (pattern: 'hot' | 'all'): string => floor === undefined
        ? ''
        : `; lru-cache alone grows ${grown(floor[0], floor[1], pattern).median.toFixed(2)}× (${ns(floor[0], pattern)} → ${ns(floor[1], pattern)})`
      const hot = grown(small, large, 'hot')
      const added = floor === undefined ? hot : spread(large.map((figure, i) => (figure.hot / (small[i] as Figure).hot) / (((floor[1][i] as Figure).hot) / ((floor[0][i] as Figure).hot))))
      rows.push(result({
        scenario: 'growth',
        measure: `${measure}, reads over a hot set of 1,000 keys` + (floor === undefined ? '' : ", beside lru-cache's own growth at the same sizes (its hit used: the value found is read)"),
        contenders: [largeName, smallName],
        unit: floor === undefined ? 'time ratio (largest ÷ smallest)' : 'growth ratio ÷ lru-cache alone\'s',
        ...added,
        rounds: small.length,
        target: { op: '<=', value: 1.3 },
        context: `${ns(small, 'hot')} with the fewest, ${ns(large, 'hot')} with the most (${hot.median.toFixed(2)}×)${beside('hot')}${extra}`
      }))
      rows.push(result({
        scenario: 'growth',
        measure: `${measure}, reads at random over every key (the CPU's caches missed)`,
        contenders: [largeName, smallName],
        unit: 'time ratio (largest ÷ smallest)',
        ...grown(small, large, 'all'),
        rounds: small.length,
        target: undefined,
        context: `${ns(small, 'all')} with the fewest, ${ns(large, 'all')} with the most${beside('all')}`
      }))
    }
    const [app3, app6, lru3, lru6] = [of('app', 'app-memory-1000'), of('app', 'app-memory-1000000'), of('app', 'lru-1000'), of('app', 'lru-1000000')]
    flat('appCache.getOrLoad hit (memory store) among 10^6 entries vs 10^3', app3, app6, 'app-memory-1000', 'app-memory-1000000', [lru3, lru6], `; 10^5: ${ns(of('app', 'app-memory-100000'), 'hot')}`)
    rows.push(result({
      scenario: 'growth',
      measure: 'heap per entry of a small value, 10^6 entries: appCache (memory store) ÷ lru-cache alone',
      contenders: ['app-memory-1000000', 'lru-1000000'],
      unit: 'bytes ratio',
      ...spread(app6.map((f, i) => (f.bytes as number) / ((lru6[i] as Figure).bytes as number))),
      rounds: app6.length,
      target: undefined,
      context: `${spread(app6.map((f) => f.bytes as number)).median.toFixed(0)} bytes per entry, lru-cache ${spread(lru6.map((f) => f.bytes as number)).median.toFixed(0)}`
    }))
    const lru5 = of('appRedis', 'lru-100000')
    flat('appCache.getOrLoad hit, memory tier in front of Redis, among 10^5 entries vs 10^3', of('appRedis', 'app-redis-1000'), of('appRedis', 'app-redis-100000'), 'app-redis-1000', 'app-redis-100000', [of('appRedis', 'lru-1000'), lru5])
    flat('session read (memory store) among 10^5 live sessions vs 10^3 (its floor: lru-cache alone holding each cart under the SHA-256 of an id, with a rolling ttl)', of('session', 'session-memory-1000'), of('session', 'session-memory-100000'), 'session-memory-1000', 'session-memory-100000',
      [of('session', 'session-alone-1000'), of('session', 'session-alone-100000')])
    flat('session read (Redis, no memory tier: a round trip each) among 10^5 live sessions vs 10^3', of('sessionRedis', 'session-redis-1000'), of('sessionRedis', 'session-redis-100000'), 'session-redis-1000', 'session-redis-100000')
    const routes = of('route', 'route-100000')
    flat('route cache hit (application level) among 10^5 stored URLs vs 10^2', of('route', 'route-100'), routes, 'route-100', 'route-100000', [of('route', 'route-alone-100'), of('route', 'route-alone-100000')],
      `; ${spread(routes.map((f) => f.bytes as number)).median.toFixed(0)} bytes per stored response beyond its body`)
    for (const where of ['memory', 'redis'] as const) {
      const [few, many] = [await rounds<{ list: number, end: number }>(`users-${where}-10`, count), await rounds<{ list: number, end: number }>(`users-${where}-1000`, count)]
      for (const op of ['list', 'end'] as const) {
        rows.push(result({
          scenario: 'growth',
          measure: `${op === 'list' ? 'sessionsOf' : 'destroyAllOf'} of a user with 1,000 sessions vs 10 (${where}): it grows with the sessions, per session it must not`,
          contenders: [`users-${where}-1000`, `users-${where}-10`],
          unit: 'time per session ratio (1,000 ÷ 10)',
          ...spread(many.map((m, i) => (m[op] / 1000) / ((few[i] as { list: number, end: number })[op] / 10))),
          rounds: count,
          target: { op: '<=', value: 1.3 },
          context: `${spread(few.map((f) => f[op])).median.toFixed(0)} µs for 10, ${spread(many.map((m) => m[op])).median.toFixed(0)} µs for 1,000`
        }))
      }
    }
    const [boundedLow, boundedHigh] = [await rounds<number>('only-entry-1000', count), await rounds<number>('only-entry-1000000', count)]
    rows.push(result({
      scenario: 'growth',
      measure: 'a change (set, then delete) of the only entry an appCache (memory store) holds, bounded at max 10^6 vs 10^3: it costs what the entries cost, not the bound',
      contenders: ['only-entry-1000000', 'only-entry-1000'],
      unit: 'time ratio (largest ÷ smallest)',
      ...spread(boundedHigh.map((µs, i) => µs / (boundedLow[i] as number))),
      rounds: count,
      target: { op: '<=', value: 1.3 },
      context: `${spread(boundedLow).median.toFixed(2)} µs a change at max 10^3, ${spread(boundedHigh).median.toFixed(2)} µs at max 10^6`
    }))
    const clears = await rounds<Clear>('redis-clear', count)
    const median = (pick: (clear: Clear) => number, digits: number): string => spread(clears.map(pick)).median.toFixed(digits)
    rows.push(result({
      scenario: 'growth',
      measure: 'clear() of a level with 10^5 keys in Redis (SCAN and UNLINK in batches): the longest any one of its commands held Redis (its slow log)',
      contenders: ['redis-clear'],
      unit: 'ms',
      ...spread(clears.map((c) => c.commandMs)),
      rounds: count,
      target: { op: '<', value: 10 },
      context: `clear() took ${median((c) => c.ms, 0)} ms; a PING every ms from the clearing process (whose event loop the clear also holds) waited p99 ${median((c) => c.p99Ms, 2)} ms, at most ${median((c) => c.blockedMs, 2)} ms`
    }))
    // A clear() leaves the fences of the keys it deleted to expire (they must outlive a load in flight): hundreds of
    // thousands here, which the shared Redis would hold for ten minutes.
    await sweepRun()
    return rows
  }
}
