import FakeTimers from '@sinonjs/fake-timers'
import { test } from 'tap'
import multiCache from '../../index.js'
import cacheAdmin from '../../plugins/admin.js'
import { ADVICE_LOG_INTERVAL_MS } from '../../plugins/advisor.js'
import type { Advisor } from '../../lib/advisor.js'
import { captureLogs, fresh, secret } from '../helpers/app.js'

const TOKEN = { authorization: 'Bearer let-me-in' }

/**
 * Fed directly, as lib/advisor-feed.ts feeds a `set` and an expiry of the application level: what these tests check is
 * the telling (log, timer, admin API); the feed has test/plugins/advisor-feed.test.ts.
 */
function neverRead (advisor: Advisor, from = 0): void {
  for (let i = from; i < from + 25; i++) {
    const key = `report:${i}`
    advisor.feed({ type: 'write', level: 'app', key, hash: i }, advisor.draw(), advisor.watches('app', key))
    advisor.feed({ type: 'drop', level: 'app', key, reason: 'expire' }, false, advisor.watches('app', key))
  }
}

test('advisor: false, true or { sampleRate }; anything else refused, naming the option and what it takes', async (t) => {
  for (const [advisor, pattern] of [
    ['yes', /^multiCache: option "advisor" must be true, false or an object \{ sampleRate \}, got "yes"$/],
    [1, /^multiCache: option "advisor" must be true, false or an object \{ sampleRate \}, got 1$/],
    [[], /option "advisor" must be true, false or an object \{ sampleRate \}, got an array$/],
    [new Date(0), /option "advisor" must be true, false or an object \{ sampleRate \}, got /],
    [new Map([['sampleRate', 1]]), /option "advisor" must be true, false or an object \{ sampleRate \}, got /],
    [{ sampleRate: 0 }, /^multiCache \(advisor\): option "sampleRate" must be a number greater than 0 and at most 1 .*, got 0$/],
    [{ sampleRate: 1.5 }, /option "sampleRate" must be a number greater than 0 and at most 1/],
    [{ sampleRate: '0.1' }, /option "sampleRate" .*, got "0.1"$/],
    [{ sampleRate: Number.NaN }, /option "sampleRate" .*, got NaN$/],
    [{ rate: 0.1 }, /^multiCache \(advisor\): option "rate" is not an option \(expected one of sampleRate\)/]
  ] as const) {
    const app = fresh(t)
    await t.rejects(async () => { await app.register(multiCache, { advisor } as never).ready() }, { code: 'FST_MULTICACHE_INVALID_OPTION', message: pattern })
  }

  const off = fresh(t)
  await off.register(multiCache, { session: { secret } })
  t.equal(off.multiCache.advisor, undefined, 'off by default')
  t.same(off.multiCache.advice(), [], 'off: advice() is an empty list')

  const on = fresh(t)
  await on.register(multiCache, { session: { secret }, advisor: true })
  t.equal(on.multiCache.advisor?.sampleRate, 0.01, 'true: 1 key in 100')
  t.same(on.multiCache.advice(), [], 'nothing seen: nothing to say')

  const all = fresh(t)
  await all.register(multiCache, { session: { secret }, advisor: { sampleRate: 1 } })
  t.equal(all.multiCache.advisor?.sampleRate, 1)
  const defaults = fresh(t)
  await defaults.register(multiCache, { session: { secret }, advisor: {} })
  t.equal(defaults.multiCache.advisor?.sampleRate, 0.01, '{}: the default rate')
})

test('advice(): the findings; each logged once at info, the first time it is found', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'info', stream: logs.stream } })
  await app.register(multiCache, { session: { secret }, advisor: { sampleRate: 1 } })
  await app.ready()
  neverRead(app.multiCache.advisor as Advisor)
  const findings = app.multiCache.advice()
  t.same(findings.map((finding) => [finding.level, finding.key, finding.kind]), [['app', 'report:*', 'never-read']])
  t.match(findings[0]?.evidence, { writtenAndDropped: 25, neverRead: 25, sampleRate: 1 })
  app.multiCache.advice()
  for (const from of [25, 50, 75]) neverRead(app.multiCache.advisor as Advisor, from)
  app.multiCache.advice()
  const told = logs.lines.filter((line) => String(line.msg).startsWith('multiCache advisor: '))
  t.equal(told.length, 2, 'never-read once; volatile once, when it appeared')
  t.match(told[0], { level: 30, cacheLevel: 'app', key: 'report:*', advice: 'never-read', evidence: { neverRead: 25 }, msg: /^multiCache advisor: "report:\*": 25 of 25 entries written were dropped/ })
  t.match(told[1], { advice: 'volatile' })
})

test('a finding reaches the log without anyone asking; with logKeys: false the pattern is hashed', async (t) => {
  const clock = FakeTimers.install({ toFake: ['setInterval', 'clearInterval'] })
  t.teardown(() => clock.uninstall())
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'info', stream: logs.stream } })
  await app.register(multiCache, { session: { secret }, advisor: { sampleRate: 1 }, logKeys: false })
  await app.ready()
  neverRead(app.multiCache.advisor as Advisor)
  const told = (): Array<Record<string, unknown>> => logs.lines.filter((line) => String(line.msg).startsWith('multiCache advisor: '))
  t.same(told(), [])
  clock.tick(ADVICE_LOG_INTERVAL_MS)
  t.equal(told().length, 1, 'the timer asked')
  t.match(told()[0], { advice: 'never-read', msg: 'multiCache advisor: never-read at the app level (the pattern is in fastify.multiCache.advice())' })
  t.not(told()[0]?.key, 'report:*', 'a hash of the pattern, as lines show keys with logKeys: false')
  t.notMatch(JSON.stringify(told()), /report/)
  clock.tick(ADVICE_LOG_INTERVAL_MS)
  t.equal(told().length, 1, 'once')
  await app.close()
  t.equal(clock.countTimers(), 0, 'the timer stops with the app')
})

test('GET <prefix>/advice: behind authorize, the findings and the rate, quiet at info like stats', async (t) => {
  const logs = captureLogs()
  const app = fresh(t, { logger: { level: 'info', stream: logs.stream } })
  await app.register(multiCache, { session: { secret }, advisor: { sampleRate: 1 } })
  await app.register(cacheAdmin, { authorize: (request) => request.headers.authorization === TOKEN.authorization })
  await app.ready()
  t.equal((await app.inject({ url: '/_cache/advice', headers: { authorization: 'Bearer wrong' } })).statusCode, 403)

  const before = logs.lines.length
  const empty = await app.inject({ url: '/_cache/advice', headers: TOKEN })
  t.equal(empty.statusCode, 200)
  t.match(empty.json(), { sampleRate: 1, findings: [] })
  t.same(logs.lines.slice(before), [], 'a read-only route: nothing at info')

  neverRead(app.multiCache.advisor as Advisor)
  const { at, findings } = (await app.inject({ url: '/_cache/advice', headers: TOKEN })).json()
  t.ok(Number.isInteger(at))
  t.same(findings, app.multiCache.advice(), 'the same findings as the decorator, every field through the schema')
  t.same(Object.keys(findings[0]).sort(), ['evidence', 'key', 'kind', 'level', 'message'])

  const off = fresh(t)
  await off.register(multiCache, { session: { secret } })
  await off.register(cacheAdmin, { authorize: () => true })
  t.match((await off.inject('/_cache/advice')).json(), { sampleRate: null, findings: [] }, 'off: null and an empty list')
})
