import FakeTimers from '@sinonjs/fake-timers'
import Keyv from 'keyv'
import { test } from 'tap'
import type { Store } from '../../lib/store.js'
import { keyedGroups } from '../../lib/stores/keyed-groups.js'
import { KeyvStore } from '../../lib/stores/keyv.js'
import { JsonStore } from '../helpers/stores.js'

// Groups over a store of whole values (Keyv, a custom store): the contract the session level relies on, checked
// directly, with a store that reads one key at a time and one that reads many at once.

const STORES: Array<[string, () => Store]> = [
  ['one key at a time (JSON)', () => new JsonStore()],
  ['many at once (Keyv)', () => new KeyvStore({ keyv: new Keyv() })]
]

for (const [kind, make] of STORES) {
  test(`${kind}: create takes a free key only; update and end need the group's fence`, async (t) => {
    const groups = keyedGroups(make(), 60_000)
    t.equal(await groups.create('s', { fence: 'f1', fields: { a: 1 } }, 60_000), true)
    t.equal(await groups.create('s', { fence: 'f2', fields: { a: 2 } }, 60_000), false, 'the key is taken')
    t.same(await groups.read('s', 60_000), { fence: 'f1', fields: { a: 1 }, partial: true })

    t.equal(await groups.update('s', 'f2', { set: { a: 9 } }, 60_000), false, 'another fence writes nothing')
    t.equal(await groups.update('s', 'f1', { set: { b: 2 } }, 60_000), true)
    t.same((await groups.read('s', 60_000))?.fields, { a: 1, b: 2 })
    t.equal(await groups.end('s', 'f2'), undefined, 'another fence ends nothing')
    t.same((await groups.read('s', 60_000))?.fields, { a: 1, b: 2 })

    t.same(await groups.end('s', 'f1'), { fence: 'f1', fields: { a: 1, b: 2 } })
    t.equal(await groups.read('s', 60_000), undefined)
    t.equal(await groups.field?.('s', 'f1', 'a'), undefined, 'a request that still holds the fence reads nothing either')
    t.equal(await groups.update('s', 'f1', { set: { c: 3 } }, 60_000), false, 'nor writes')
  })

  test(`${kind}: a cap drops the earliest written of its kind, from the store too`, async (t) => {
    const groups = keyedGroups(make(), 60_000)
    await groups.create('s', { fence: 'f', fields: { 'd:a': 1, 'p:x': 1 } }, 60_000)
    const cap = { prefix: 'd:', max: 2 }
    await groups.update('s', 'f', { set: { 'd:b': 2 }, cap }, 60_000)
    await groups.update('s', 'f', { set: { 'd:a': 3 } }, 60_000)
    await groups.update('s', 'f', { set: { 'd:c': 4 }, cap }, 60_000)
    t.same((await groups.read('s', 60_000))?.fields, { 'p:x': 1, 'd:a': 3, 'd:c': 4 }, 'd:b, written before d:a was written again')
    t.equal(await groups.field?.('s', 'f', 'd:b'), undefined, 'not readable by name either')
    await groups.update('s', 'f', { set: { 'd:e': 5 } }, 60_000)
    t.equal(Object.keys((await groups.read('s', 60_000))?.fields ?? {}).length, 4, 'no cap, nothing dropped')
  })
}

test('fields expire on their own; a group whose fields all expired reads empty', async (t) => {
  const clock = FakeTimers.install({ toFake: ['Date'] })
  t.teardown(() => clock.uninstall())
  const groups = keyedGroups(new JsonStore(), 60_000)
  await groups.create('s', { fence: 'f', fields: { a: 1 } }, 1000)
  clock.tick(500)
  await groups.update('s', 'f', { set: { b: 2 } }, 1000)
  clock.tick(700)
  t.same(Object.keys((await groups.read('s', 1000))?.fields ?? {}), ['b'], 'a expired, b was written later')
  clock.tick(1000)
  t.same(await groups.read('s', 1000), { fence: 'f', fields: {}, partial: true }, 'the group lives its lifetime, empty')
})
