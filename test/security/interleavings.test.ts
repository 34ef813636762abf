import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import Fastify, { type FastifyInstance } from 'fastify'
import Keyv from 'keyv'
import { test, type Test } from 'tap'
import multiCache, { type MultiCacheOptions } from '../../index.js'
import { cookieOf, secret } from '../helpers/app.js'
import { privateCluster } from '../helpers/cluster.js'
import { REDIS_URL, redisFor, uniquePrefix } from '../helpers/redis.js'

/**
 * Random interleavings of users' requests against a model. Several users each write entries to their session,
 * read them, log in again (`regenerate`), log out (`destroy`), while the application level's data is invalidated,
 * refreshed and loaded slowly. Whatever the interleaving:
 *
 * - no user ever reads a value of another user's;
 * - no acknowledged write is lost: a write is in the user's final session unless a logout overlapped or followed it,
 *   or a login overlapped it (a request still running under the pre-login id writes nowhere, by design);
 * - no ended session is readable: after a logout or a login, the old cookie reads nothing;
 * - no application value older than the last completed invalidation is served to a load that started after it.
 *
 * A user's logins and logouts are sent one after another (two logins of one browser at once are a race the README
 * documents); everything else overlaps freely, each handler waiting a random few ms.
 */

type Op =
  | { kind: 'write', user: number, delay: number }
  | { kind: 'read', user: number, delay: number }
  | { kind: 'login', user: number, delay: number }
  | { kind: 'logout', user: number, delay: number }
  | { kind: 'invalidate', delay: number }
  | { kind: 'refresh', delay: number }
  | { kind: 'load', delay: number }

const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('write' as const), user: fc.nat(3), delay: fc.nat(3) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('read' as const), user: fc.nat(3), delay: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('login' as const), user: fc.nat(3), delay: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('logout' as const), user: fc.nat(3), delay: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('invalidate' as const), delay: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('refresh' as const), delay: fc.nat(4) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('load' as const), delay: fc.nat(4) }) }
)

interface Timed { sent: number, acked: number }
interface Write extends Timed { user: number, key: string, session: string | undefined, created: boolean }

type Backing = (t: Test) => Promise<((run: number) => MultiCacheOptions) | undefined>

const BACKINGS: Array<[string, Backing]> = [
  ['memory', async () => () => ({ session: { secret } })],
  ['redis', async (t) => {
    if (await redisFor(t) === undefined) return undefined
    const prefix = uniquePrefix(t)
    return (run) => ({
      session: { secret, store: REDIS_URL, prefix: `${prefix}${run}:s:` },
      app: { store: REDIS_URL, prefix: `${prefix}${run}:a:` }
    })
  }],
  ['keyv', async () => () => ({ session: { secret, store: new Keyv() }, app: { store: new Keyv() } })],
  // A Redis Cluster of three masters: sessions, fences and locks spread over every master (issue 21).
  ['redis cluster', async (t) => {
    const cluster = await privateCluster(t)
    if (cluster === undefined) return undefined
    return (run) => ({
      session: { secret, store: cluster.url, prefix: `fmc-test:${run}:s:` },
      app: { store: cluster.url, prefix: `fmc-test:${run}:a:` }
    })
  }]
]

async function build (options: MultiCacheOptions, app: { version: number }): Promise<FastifyInstance> {
  const server = Fastify()
  await server.register(multiCache, options)
  const delay = async (query: unknown): Promise<void> => { await sleep(Number((query as { delay: string }).delay)) }
  // A slow load: it reads the version when it starts, like a query, and answers a few ms later.
  server.appCache.define('rates', async () => {
    const version = app.version
    await sleep(version % 4)
    return version
  })
  server.post('/write/:user/:key', async (request) => {
    const { user, key } = request.params as { user: string, key: string }
    await request.sessionCache.get('anything')
    await delay(request.query)
    await request.sessionCache.set(key, `${user}:${key}`)
    return 'ok'
  })
  server.get('/read', async (request) => {
    const keys = (request.query as { keys: string }).keys.split(',').filter((key) => key !== '')
    await delay(request.query)
    return await Promise.all(keys.map(async (key) => await request.cache.get<string>(key) ?? null))
  })
  server.post('/login', async (request) => { await delay(request.query); await request.sessionCache.regenerate(); return 'ok' })
  server.post('/logout', async (request) => { await delay(request.query); await request.sessionCache.destroy(); return 'ok' })
  // Each answers the version it made current: no load sent after it answered may serve an older one.
  server.post('/invalidate', async () => { const version = ++app.version; await server.appCache.invalidate('rates'); return { version } })
  server.post('/refresh', async () => { const version = ++app.version; await server.appCache.refresh('rates'); return { version } })
  server.get('/load', async () => ({ version: await server.appCache.get<number>('rates') }))
  await server.ready()
  return server
}

for (const [name, backing] of BACKINGS) {
  test(`${name}: random interleavings keep users apart, lose no acknowledged write, end sessions for good, serve nothing older than an invalidation`, async (t) => {
    const optionsFor = await backing(t)
    if (optionsFor === undefined) return
    let runs = 0
    await fc.assert(fc.asyncProperty(fc.array(op, { minLength: 5, maxLength: 40 }), async (ops) => {
      const app = { version: 0 }
      const server = await build(optionsFor(runs++), app)
      const problems: string[] = []
      try {
        const users = 4
        const cookies: Array<string | undefined> = Array.from({ length: users }, () => undefined)
        const ended: string[] = []
        const written: Write[] = []
        const logins: Array<Timed & { user: number, kind: 'login' | 'logout' }> = []
        const keysOf = (user: number): string[] => written.filter((w) => w.user === user).map((w) => w.key)
        // Logins and logouts of one user run one after another.
        const chains: Array<Promise<void>> = Array.from({ length: users }, async () => {})
        const invalidations: Array<{ version: number, acked: number }> = []
        let clock = 0
        const now = (): number => ++clock

        const run = async (step: Op, index: number): Promise<void> => {
          const delay = `delay=${step.delay}`
          if (step.kind === 'invalidate' || step.kind === 'refresh') {
            const { version } = (await server.inject({ method: 'POST', url: `/${step.kind}` })).json() as { version: number }
            invalidations.push({ version, acked: now() })
            return
          }
          if (step.kind === 'load') {
            const sent = now()
            const floor = Math.max(0, ...invalidations.filter((i) => i.acked < sent).map((i) => i.version))
            const { version } = (await server.inject('/load')).json() as { version: number }
            if (version < floor) problems.push(`a load sent after the invalidation to ${floor} served ${version}`)
            return
          }
          const { user } = step
          const cookie = cookies[user]
          const headers = cookie === undefined ? {} : { cookie }
          if (step.kind === 'write') {
            const key = `k${index}`
            const entry: Write = { user, key, session: cookie, created: false, sent: now(), acked: 0 }
            const response = await server.inject({ method: 'POST', url: `/write/${user}/${key}?${delay}`, headers })
            entry.acked = now()
            if (response.statusCode !== 200) problems.push(`write ${key} failed: ${response.body}`)
            // A write that got a new session (no cookie yet, or an ended one) is in a session the user may not keep.
            entry.created = response.headers['set-cookie'] !== undefined
            if (entry.created && cookies[user] === cookie) cookies[user] = cookieOf(response.headers)
            written.push(entry)
            return
          }
          if (step.kind === 'read') {
            const keys = written.map((w) => w.key)
            const values = (await server.inject({ url: `/read?keys=${keys.join(',')}&${delay}`, headers })).json() as Array<string | null>
            for (const value of values) if (value !== null && !value.startsWith(`${user}:`)) problems.push(`user ${user} read ${value}`)
            return
          }
          const chained = chains[user] as Promise<void>
          chains[user] = chained.then(async () => {
            const before = cookies[user]
            const entry = { user, kind: step.kind, sent: now(), acked: 0 }
            const response = await server.inject({ method: 'POST', url: `/${step.kind}?${delay}`, headers: before === undefined ? {} : { cookie: before } })
            entry.acked = now()
            logins.push(entry)
            if (before !== undefined) ended.push(before)
            cookies[user] = step.kind === 'login' ? cookieOf(response.headers) : undefined
          })
          await chains[user]
        }

        // Every user starts with a session; then the steps start a few ms apart and overlap.
        for (let user = 0; user < users; user++) await run({ kind: 'write', user, delay: 0 }, ops.length + user)
        const running: Array<Promise<void>> = []
        for (const [index, step] of ops.entries()) {
          running.push(run(step, index))
          await sleep(step.delay % 2)
        }
        await Promise.all(running)
        await Promise.all(chains)

        for (let user = 0; user < users; user++) {
          const cookie = cookies[user]
          const keys = keysOf(user)
          const values = cookie === undefined
            ? keys.map(() => null)
            : (await server.inject({ url: `/read?keys=${keys.join(',')}&delay=0`, headers: { cookie } })).json() as Array<string | null>
          const final = new Map(keys.map((key, i) => [key, values[i]]))
          for (const w of written.filter((entry) => entry.user === user)) {
            const value = final.get(w.key)
            if (value !== null && value !== `${user}:${w.key}`) problems.push(`user ${user} holds ${w.key}=${String(value)}`)
            const mine = logins.filter((l) => l.user === user)
            const loggedOutSince = mine.some((l) => l.kind === 'logout' && l.acked > w.sent)
            const loginOverlapped = mine.some((l) => l.kind === 'login' && l.sent < w.acked && l.acked > w.sent)
            const required = !w.created && w.session !== undefined && !loggedOutSince && !loginOverlapped && cookie !== undefined
            if (required && value === null) problems.push(`user ${user} lost the acknowledged write ${w.key}`)
          }
        }
        const allKeys = written.map((w) => w.key).join(',')
        for (const cookie of ended) {
          const values = (await server.inject({ url: `/read?keys=${allKeys}&delay=0`, headers: { cookie } })).json() as Array<string | null>
          if (values.some((value) => value !== null)) problems.push(`an ended session is readable: ${values.filter((v) => v !== null).join(',')}`)
        }
      } finally {
        await server.close()
      }
      if (problems.length > 0) throw new Error(problems.join('; '))
    }), { numRuns: 15 })
    t.equal(runs, 15)
  })
}
