import { deleteKeys, emptyRecord, type Group, type GroupChange, type GroupOperations, type Store } from '../store.js'

interface Head { fence: string }
interface Index { fence: string, names: string[] }

/**
 * Groups over a store that only keeps whole values (Keyv, a custom store), for the session level. Each field is a
 * value of its own, so that concurrent requests writing different fields never overwrite each other, and nothing is
 * ever written back on a read. Such a store offers no compare-and-set, so this is weaker than a Redis hash:
 *
 * - The head (`key` → the fence) is written once, when the group is created, and lives `lifetime` ms: nothing
 *   rewrites it, so nothing can bring back a group that was ended. Two creations of one key at the same instant
 *   (two first requests of one app-given id) read the head back, and the one whose head does not stand joins the
 *   other's group; only if both write before either reads back can one group's first fields be lost. Fields live `ttl` ms after their last write
 *   (the expiry is write-extended: reads do not restart it).
 * - Fields live under the fence (`key:fence:name`): once the group is ended, a late write of a request that still
 *   holds it lands where no reader looks.
 * - An index of field names (`key:index`) lets `end` move the fields and the level count them. It is read, changed
 *   and written back, so two overlapping writes that each add a new name may leave one name out of it: that field
 *   is still read by name, but is not carried over by `end` nor removed by a `clear`.
 * - The fence check and the change that follows it are two steps: a change may land just after the group ended.
 */
/** Removes from `names` (in write order) the earliest of the cap's kind beyond its max, and answers them. */
function capOf (names: Set<string>, cap: GroupChange['cap']): string[] {
  if (cap === undefined) return []
  const kind = [...names].filter((name) => name.startsWith(cap.prefix))
  const over = kind.slice(0, Math.max(0, kind.length - cap.max))
  for (const name of over) names.delete(name)
  return over
}

export function keyedGroups (store: Store, lifetime: number): GroupOperations {
  const fieldKey = (key: string, fence: string, name: string): string => `${key}:${fence}:${name}`
  const indexKey = (key: string): string => key + ':index'

  async function heads (key: string): Promise<[Head | undefined, string[]]> {
    const [head, index] = store.getMany === undefined
      ? await Promise.all([store.get(key), store.get(indexKey(key))])
      : await store.getMany([key, indexKey(key)])
    const fence = (head as Head | undefined)?.fence
    if (typeof fence !== 'string') return [undefined, []]
    const listed = index as Index | undefined
    return [{ fence }, listed?.fence === fence && Array.isArray(listed.names) ? listed.names : []]
  }

  async function fieldsOf (key: string, fence: string, names: readonly string[]): Promise<Record<string, unknown>> {
    const keys = names.map((name) => fieldKey(key, fence, name))
    const values = store.getMany === undefined ? await Promise.all(keys.map(async (k) => await store.get(k))) : await store.getMany(keys)
    const fields = emptyRecord()
    names.forEach((name, i) => { if (values[i] !== undefined) fields[name] = values[i] })
    return fields
  }

  async function write (key: string, fence: string, fields: Readonly<Record<string, unknown>>, names: readonly string[], ttl: number): Promise<void> {
    await Promise.all(Object.entries(fields).map(async ([name, value]) => { await store.set(fieldKey(key, fence, name), value, ttl) }))
    await store.set(indexKey(key), { fence, names: [...names] } satisfies Index, ttl)
  }

  return {
    async read (key) {
      const [head, names] = await heads(key)
      if (head === undefined) return undefined
      return { fence: head.fence, fields: await fieldsOf(key, head.fence, names), partial: true }
    },
    async exists (keys) {
      const found = store.getMany === undefined ? await Promise.all(keys.map(async (key) => await store.get(key))) : await store.getMany(keys)
      return found.map((head) => typeof (head as Head | undefined)?.fence === 'string')
    },
    async field (key, fence, name) {
      return await store.get(fieldKey(key, fence, name))
    },
    async create (key, group, ttl) {
      if (await store.get(key) !== undefined) return false
      await write(key, group.fence, group.fields, Object.keys(group.fields), ttl)
      await store.set(key, { fence: group.fence } satisfies Head, lifetime)
      // Two creators of one app-given id may both have found it free: the head that stands says who won, and the
      // other joins that group. (They can still both win if each reads before the other writes: no compare-and-set.)
      return (await store.get(key) as Head | undefined)?.fence === group.fence
    },
    async update (key, fence, change, ttl) {
      const [head, listed] = await heads(key)
      if (head?.fence !== fence) return false
      const keep = change.keep
      const dropped = change.clear === true ? listed.filter((name) => keep === undefined || !name.startsWith(keep)) : change.remove ?? []
      if (dropped.length > 0) await deleteKeys(store, dropped.map((name) => fieldKey(key, fence, name)))
      const set = change.set ?? {}
      const names = new Set(listed)
      for (const name of [...dropped, ...Object.keys(set)]) names.delete(name)
      for (const name of Object.keys(set)) names.add(name)
      const capped = capOf(names, change.cap)
      if (capped.length > 0) await deleteKeys(store, capped.map((name) => fieldKey(key, fence, name)))
      await write(key, fence, set, [...names], ttl)
      return true
    },
    async end (key, fence) {
      const [head, names] = await heads(key)
      if (head?.fence !== fence) return undefined
      const fields = await fieldsOf(key, fence, names)
      await deleteKeys(store, [key, indexKey(key), ...names.map((name) => fieldKey(key, fence, name))])
      return { fence, fields } satisfies Group
    }
  }
}
