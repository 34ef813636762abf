import { test } from 'tap'
import { KeyRule, MAX_KEY_LENGTH } from '../../lib/keys.js'
import { CacheLookup } from '../../lib/lookup.js'
import { AppCache } from '../../lib/scopes/application.js'
import { RequestLevel } from '../../lib/scopes/request.js'
import { SessionLevel } from '../../lib/scopes/session.js'
import type { Store } from '../../lib/store.js'
import { MemoryStore } from '../../lib/stores/memory.js'

/** A store that records every key it is asked about. */
function recording (): { store: Store, keys: string[] } {
  const keys: string[] = []
  const inner = new MemoryStore({ max: 10 })
  const store: Store = {
    get: (key) => { keys.push(key); return inner.get(key) },
    set: (key, value, ttl) => { keys.push(key); inner.set(key, value, ttl) },
    delete: (key) => { keys.push(key); return inner.delete(key) },
    clear: () => { inner.clear() }
  }
  return { store, keys }
}

test('a key longer than maxKeyLength is refused by every level and the lookup, naming its length and the limit', async (t) => {
  t.equal(MAX_KEY_LENGTH, 1024)
  const rule: KeyRule = new KeyRule(8)
  t.ok(rule.valid('12345678'))
  t.notOk(rule.valid('123456789'))
  t.throws(() => { rule.assert('123456789') }, { code: 'FST_MULTICACHE_INVALID_KEY', message: 'cache key of 9 characters is longer than maxKeyLength (8)' })
  t.throws(() => { rule.assert('') }, { message: 'cache key must be a non-empty string, got ""' })

  const long = 'k'.repeat(1025)
  const { store, keys } = recording()
  const app = new AppCache({ store, ttl: 0, log: { warn: () => {} } })
  const expected = { code: 'FST_MULTICACHE_INVALID_KEY', message: /1025 characters is longer than maxKeyLength \(1024\)/ }
  await t.rejects(app.get(long), expected)
  await t.rejects(app.getOrLoad(long, () => 1), expected)
  await t.rejects(app.set(long, 1), expected)
  await t.rejects(app.delete(long), expected)
  await t.rejects(app.invalidate([long]), expected)
  t.same(keys, [], 'it never reached the store')
  t.equal(await app.getOrLoad('k'.repeat(1024), () => 1), 1, 'the limit itself is taken')

  const request = new RequestLevel({ maxEntries: 10, maxKeyLength: 4 }).open()
  t.throws(() => request.set('12345', 1), { message: /maxKeyLength \(4\)/ })
  await t.rejects(request.getOrLoad('12345', () => 1), { message: /maxKeyLength \(4\)/ })

  const session = new SessionLevel({ ttl: 1000, maxEntriesPerSession: 10, store: new MemoryStore({ max: 10 }), maxKeyLength: 4 }).open(() => undefined)
  await t.rejects(session.set('12345', 1), { message: /maxKeyLength \(4\)/ })
  await t.rejects(session.get('12345'), { message: /maxKeyLength \(4\)/ })

  const asked = keys.length
  const lookup = new CacheLookup(undefined, undefined, app, new KeyRule(4))
  await t.rejects(lookup.get('12345'), { message: /maxKeyLength \(4\)/ })
  await t.rejects(lookup.getOrLoad('12345', () => 1, { level: 'app' }), { message: /maxKeyLength \(4\)/ })
  t.equal(keys.length, asked, 'the lookup asked no level')
})
