import FakeTimers from '@sinonjs/fake-timers'
import { test } from 'tap'
import { Breaker, guardStore } from '../../lib/breaker.js'
import { SerializeError } from '../../lib/errors.js'
import { MemoryStore } from '../../lib/stores/memory.js'
import type { Store } from '../../lib/store.js'

function logged (): { lines: string[], log: { warn: (d: object, m: string) => void, info: (d: object, m: string) => void } } {
  const lines: string[] = []
  return { lines, log: { warn: (_d, m) => { lines.push(`warn ${m}`) }, info: (_d, m) => { lines.push(`info ${m}`) } } }
}

test('opens after consecutive failures, skips the store, probes one at a time after the cool-down, closes on success', async (t) => {
  const clock = FakeTimers.install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const { lines, log } = logged()
  const breaker = new Breaker({ failures: 3, coolDown: 1000, log, name: 'app' })
  let calls = 0
  let healthy = false
  const command = async (): Promise<string> => {
    calls++
    if (!healthy) throw new Error('timeout')
    return 'ok'
  }
  await t.rejects(breaker.run('get', command), /timeout/)
  await t.rejects(breaker.run('get', command), /timeout/)
  t.equal(breaker.state, 'closed', 'two failures are not enough')
  healthy = true
  t.equal(await breaker.run('get', command), 'ok')
  healthy = false
  for (let i = 0; i < 3; i++) await t.rejects(breaker.run('get', command), /timeout/)
  t.equal(breaker.state, 'open', 'three in a row open it (a success in between reset the count)')
  t.equal(calls, 6)
  await t.rejects(breaker.run('get', command), { code: 'FST_MULTICACHE_STORE', message: /circuit breaker is open/, statusCode: 503, headers: { 'retry-after': '1' } })
  t.equal(calls, 6, 'while open, the store is not reached')

  clock.tick(1000)
  let release: () => void = () => {}
  const probe = breaker.run('get', async () => { calls++; await new Promise<void>((resolve) => { release = resolve }); throw new Error('still down') })
  t.equal(breaker.state, 'half-open')
  const skipped = await breaker.run('get', command).catch((error: { headers?: unknown }) => error)
  t.match(skipped, { message: /circuit breaker is open/, headers: undefined }, 'one probe at a time: the others skip, with no promise of when')
  release()
  await t.rejects(probe, /still down/)
  t.equal(breaker.state, 'open', 'a failed probe opens it for another cool-down')
  await t.rejects(breaker.run('get', command), /circuit breaker is open/)
  clock.tick(1000)
  healthy = true
  t.equal(await breaker.run('get', command), 'ok', 'a probe that succeeds')
  t.equal(breaker.state, 'closed', 'closes it')
  t.equal(lines.length, 2, 'opening and closing are logged once each')
  t.match(lines[0], /^warn .*app store failed 3 times in a row; circuit breaker open/)
  t.match(lines[1], /^info .*app store answers again; circuit breaker closed/)
})

test('a guarded store runs every operation that reaches the store through the breaker, and nothing else', async (t) => {
  const breaker = new Breaker({ failures: 1, coolDown: 60_000, name: 'test' })
  const inner = new MemoryStore({ max: 10 })
  let down = false
  const flaky: Store = {
    get: async (key) => { if (down) throw new Error('down'); return inner.get(key) },
    set: async (key, value, ttl) => { inner.set(key, value, ttl) },
    delete: async (key) => inner.delete(key),
    clear: async () => { inner.clear() },
    getMany: async (keys) => keys.map((key) => inner.get(key)),
    getTimedMany: async (keys) => keys.map((key) => ({ value: inner.get(key), ttl: 0 })),
    setMany: async (entries) => { for (const { key, value, ttl } of entries) inner.set(key, value, ttl) },
    stored: (_key, value) => JSON.parse(JSON.stringify(value)),
    groups: inner.groups,
    get size () { return inner.size }
  }
  const store = guardStore(flaky, breaker)
  await store.set('a', { n: 1 })
  t.same(await store.getMany?.(['a', 'b']), [{ n: 1 }, undefined])
  await store.setMany?.([{ key: 'c', value: 3, ttl: 0 }])
  t.same(await store.getTimedMany?.(['c']), [{ value: 3, ttl: 0 }])
  t.same(store.stored?.('a', { d: new Date(0) }), { d: '1970-01-01T00:00:00.000Z' }, 'stored() is not an operation of the store: passed through')
  t.equal(store.size, 2)
  t.equal(await store.groups?.create('g', { fence: 'f', fields: {} }, 1000), true)
  t.equal(store.getTimed, undefined, 'what the store lacks, the guarded one lacks')
  t.equal(store.fences, undefined)
  down = true
  await t.rejects(Promise.resolve(store.get('a')), /down/)
  t.equal(breaker.state, 'open')
  await t.rejects(Promise.resolve(store.set('b', 1)), /circuit breaker is open/)
  await t.rejects(Promise.resolve(store.groups?.read('g', 1000)), /groups.read failed: skipped/)
  await t.rejects(Promise.resolve(store.setMany?.([{ key: 'b', value: 1, ttl: 0 }])), /setMany failed: skipped/)
  await t.rejects(Promise.resolve(store.getTimedMany?.(['a'])), /getTimedMany failed: skipped/)
  t.equal(inner.get('b'), undefined, 'nothing reached the store while open')
})

test('a value the store refuses (too large, not serializable) is not a failure: refusals never open the breaker', async (t) => {
  const breaker = new Breaker({ failures: 3, coolDown: 1000, name: 'session' })
  const store = guardStore(new MemoryStore({ max: 10, maxBytes: 10 }), breaker)
  for (let i = 0; i < 5; i++) await t.rejects(Promise.resolve(store.set('big', 'x'.repeat(100))), { code: 'FST_MULTICACHE_ENTRY_TOO_LARGE' })
  const refused = async (): Promise<never> => { throw new SerializeError('k', 'JSON cannot keep a function') }
  for (let i = 0; i < 5; i++) await t.rejects(breaker.run('set', refused), { code: 'FST_MULTICACHE_SERIALIZE' })
  t.equal(breaker.state, 'closed')
  await store.set('small', 'x')
  t.equal(await store.get('small'), 'x', 'the store is still used')
  for (let i = 0; i < 3; i++) await t.rejects(breaker.run('get', async () => { throw new Error('timeout') }), /timeout/)
  t.equal(breaker.state, 'open', 'a real failure still counts')
})
