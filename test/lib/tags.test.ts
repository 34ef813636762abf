import { pack, unpack } from 'msgpackr'
import { test } from 'tap'
import { jsonSerializer } from '../../lib/serializer.js'
import type { TagEpoch, TagOperations } from '../../lib/store.js'
import { TagVersions } from '../../lib/tags.js'
import { until } from '../helpers/until.js'

// The versions of tags, alone: an entry found current is marked, so that its next reads skip the check, and the mark
// must never vouch for an entry whose tag moved since.

interface Entry { t: string[], tv: number[], te?: string }

function entry (tags: string[], versions: number[], epoch?: string): Entry {
  return epoch === undefined ? { t: tags, tv: versions } : { t: tags, tv: versions, te: epoch }
}

/** Whether `versions` hold `held` current, as a read of it asks. */
function current (versions: TagVersions, held: Entry): boolean {
  return versions.current(held.t, held.tv, held.te, held)
}

/** Tag versions as Redis keeps them (see `RedisStore`), with the losses Redis can have. */
class SharedVersions implements TagOperations {
  epoch: string
  versions: Record<string, number>
  reads = 0
  /** While set, a read waits for it. */
  hold: Promise<void> | undefined
  private epochs = 0

  constructor (versions: Record<string, number>) {
    this.epoch = this.draw()
    this.versions = { ...versions }
  }

  async read (): Promise<TagEpoch> {
    this.reads++
    if (this.epoch === '') this.epoch = this.draw()
    const { epoch, versions } = this
    const read = { epoch, versions: { ...versions } }
    await this.hold
    return read
  }

  async bump (names: readonly string[], stale?: string): Promise<TagEpoch> {
    if (this.epoch === '' || this.epoch === stale) this.epoch = this.draw()
    for (const name of names) this.versions[name] = (this.versions[name] ?? 0) + 1
    return { epoch: this.epoch, versions: Object.fromEntries(names.map((name) => [name, this.versions[name] as number])) }
  }

  /** Restarted empty, or flushed: no epoch, no versions. */
  lose (): void {
    this.epoch = ''
    this.versions = {}
  }

  private draw (): string {
    return `epoch-${++this.epochs}`
  }
}

/** True once `tags` know the versions, in the epoch `store` is at. */
function known (tags: TagVersions, store: SharedVersions): boolean {
  return tags.current([], [], store.epoch)
}

test('an entry found current is vouched for by its mark only until a version moves', async (t) => {
  const tags = new TagVersions()
  const held = entry(['catalog', 'product:1'], [0, 0])
  t.ok(current(tags, held))
  t.ok(current(tags, held), 'read again under the same versions')
  await tags.invalidate(['product:1'])
  t.notOk(current(tags, held), 'a moved version is not hidden by the mark')
  const other = entry(['brand:1'], [0])
  t.ok(current(tags, other))
  await tags.invalidate(['catalog'])
  t.ok(current(tags, other), 'another tag moved: checked again, and still current')
  t.notOk(current(tags, held))
})

test('versions heard from the shared store or another instance end the marks; an older version changes nothing', async (t) => {
  const store = new SharedVersions({ catalog: 3 })
  const tags = new TagVersions(store)
  const held = entry(['catalog'], [3], store.epoch)
  t.notOk(current(tags, held), 'unknown until read from the shared store')
  await tags.load()
  t.ok(current(tags, held))
  tags.apply({ epoch: store.epoch, versions: { catalog: 2 } })
  t.ok(current(tags, held), 'a version never goes back')
  tags.apply(await store.bump(['catalog'])) // another instance's move, heard on the bus
  t.notOk(current(tags, held))
  const later = entry(['catalog'], [4], store.epoch)
  t.ok(current(tags, later))
  tags.forget()
  t.notOk(current(tags, later), 'messages may have been missed: the mark does not vouch')
  await until(() => known(tags, store))
  t.ok(current(tags, later), 'until they are read again')
  await tags.invalidate(['catalog'])
  t.notOk(current(tags, later), 'moved by this instance through the shared store')
})

test('a shared store that lost its versions counts them in a new epoch: no entry of before the loss is current after it', async (t) => {
  const store = new SharedVersions({ catalog: 3 })
  const tags = new TagVersions(store)
  await tags.load()
  const before = entry(['catalog'], [3], store.epoch)
  t.ok(current(tags, before))
  store.lose()
  await tags.invalidate(['catalog'])
  t.equal(store.versions.catalog, 1, 'the store counts from the start again')
  t.notOk(current(tags, before), 'a move in another epoch: the versions are unknown until read again')
  await until(() => known(tags, store))
  t.notOk(current(tags, before), 'and an entry of the old epoch is not current')
  const after = entry(['catalog'], tags.of(['catalog']).versions, tags.of(['catalog']).epoch)
  t.same(after.tv, [1])
  t.ok(current(tags, after), 'one loaded in the new epoch is')
  await tags.invalidate(['catalog'])
  t.notOk(current(tags, after), 'and the next move drops it: it is not taken for an older one')

  // Heard of on the bus: another instance moved a tag after the loss.
  store.lose()
  await store.bump(['catalog'])
  const last = entry(['catalog'], tags.of(['catalog']).versions, tags.of(['catalog']).epoch)
  t.ok(current(tags, last))
  tags.apply({ epoch: store.epoch, versions: { catalog: 1 } })
  t.notOk(current(tags, last), 'a message of another epoch: unknown until read again')
  await until(() => known(tags, store))
  t.notOk(current(tags, last))
})

test('versions that went back in the epoch the store still holds (a failover that lost writes) make it draw a new one', async (t) => {
  for (const noticed of ['read again', 'moved'] as const) {
    const store = new SharedVersions({ catalog: 4 })
    const tags = new TagVersions(store)
    await tags.load()
    const stale = entry(['catalog'], [4], store.epoch) // loaded before the move to 5, which the failover loses
    await tags.invalidate(['catalog'])
    const latest = entry(['catalog'], [5], store.epoch)
    t.notOk(current(tags, stale))
    t.ok(current(tags, latest))
    const lost = store.epoch
    store.versions.catalog = 3 // the replica missed the last two moves
    if (noticed === 'read again') {
      tags.forget() // its bus lost the old primary
    } else {
      await tags.invalidate(['catalog']) // answered 4: no more than this instance knew before it asked
    }
    await until(() => known(tags, store) && store.epoch !== lost)
    t.notOk(current(tags, latest), `${noticed}: a version of the lost writes is not current`)
    await tags.invalidate(['catalog'])
    t.notOk(current(tags, stale), 'nor one the store counts to again')
  }
})

test('a move heard while the first read is under way, in the epoch that read finds, is kept for it: no second read', async (t) => {
  const store = new SharedVersions({ catalog: 1 })
  const tags = new TagVersions(store)
  let release: () => void = () => {}
  store.hold = new Promise((resolve) => { release = resolve })
  const loading = tags.load()
  tags.apply(await store.bump(['catalog'])) // another instance's move, after the read took its answer
  tags.apply({ epoch: store.epoch, versions: {} }) // and one telling the epoch it read
  release()
  await loading
  t.ok(known(tags, store), 'known once the read is done')
  t.same(tags.of(['catalog']), { epoch: store.epoch, versions: [2] }, 'the move heard is not lost')
  t.equal(store.reads, 1)
})

test('a read under way when a move of another epoch is heard does not vouch for the versions: they are read again', async (t) => {
  const store = new SharedVersions({ catalog: 1 })
  const tags = new TagVersions(store)
  await tags.load()
  let release: () => void = () => {}
  store.hold = new Promise((resolve) => { release = resolve })
  tags.forget()
  const old = store.epoch
  store.lose()
  await store.bump(['catalog'])
  tags.apply({ epoch: store.epoch, versions: { catalog: 1 } })
  store.hold = undefined
  release()
  await until(() => known(tags, store))
  t.not(store.epoch, old)
  t.same(tags.of(['catalog']), { epoch: store.epoch, versions: [1] })
  t.equal(store.reads, 3, 'the first read, the one it held, and one more')
})

test("one instance's mark never passes for another's: two levels may share an entry", async (t) => {
  const a = new TagVersions()
  const b = new TagVersions()
  // One move each, of different tags: a mark counted per instance would be the same number on both.
  await a.invalidate(['brand:1'])
  await b.invalidate(['catalog'])
  const held = entry(['catalog'], [0])
  t.ok(current(a, held))
  t.notOk(current(b, held), 'catalog moved on b')
})

test('the mark is invisible to serializers, and an entry that cannot take it is checked each time', async (t) => {
  const tags = new TagVersions()
  const held = entry(['catalog'], [0])
  t.ok(current(tags, held))
  t.same(Object.keys(held), ['t', 'tv'])
  t.equal(JSON.stringify(held), '{"t":["catalog"],"tv":[0]}')
  t.same(jsonSerializer.decode(jsonSerializer.encode(held)), held)
  t.strictSame(unpack(pack(held)), { t: ['catalog'], tv: [0] }, 'msgpackr leaves it out')
  const frozen = Object.freeze(entry(['catalog'], [0]))
  t.ok(current(tags, frozen))
  t.ok(current(tags, frozen))
  await tags.invalidate(['catalog'])
  t.notOk(current(tags, frozen))
  t.notOk(current(tags, held))
})

test('a move whose command failed, and may have landed, leaves no entry current until the versions are read again', async (t) => {
  const store = new SharedVersions({ catalog: 1 })
  const tags = new TagVersions(store)
  await tags.load()
  const before = entry(['catalog'], [1], store.epoch)
  t.ok(current(tags, before))
  // The store's answer is lost (a time budget ran out), but the move is made: Redis ran it once it answered.
  const bump = store.bump.bind(store)
  store.bump = async (names, stale) => {
    await bump(names, stale)
    throw new Error('no answer within 100 ms')
  }
  await t.rejects(tags.invalidate(['catalog']), /no answer/)
  t.notOk(current(tags, before), 'unknown until read: the entry is loaded again, not served')
  await until(() => known(tags, store))
  t.notOk(current(tags, before), 'and once read, it is older than the version the store holds')
  t.same(tags.of(['catalog']).versions, [2])
})
