import { test } from 'tap'
import { ADVISOR_BOUNDS, Advisor, THRESHOLDS, type AdviceFinding, type AdvisorConfig } from '../../lib/advisor.js'
import { findingsOf, PatternStats } from '../../lib/advice.js'
import { keyPattern } from '../../lib/key-patterns.js'

/** mulberry32: a seeded source in [0, 1), so that a sampled run is the same run every time. */
function seeded (seed: number): () => number {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32
  }
}

/** An advisor on a clock the test moves. */
function advisor (options: AdvisorConfig = {}): { advisor: Advisor, clock: { now: number } } {
  const clock = { now: 1_000_000 }
  return { advisor: new Advisor({ random: seeded(1), now: () => clock.now, ...options }), clock }
}

const kinds = (findings: AdviceFinding[]): string[] => findings.map((finding) => `${finding.level} ${finding.key} ${finding.kind}`)

/** An operation of the session or application level, as lib/advisor-feed.ts builds it from the stream. */
type Operation = Parameters<Advisor['feed']>[0]

/**
 * Gives `advisor` one operation of the session or application level by the rules of lib/advisor-feed.ts: a read
 * reaches the advisor only when the stream's per-operation sample draws it (a seeded draw at `sampleRate` here, the
 * advisor's own), and is then counted, its entry followed only on a hit that `watches()`; a write, load or invalidation
 * is given every time, counted on the advisor's `draw()` and followed when `watches()`; a drop is never counted, only
 * followed. At `sampleRate: 1` everything is counted and followed.
 */
function give (advisor: Advisor, usage: Operation): void {
  const watched = advisor.watches(usage.level, usage.key, usage.scope)
  switch (usage.type) {
    case 'read':
      if (advisor.draw()) advisor.feed(usage, true, usage.hit && watched)
      return
    case 'drop':
      advisor.feed(usage, false, watched)
      return
    default:
      advisor.feed(usage, advisor.draw(), watched)
  }
}

/**
 * One request's reads per key, as `subscribeRequestUsage` (lib/events.ts) hands them to the advisor at the request's
 * end: each read of a key counts 1, a key filled (set or loaded) and never read counts 0, and keys past
 * `ADVISOR_BOUNDS.keysPerRequest` are not counted.
 */
function readsOf (reads: Iterable<string>, filled: Iterable<string> = []): Map<string, { reads: number }> {
  const counted = new Map<string, { reads: number }>()
  for (const key of filled) {
    if (!counted.has(key) && counted.size < ADVISOR_BOUNDS.keysPerRequest) counted.set(key, { reads: 0 })
  }
  for (const key of reads) {
    const seen = counted.get(key)
    if (seen !== undefined) seen.reads++
    else if (counted.size < ADVISOR_BOUNDS.keysPerRequest) counted.set(key, { reads: 1 })
  }
  return counted
}

test('patterns: numbers, UUIDs, hex ids and long mixed tokens become *, words stay', async (t) => {
  t.equal(keyPattern('item:17'), 'item:*')
  t.equal(keyPattern('item:42'), 'item:*')
  t.equal(keyPattern('user:17:cart'), 'user:*:cart')
  t.equal(keyPattern('order:3f2504e0-4f89-11d3-9a0c-0305e82c3301:lines'), 'order:*:lines')
  t.equal(keyPattern('doc/507f1f77bcf86cd799439011'), 'doc/*')
  t.equal(keyPattern('v2:page2:settings'), 'v2:page2:settings', 'a version and a name are kept')
  t.equal(keyPattern('deadbeef'), 'deadbeef', 'a word of hex letters without a digit is a word')
  t.equal(keyPattern('token:Ab3_x9Qz-Lm4Rt7Yp2Wd8'), 'token:*', 'a base64url token, whatever its dashes and underscores')
  t.equal(keyPattern('catalog'), 'catalog')
  t.equal(keyPattern(`q:${'word '.repeat(100)}`).length, 200, 'a long key is cut to 200 characters')
})

test('no-reuse: a request-level key read once per request', async (t) => {
  const { advisor: misused } = advisor()
  // Each request: a getOrLoad that misses and loads `user:<id>`, never read again.
  for (let i = 0; i < 30; i++) misused.requestEnded(readsOf([`user:${i}`], [`user:${i}`]))
  const [finding, ...others] = misused.advice()
  t.same(others, [])
  t.match(finding, { level: 'request', key: 'user:*', kind: 'no-reuse', evidence: { requests: 30, reads: 30, readsPerRequest: 1, sampleRate: 1 } })
  t.match(finding?.message, /read 1 times per request on average/)

  const { advisor: good } = advisor()
  for (let i = 0; i < 30; i++) good.requestEnded(readsOf([`user:${i % 5}`, `user:${i % 5}`, `user:${i % 5}`]))
  t.same(good.advice(), [], 'read 3 times per request: no finding')

  const { advisor: early } = advisor()
  for (let i = 0; i < THRESHOLDS.noReuse.minPairs - 1; i++) early.requestEnded(readsOf(['user:1']))
  t.same(early.advice(), [], `fewer than ${THRESHOLDS.noReuse.minPairs} requests: not enough evidence yet`)
})

test('no-reuse: a request whose keys come in runs of one pattern counts each key of each run', async (t) => {
  const { advisor: mixed } = advisor()
  for (let i = 0; i < 30; i++) {
    // Ten keys of one pattern read once each, broken after the fifth by a key of another read three times.
    const items = Array.from({ length: 10 }, (_, k) => `item:${k}`)
    mixed.requestEnded(readsOf([...items.slice(0, 5), `user:${i}`, `user:${i}`, `user:${i}`, ...items.slice(5)]))
  }
  const findings = mixed.advice()
  t.same(kinds(findings), ['request item:* no-reuse'], 'the keys read once, not the one read three times')
  t.match(findings[0]?.evidence, { requests: 300, reads: 300 }, 'every key of both halves of the run counted')
})

test('same-in-every-session: one value copied into every session, with the memory it would save', async (t) => {
  const { advisor: misused } = advisor()
  for (let session = 0; session < 30; session++) {
    give(misused, { type: 'write', level: 'session', key: 'settings', scope: session, hash: 'h-settings', bytes: 2048 })
    give(misused, { type: 'write', level: 'session', key: 'settings', scope: session, hash: 'h-settings', bytes: 2048 })
    for (let read = 0; read < 5; read++) give(misused, { type: 'read', level: 'session', key: 'settings', hit: true, scope: session })
  }
  t.same(kinds(misused.advice()), ['session settings same-in-every-session'])
  const [finding] = misused.advice()
  t.match(finding?.evidence, { sessions: 30, values: 30, valueBytes: 2048, bytesSaved: 29 * 2048 }, 'a session writing the value again counts once')
  t.match(finding?.message, /same value in 30 sessions \(100 %.*saving about 58 KiB/)

  const { advisor: good } = advisor()
  for (let session = 0; session < 30; session++) {
    // Every cart starts empty, the same in every session, then holds that user's items.
    give(good, { type: 'write', level: 'session', key: 'cart', scope: session, hash: 'empty', bytes: 2 })
    give(good, { type: 'write', level: 'session', key: 'cart', scope: session, hash: `cart-${session}`, bytes: 200 })
    for (let read = 0; read < 5; read++) give(good, { type: 'read', level: 'session', key: 'cart', hit: true, scope: session })
  }
  t.same(good.advice(), [], 'a per-user cart: no finding')
})

test('same-in-every-session: the same value loaded into every session by getOrLoad', async (t) => {
  const { advisor: misused } = advisor()
  for (let session = 0; session < 25; session++) {
    give(misused, { type: 'read', level: 'session', key: 'settings', hit: false, scope: session })
    give(misused, { type: 'load', level: 'session', key: 'settings', scope: session, hash: 0xabc, bytes: 500 })
    for (let read = 0; read < 3; read++) give(misused, { type: 'read', level: 'session', key: 'settings', hit: true, scope: session })
  }
  t.same(kinds(misused.advice()), ['session settings same-in-every-session'])
  t.match(misused.advice()[0]?.evidence, { sessions: 25, bytesSaved: 24 * 500 })
})

test('same-in-every-session: found among many distinct values that came first', async (t) => {
  const { advisor: misused } = advisor()
  for (let session = 0; session < 100; session++) give(misused, { type: 'write', level: 'session', key: 'prefs', scope: session, hash: `own-${session}` })
  for (let session = 100; session < 600; session++) give(misused, { type: 'write', level: 'session', key: 'prefs', scope: session, hash: 'shared', bytes: 10 })
  for (let read = 0; read < 3000; read++) give(misused, { type: 'read', level: 'session', key: 'prefs', scope: read % 600, hit: true })
  t.same(kinds(misused.advice()), ['session prefs same-in-every-session'])
})

test('volatile: written or invalidated about as often as read', async (t) => {
  const { advisor: misused } = advisor()
  for (let i = 0; i < 120; i++) {
    give(misused, { type: 'write', level: 'app', key: `stock:${i % 3}`, hash: i })
    if (i % 2 === 0) give(misused, { type: 'read', level: 'app', key: `stock:${i % 3}`, hit: true })
  }
  const [finding] = misused.advice()
  t.match(finding, { level: 'app', key: 'stock:*', kind: 'volatile', evidence: { reads: 60, writes: 120, invalidations: 0 } })

  const { advisor: invalidated } = advisor()
  for (let i = 0; i < 50; i++) {
    give(invalidated, { type: 'read', level: 'app', key: 'balance', hit: false })
    give(invalidated, { type: 'load', level: 'app', key: 'balance', hash: i })
    give(invalidated, { type: 'invalidate', level: 'app', key: 'balance' })
  }
  t.same(kinds(invalidated.advice()), ['app balance volatile'], 'invalidated after every read')

  const { advisor: good } = advisor()
  give(good, { type: 'load', level: 'app', key: 'catalog', hash: 'c1' })
  for (let i = 0; i < 200; i++) {
    give(good, { type: 'read', level: 'app', key: 'catalog', hit: true })
    if (i % 40 === 0) give(good, { type: 'write', level: 'app', key: 'catalog', hash: `c${i}` })
  }
  t.same(good.advice(), [], 'a catalog read far more often than written: no finding')
})

test('ttl-too-short: the same value loaded again right after it expired', async (t) => {
  const cycle = (target: Advisor, clock: { now: number }, hash: (i: number) => string, gap: number): void => {
    for (let i = 0; i < 15; i++) {
      give(target, { type: 'read', level: 'app', key: 'rates', hit: false })
      give(target, { type: 'load', level: 'app', key: 'rates', hash: hash(i) })
      for (let read = 0; read < 5; read++) give(target, { type: 'read', level: 'app', key: 'rates', hit: true })
      clock.now += 1000
      give(target, { type: 'drop', level: 'app', key: 'rates', reason: 'expire' })
      clock.now += gap
    }
  }
  const misused = advisor()
  cycle(misused.advisor, misused.clock, () => 'same', 50)
  const [finding, ...others] = misused.advisor.advice()
  t.same(others, [])
  t.match(finding, { level: 'app', key: 'rates', kind: 'ttl-too-short', evidence: { expirations: 15, reloadsAfterExpiry: 14, unchanged: 14 } })
  t.match(finding?.message, /raise its ttl, or use staleWhileRevalidate/)

  const changing = advisor()
  cycle(changing.advisor, changing.clock, (i) => `rates-${i}`, 50)
  t.same(changing.advisor.advice(), [], 'a value that changed each time it expired: the ttl is right')

  const late = advisor()
  cycle(late.advisor, late.clock, () => 'same', THRESHOLDS.ttlTooShort.windowMs + 1)
  t.same(late.advisor.advice(), [], 'reloaded long after it expired: not "right after"')
})

test('too-small: evicted by the size bound, then loaded again; one finding per level and pattern', async (t) => {
  const { advisor: misused } = advisor()
  for (let round = 0; round < 2; round++) {
    for (let i = 0; i < 20; i++) {
      give(misused, { type: 'read', level: 'app', key: `item:${i}`, hit: false })
      give(misused, { type: 'load', level: 'app', key: `item:${i}`, hash: i })
      for (let read = 0; read < 5; read++) give(misused, { type: 'read', level: 'app', key: `item:${i}`, hit: true })
      give(misused, { type: 'drop', level: 'app', key: `item:${i}`, reason: 'evict' })
    }
  }
  const findings = misused.advice()
  t.same(kinds(findings), ['app item:* too-small'], 'one finding for the 20 keys')
  t.match(findings[0], { evidence: { evictions: 40, reloadsAfterEviction: 20 } })
  t.match(findings[0]?.message, /appCache max/)

  const { advisor: good } = advisor()
  for (let i = 0; i < 200; i++) {
    give(good, { type: 'load', level: 'app', key: `item:${i}`, hash: i })
    for (let read = 0; read < 5; read++) give(good, { type: 'read', level: 'app', key: `item:${i}`, hit: true })
    give(good, { type: 'drop', level: 'app', key: `item:${i}`, reason: 'evict' })
  }
  for (let i = 0; i < 5; i++) give(good, { type: 'load', level: 'app', key: `item:${i}`, hash: i })
  t.same(good.advice(), [], 'a long tail evicted and rarely asked again: no finding')
})

test('never-read: written, then expired or evicted without a read', async (t) => {
  const { advisor: misused } = advisor()
  for (let i = 0; i < 25; i++) {
    give(misused, { type: 'write', level: 'app', key: `report:${i}`, hash: i })
    give(misused, { type: 'drop', level: 'app', key: `report:${i}`, reason: i % 2 === 0 ? 'expire' : 'evict' })
  }
  const findings = misused.advice()
  t.same(kinds(findings).filter((kind) => kind.endsWith('never-read')), ['app report:* never-read'])
  t.match(findings.find((finding) => finding.kind === 'never-read'), { evidence: { writtenAndDropped: 25, neverRead: 25 } })

  const { advisor: good } = advisor()
  for (let i = 0; i < 25; i++) {
    give(good, { type: 'write', level: 'app', key: `report:${i}`, hash: i })
    give(good, { type: 'read', level: 'app', key: `report:${i}`, hit: true })
    give(good, { type: 'read', level: 'app', key: `report:${i}`, hit: true })
    give(good, { type: 'drop', level: 'app', key: `report:${i}`, reason: 'expire' })
  }
  t.same(good.advice(), [], 'each read before it expired: no finding')
})

test('onFinding: each finding once, however often advice() is asked', async (t) => {
  const told: AdviceFinding[] = []
  const { advisor: watched } = advisor({ onFinding: (finding) => { told.push(finding) } })
  const misuse = (from: number): void => {
    for (let i = from; i < from + 25; i++) {
      give(watched, { type: 'write', level: 'app', key: `report:${i}`, hash: i })
      give(watched, { type: 'drop', level: 'app', key: `report:${i}`, reason: 'expire' })
    }
  }
  misuse(0)
  t.same(kinds(watched.advice()), ['app report:* never-read'])
  t.same(kinds(watched.advice()), ['app report:* never-read'])
  for (const from of [25, 50, 75]) misuse(from)
  t.same(kinds(watched.advice()), ['app report:* volatile', 'app report:* never-read'], 'enough writes now to be volatile too')
  watched.advice()
  t.same(told.map((finding) => finding.kind), ['never-read', 'volatile'], 'each told once, when first found')
})

test('bounds: keys a client chooses fill the advisor, never grow it', async (t) => {
  const { advisor: flooded } = advisor()
  const steady = (): void => {
    give(flooded, { type: 'write', level: 'app', key: 'user:1', hash: 1 })
  }
  steady()
  steady()
  for (let i = 0; i < 60_000; i++) {
    const word = i.toString(36).replace(/\d/g, (d) => 'ABCDEFGHIJ'[Number(d)] as string)
    give(flooded, { type: 'write', level: 'app', key: `search:${word}`, hash: i })
    give(flooded, { type: 'write', level: 'session', key: `search:${word}`, scope: i, hash: i })
    flooded.requestEnded(readsOf([`search:${word}`]))
    if (i % 100 === 0) steady()
  }
  // 5,000 long keys, 25 to a request (a request hands over at most ADVISOR_BOUNDS.keysPerRequest: that bound is
  // lib/events.ts's `maxKeys`, tested in test/lib/events.test.ts), each read twice: each of their patterns seen often.
  for (let request = 0; request < 200; request++) {
    const keys = Array.from({ length: 25 }, (_, k) => request * 25 + k).map((i) => `k${'x'.repeat(i % 500)}:${i}`)
    flooded.requestEnded(readsOf([...keys, ...keys]))
  }
  const footprint = flooded.footprint()
  t.ok(footprint.patterns <= ADVISOR_BOUNDS.patterns, `patterns ${footprint.patterns}`)
  t.ok(footprint.probation <= ADVISOR_BOUNDS.patterns, `probation ${footprint.probation}`)
  t.equal(footprint.keys, ADVISOR_BOUNDS.keys, 'keys remembered: full, not more')
  t.ok(footprint.patterns <= 501, `keys seen once stay on probation (${footprint.patterns} promoted: the long keys' patterns, those cut at 200 characters one, and user:*)`)

  t.same(kinds(flooded.advice()), ['app user:* volatile'], 'the pattern in use kept its counts through the flood')
  t.match(flooded.advice()[0]?.evidence, { writes: 602 })
})

test('sampling: a fixed share of keys, the same keys for a given seed, and the findings still found', async (t) => {
  const a = new Advisor({ sampleRate: 0.1, random: seeded(42) })
  const b = new Advisor({ sampleRate: 0.1, random: seeded(42) })
  const c = new Advisor({ sampleRate: 0.1, random: seeded(7) })
  let watched = 0
  let agree = 0
  let differ = 0
  for (let i = 0; i < 10_000; i++) {
    const key = `item:${i}`
    if (a.watches('app', key)) watched++
    if (a.watches('app', key) === b.watches('app', key)) agree++
    if (a.watches('app', key) !== c.watches('app', key)) differ++
  }
  t.ok(watched > 900 && watched < 1100, `about 1 key in 10 watched: ${watched}`)
  t.equal(agree, 10_000, 'the same seed, the same keys')
  t.ok(differ > 1000, 'another seed, other keys')
  t.equal(a.watches('app', 'item:5'), a.watches('app', 'item:5'), 'a key is in or out for good')

  // Exactly this run, every time: the seed fixes which of the 1,000 requests, each reading its user once, are drawn. The
  // request level is read whole, one drawn request at a time, at a quarter of sampleRate: subscribeRequestUsage draws
  // 1 in 10 by a countdown on its seeded source, a seeded draw per request here.
  const sampled = new Advisor({ sampleRate: 0.4, random: seeded(42) })
  t.equal(sampled.countRate, 0.1)
  t.equal(sampled.requestRate, 0.1, 'requestRate, as first documented, is countRate')
  const drawRequest = seeded(42)
  let users = 0
  for (let i = 0; i < 1000; i++) {
    if (drawRequest() >= sampled.countRate) continue
    users++
    sampled.requestEnded(readsOf([`user:${i}`]))
  }
  t.ok(users > 60 && users < 140, `about 1 request in 10 drawn: ${users}`)
  const [finding] = sampled.advice()
  t.match(finding, { kind: 'no-reuse', evidence: { requests: users, reads: users, sampleRate: 0.1 } }, 'counts as observed, with the share of requests read beside them')

  // One key every session has: watched in some sessions, not all or none.
  const sessions = new Advisor({ sampleRate: 0.1, random: seeded(42) })
  let watchedSessions = 0
  for (let session = 0; session < 1000; session++) {
    if (sessions.watches('session', 'settings', session)) watchedSessions++
    give(sessions, { type: 'load', level: 'session', key: 'settings', scope: session, hash: 'global', bytes: 100 })
    for (let read = 0; read < 3; read++) give(sessions, { type: 'read', level: 'session', key: 'settings', hit: true, scope: session })
  }
  t.ok(watchedSessions > 60 && watchedSessions < 140, `settings watched in about 1 session in 10: ${watchedSessions}`)
  t.match(sessions.advice(), [{ kind: 'same-in-every-session', evidence: { sessions: watchedSessions, sampleRate: 0.1 } }])
  t.throws(() => new Advisor({ sampleRate: 0 }), RangeError)
  t.throws(() => new Advisor({ sampleRate: 1.5 }), RangeError)
})

test('same-in-every-session counts sessions: one session holding one value under many keys of a pattern is one', async (t) => {
  const { advisor: one } = advisor()
  for (let i = 0; i < 30; i++) give(one, { type: 'write', level: 'session', key: `draft:${i}`, scope: 7, hash: 'same', bytes: 10 })
  give(one, { type: 'write', level: 'session', key: 'draft:0', scope: 7, hash: 'same', bytes: 10 })
  t.same(one.advice(), [])
  const { advisor: many } = advisor()
  for (let session = 0; session < 30; session++) {
    for (let i = 0; i < 3; i++) give(many, { type: 'write', level: 'session', key: `draft:${i}`, scope: session, hash: 'same', bytes: 10 })
  }
  t.same(kinds(many.advice()).filter((kind) => kind.endsWith('same-in-every-session')), ['session draft:* same-in-every-session'], 'written, never read: volatile too')
  t.match(many.advice()[0]?.evidence, { sessions: 30, values: 30 })
})

test('feed: totals only when drawn, entries only when watched; the request level request by request', async (t) => {
  const { advisor: fed } = advisor()
  for (let i = 0; i < 25; i++) {
    fed.requestEnded(new Map([['viewer', { reads: 1 }], [`user:${i}`, { reads: 3 }]]))
    fed.requestEnded(new Map([['viewer', { reads: 0 }]]))
  }
  t.same(kinds(fed.advice()), ['request viewer no-reuse'], 'read once in one request and never in another; a key read three times, nothing')
  t.match(fed.advice()[0]?.evidence, { requests: 50, reads: 25, readsPerRequest: 0.5 })
  const { advisor: unseen } = advisor()
  for (let i = 0; i < 30; i++) {
    unseen.feed({ type: 'write', level: 'app', key: `report:${i}` }, false, false)
    unseen.feed({ type: 'drop', level: 'app', key: `report:${i}`, reason: 'evict' }, false, false)
  }
  t.same(unseen.advice(), [], 'neither drawn nor watched: nothing counted')
  const { advisor: sampledHits } = advisor()
  for (let i = 0; i < 50; i++) {
    sampledHits.feed({ type: 'write', level: 'app', key: `report:${i}` }, true, true)
    // A hit drawn by the stream, of another entry than the one followed: the entry still looks unread.
    sampledHits.feed({ type: 'read', level: 'app', key: `report:${i + 1000}`, hit: true }, true, false)
    sampledHits.feed({ type: 'drop', level: 'app', key: `report:${i}`, reason: 'evict' }, false, true)
  }
  const found = sampledHits.advice().map((finding) => finding.kind)
  t.notOk(found.includes('never-read'), 'one hit per set over the pattern holds never-read back')
  t.ok(found.includes('volatile'), 'as many sets as reads: volatile')
})

test('sampled totals ask for more: volatile and never-read\'s guard wait for counts that runs of 16 cannot fake', async (t) => {
  const sampled = { counted: 0.0025, followed: 0.01 }
  const whole = { counted: 1, followed: 1 }
  const stats = (counts: Partial<PatternStats>): PatternStats => Object.assign(new PatternStats('app', 'stock:*'), counts)
  const kinds = (found: AdviceFinding[]): string[] => found.map((finding) => finding.kind)

  // Written as often as read: 150 operations are enough when every one is counted, not when they come in runs.
  const volatile = { reads: 75, writes: 75 }
  t.same(kinds(findingsOf(stats(volatile), whole)), ['volatile'])
  t.same(kinds(findingsOf(stats(volatile), sampled)), [], `under ${THRESHOLDS.volatile.minSampledOperations} counted: not yet`)
  t.match(findingsOf(stats({ reads: 150, writes: 150 }), sampled), [{ kind: 'volatile', evidence: { sampleRate: 0.0025 } }])

  // Every followed entry dropped unread, no hit counted: with 150 sets counted, one run of 16 hits could still be ahead.
  const unread = { writtenDrops: 25, unreadDrops: 25, hits: 0, reads: 1000 }
  t.same(kinds(findingsOf(stats({ ...unread, writes: 150 }), whole)), ['never-read'])
  t.same(kinds(findingsOf(stats({ ...unread, writes: 150 }), sampled)), [], `under ${THRESHOLDS.neverRead.minSampledWrites} sets counted: not yet`)
  t.match(findingsOf(stats({ ...unread, writes: 200 }), sampled), [{ kind: 'never-read', evidence: { countRate: 0.0025, sampleRate: 0.01 } }])
})
