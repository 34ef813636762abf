import { pack, unpack } from 'msgpackr'
import { test } from 'tap'
import { jsonSerializer } from '../../lib/serializer.js'
import type { TagOperations } from '../../lib/store.js'
import { TagVersions } from '../../lib/tags.js'

// The versions of tags, alone: an entry found current is marked, so that its next reads skip the check, and the mark
// must never vouch for an entry whose tag moved since.

function entry (tags: string[], versions: number[]): { t: string[], tv: number[] } {
  return { t: tags, tv: versions }
}

test('an entry found current is vouched for by its mark only until a version moves', async (t) => {
  const tags = new TagVersions()
  const held = entry(['catalog', 'product:1'], [0, 0])
  t.ok(tags.current(held.t, held.tv, held))
  t.ok(tags.current(held.t, held.tv, held), 'read again under the same versions')
  await tags.invalidate(['product:1'])
  t.notOk(tags.current(held.t, held.tv, held), 'a moved version is not hidden by the mark')
  const other = entry(['brand:1'], [0])
  t.ok(tags.current(other.t, other.tv, other))
  await tags.invalidate(['catalog'])
  t.ok(tags.current(other.t, other.tv, other), 'another tag moved: checked again, and still current')
  t.notOk(tags.current(held.t, held.tv, held))
})

test('versions heard from the shared store or another instance end the marks; an older version changes nothing', async (t) => {
  const shared: TagOperations = { read: async () => ({ catalog: 3 }), bump: async (names) => Object.fromEntries(names.map((name) => [name, 9])) }
  const tags = new TagVersions(shared)
  const held = entry(['catalog'], [3])
  t.notOk(tags.current(held.t, held.tv, held), 'unknown until read from the shared store')
  await tags.load()
  t.ok(tags.current(held.t, held.tv, held))
  tags.apply({ catalog: 2 })
  t.ok(tags.current(held.t, held.tv, held), 'a version never goes back')
  tags.apply({ catalog: 4 })
  t.notOk(tags.current(held.t, held.tv, held))
  const later = entry(['catalog'], [4])
  t.ok(tags.current(later.t, later.tv, later))
  tags.forget()
  t.notOk(tags.current(later.t, later.tv, later), 'messages may have been missed: the mark does not vouch')
  await tags.invalidate(['catalog'])
  await tags.load()
  t.notOk(tags.current(later.t, later.tv, later), 'moved by this instance through the shared store')
})

test("one instance's mark never passes for another's: two levels may share an entry", async (t) => {
  const a = new TagVersions()
  const b = new TagVersions()
  // One move each, of different tags: a mark counted per instance would be the same number on both.
  await a.invalidate(['brand:1'])
  await b.invalidate(['catalog'])
  const held = entry(['catalog'], [0])
  t.ok(a.current(held.t, held.tv, held))
  t.notOk(b.current(held.t, held.tv, held), 'catalog moved on b')
})

test('the mark is invisible to serializers, and an entry that cannot take it is checked each time', async (t) => {
  const tags = new TagVersions()
  const held = entry(['catalog'], [0])
  t.ok(tags.current(held.t, held.tv, held))
  t.same(Object.keys(held), ['t', 'tv'])
  t.equal(JSON.stringify(held), '{"t":["catalog"],"tv":[0]}')
  t.same(jsonSerializer.decode(jsonSerializer.encode(held)), held)
  t.strictSame(unpack(pack(held)), { t: ['catalog'], tv: [0] }, 'msgpackr leaves it out')
  const frozen = Object.freeze(entry(['catalog'], [0]))
  t.ok(tags.current(frozen.t, frozen.tv, frozen))
  t.ok(tags.current(frozen.t, frozen.tv, frozen))
  await tags.invalidate(['catalog'])
  t.notOk(tags.current(frozen.t, frozen.tv, frozen))
  t.notOk(tags.current(held.t, held.tv, held))
})
